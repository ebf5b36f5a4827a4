export * from './errors.js';
export * from './types.js';
export { urlWithoutQuery } from './signature.js';
export {
  fetchTwiml,
  fetchAction,
  parseTwiml,
  parseActionTwiml,
  resolveActionUrl,
  deriveTwimlUrl,
  resolveStreamUrl,
  decodeEntities,
  type FetchTwimlOptions,
  type FetchActionOptions,
  type ActionResult,
  type ActionTwiml,
  type ParsedTwiml,
  type TwimlResult,
} from './twiml.js';
export { Playback, type PlaybackOptions } from './playback.js';
export {
  detectSegments,
  computeReplies,
  firstSoundAfter,
  formatSummary,
  DIGITAL_SILENCE_MAX,
  MIN_UTTERANCE_GAP_MS,
  REPLY_RMS_THRESHOLD,
} from './summary.js';
export {
  BaseCaller,
  FRAME_MS,
  type CallerOptions,
  type NextStream,
  type StreamEndInfo,
} from './base-caller.js';
export { TwilioCaller, type TwilioCallerOptions } from './twilio-caller.js';
export { SansPbxCaller, type SansPbxCallerOptions } from './sanspbx-caller.js';
export { simulateCall } from './simulate.js';
