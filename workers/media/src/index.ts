export { MediaWorker } from './media-worker.js';
export type { MediaWorkerConfig, MediaWorkerOptions } from './media-worker.js';
export { MediaSession } from './media-session.js';
export type { StreamResume } from './media-session.js';
export { MediaCall, resumeSegmentName } from './media-call.js';
export type { CallEndReason, SessionCounters } from './media-call.js';
export { loadMediaConfig, MEDIA_ENV, SANSPBX_RATES } from './config.js';
export type { MediaConfig, MediaConfigDefaults, SansPbxRate } from './config.js';
export { signCallToken, verifyCallToken } from './call-token.js';
export type {
  CallTokenFailure,
  CallTokenResult,
  SignCallTokenOptions,
  VerifyCallTokenOptions,
} from './call-token.js';
export {
  buildStreamTwiml,
  buildEmptyTwiml,
  buildGiveUpTwiml,
  publicOrigins,
  ACTION_PATH,
  GIVE_UP_MESSAGE,
  CALL_SID_RE,
  STATUS_PATH,
  STREAM_PATH,
  TWIML_PATH,
} from './twiml.js';
export type { PublicOrigins, StreamTwimlOptions } from './twiml.js';
export {
  decideStreamAction,
  decodeStreamActionState,
  encodeStreamActionState,
} from './stream-action.js';
export type {
  StreamActionDecision,
  StreamActionState,
  StreamActionStateResult,
} from './stream-action.js';
export { TwilioWebhooks } from './webhook.js';
export { CallRecorder, recordingBaseName } from './recorder.js';
export type { CallRecorderOptions } from './recorder.js';
export { TwilioTransport } from './twilio-transport.js';
export { SansPbxTransport } from './sanspbx-transport.js';
export type { SansPbxIdentity, SansPbxTransportOptions } from './sanspbx-transport.js';
export { createMediaMetrics } from './metrics.js';
export type { MediaMetrics, Provider } from './metrics.js';
export { CloseCode, MEDIA_ERRORS, MediaError } from './errors.js';
export type { MediaCodeWith, MediaErrorCode } from './errors.js';
