import type { CallTransport } from '@callgate/agent';
import { detectProvider } from '@callgate/protocol';
import type { Provider } from './metrics.js';

/** An accepted `start` (or SansPBX `answer`): what the session needs to begin the call. */
export interface CallStart {
  callSid: string;
  streamSid: string;
  /** What the agent sees in `info.customParameters` (the call token already removed). */
  customParameters: Record<string, string>;
  transport: CallTransport;
  /** Provider-specific fields for the `call started` line. */
  fields: Record<string, unknown>;
}

/**
 * One provider's inbound message handling (Twilio or SansPBX), behind a session that has detected
 * the provider. The receiver decides what a message means; its session, what bad input costs and
 * how the socket ends.
 */
export interface StreamReceiver {
  /** One text message off the socket. Bad input goes to the session, never a throw. */
  receive(text: string): void;
  /** The session is closing: stop anything that would still feed the call. Idempotent. */
  close(): void;
}

/** What a message before the provider is known says: the provider, or bad input, or nothing yet. */
export interface Detection {
  provider?: Provider;
  bad?: { code: string; message: string };
}

/** Tells the provider of a stream from one of its first messages. Pure. */
export function detectStream(text: string): Detection {
  const provider = detectProvider(text);
  if (provider !== undefined) return { provider };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { bad: { code: 'PROTO_ERR_INVALID_JSON', message: 'message is not valid JSON' } };
  }
  // A bare `connected` carries nothing to tell by; the next message will.
  const event = (value as { event?: unknown } | null)?.event;
  if (event === 'connected') return {};
  return {
    bad: {
      code: 'MEDIA_ERR_UNKNOWN_PROVIDER',
      message: 'first messages match neither Twilio nor SansPBX',
    },
  };
}
