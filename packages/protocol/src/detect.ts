import { isObject } from './fields.js';

export type Provider = 'twilio' | 'sanspbx';

/**
 * Tells which provider speaks on a fresh socket from one of its first messages (text or already
 * parsed). Twilio: `connected` with `protocol: "Call"`, `start` with `start.streamSid`, or any
 * message with a top-level `streamSid`. SansPBX: `answer` or `reverse-media`, or any message with a
 * top-level `streamId`, `channelId` or `payload`. Returns undefined when the message does not tell
 * (a bare `{"event":"connected"}`, invalid JSON): look at the next one.
 */
export function detectProvider(message: unknown): Provider | undefined {
  let value = message;
  if (typeof message === 'string') {
    try {
      value = JSON.parse(message) as unknown;
    } catch {
      return undefined;
    }
  }
  if (!isObject(value)) return undefined;
  const event = value.event;
  if (event === 'connected' && value.protocol === 'Call') return 'twilio';
  if (event === 'start' && isObject(value.start) && typeof value.start.streamSid === 'string') {
    return 'twilio';
  }
  if (typeof value.streamSid === 'string') return 'twilio';
  if (event === 'answer' || event === 'reverse-media') return 'sanspbx';
  if ('streamId' in value || 'channelId' in value || 'payload' in value) return 'sanspbx';
  return undefined;
}
