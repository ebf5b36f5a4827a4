import type { CallTransport } from '@callgate/agent';
import { detectProvider } from '@callgate/protocol';
import type { Logger } from '@callgate/runtime';
import type { MediaCall } from './media-call.js';
import type { Provider } from './metrics.js';
import type { SessionConfig, StreamResume } from './session-host.js';
import type { TransportPort } from './twilio-transport.js';

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
 * What a provider's receiver needs from its session; the session implements it. The receiver
 * decides what a message means, the session what bad input costs and how the socket ends.
 */
export interface ReceiverContext {
  readonly config: SessionConfig;
  /** The CallSid in the URL path, when the stream was routed by one. */
  readonly pathCallSid: string | undefined;
  /** Set when the proxy vouched that this stream is a live call moved from another worker. */
  readonly resume: StreamResume | undefined;
  /** The session's logger as of now: it gains `provider`, then `callSid` and `streamSid`. */
  log(): Logger;
  /** The running call, once `begin` accepted a start. */
  call(): MediaCall | undefined;
  streamSid(): string | undefined;
  /** The session still waits for its `start` (or `answer`). */
  isAwaitingStart(): boolean;
  /** How an outbound transport reaches the socket. */
  readonly port: TransportPort;
  /** A bad message the session can survive: counted, logged, ignored, up to maxBadMessages. */
  bad(code: string, message: string, fields?: Record<string, unknown>): void;
  /** Input the session cannot go on with: logged, counted, closed with 1008. */
  reject(code: string, message: string, fields?: Record<string, unknown>): void;
  /** Claims the call for this stream and starts the agent. */
  begin(start: CallStart): void;
  /** Caller audio at the line rate for the running call; too-fast audio is bad input. */
  receiveAudio(call: MediaCall, pcm: Int16Array, timestampMs?: number): void;
  /** The provider sent `stop`: the call ends normally. */
  stop(): void;
  countError(code: string): void;
}

/** One provider's inbound message handling, behind a session that has detected the provider. */
export interface StreamReceiver {
  /** One text message off the socket. Bad input goes to the context, never a throw. */
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
