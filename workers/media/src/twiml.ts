import type { IncomingHttpHeaders } from 'node:http';
// The TwiML builder alone: `import twilio from 'twilio'` loads the whole REST client (~250 ms and
// tens of MB per worker) for one XML document. twilio@6 has no `exports` map, so this path is public.
import VoiceResponse from 'twilio/lib/twiml/VoiceResponse.js';

/** Path of the voice webhook and of the stream status callback, under the media pool's prefix. */
export const TWIML_PATH = '/media-stream/twiml';
export const STATUS_PATH = '/media-stream/status';
export const STREAM_PATH = '/media-stream';
/** Where Twilio POSTs when a `<Connect><Stream>` ends (`<Connect action>`). */
export const ACTION_PATH = '/media-stream/action';

/** What the caller hears when the action handler stops offering new streams. */
export const GIVE_UP_MESSAGE = 'Sorry, we could not continue this call. Please call again later.';

/** CallSids go into a URL path and into file names: Twilio's are `CA` + 32 hex digits. */
export const CALL_SID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export interface StreamTwimlOptions {
  /** Absolute `wss://host/media-stream/<CallSid>` (no query string: Twilio drops it). */
  streamUrl: string;
  /** Sent as `<Parameter name="callToken">`, read back from `start.customParameters`. */
  callToken?: string | undefined;
  /** Where Twilio POSTs `stream-started` / `stream-stopped` / `stream-error`. */
  statusCallbackUrl?: string | undefined;
  /**
   * `<Connect action>`: where Twilio POSTs when the stream ends while the call goes on (our side
   * closed the socket with a close frame). Absent: the call ends with the stream.
   */
  actionUrl?: string | undefined;
}

/** The voice-webhook answer: `<Connect><Stream>` to this pool, with the per-call token. */
export function buildStreamTwiml(options: StreamTwimlOptions): string {
  const response = new VoiceResponse();
  const attributes: VoiceResponse.StreamAttributes = { url: options.streamUrl };
  if (options.statusCallbackUrl !== undefined) {
    attributes.statusCallback = options.statusCallbackUrl;
    attributes.statusCallbackMethod = 'POST';
  }
  const connect = response.connect(
    options.actionUrl === undefined ? {} : { action: options.actionUrl, method: 'POST' },
  );
  const stream = connect.stream(attributes);
  if (options.callToken !== undefined) {
    stream.parameter({ name: 'callToken', value: options.callToken });
  }
  return response.toString();
}

/** The action answer for a call that has ended: nothing more to do (`<Response/>`). */
export function buildEmptyTwiml(): string {
  return new VoiceResponse().toString();
}

/**
 * The action answer when no more streams are offered: a short apology, then `<Hangup/>`, so the
 * caller is not left in silence and Twilio does not run into "an application error occurred".
 */
export function buildGiveUpTwiml(message: string = GIVE_UP_MESSAGE): string {
  const response = new VoiceResponse();
  response.say(message);
  response.hangup();
  return response.toString();
}

export interface PublicOrigins {
  /** `wss://host[:port]` (or `ws://` for an `http:` PUBLIC_URL in development). */
  ws: string;
  /** `https://host[:port]`. */
  http: string;
  /** True when PUBLIC_URL was configured; false when taken from request headers (dev only). */
  configured: boolean;
}

/**
 * The origins Twilio reaches us on. With PUBLIC_URL they are fixed. Without it they come from
 * `X-Forwarded-Host` or `Host` and always use wss/https: fine behind a dev tunnel (ngrok), but the
 * headers are client-controlled, so production sets PUBLIC_URL. Returns undefined when no usable
 * host is present.
 */
export function publicOrigins(
  publicUrl: URL | undefined,
  headers: IncomingHttpHeaders,
): PublicOrigins | undefined {
  if (publicUrl !== undefined) {
    const secure = publicUrl.protocol === 'https:';
    return {
      ws: `${secure ? 'wss' : 'ws'}://${publicUrl.host}`,
      http: `${publicUrl.protocol}//${publicUrl.host}`,
      configured: true,
    };
  }
  const forwarded = headers['x-forwarded-host'];
  const raw = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
  const host = raw !== undefined && raw !== '' ? raw : headers.host;
  // Only a plain host[:port]: anything else would let a header inject into the TwiML URL.
  if (
    host === undefined ||
    !/^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/.test(host)
  ) {
    return undefined;
  }
  return { ws: `wss://${host}`, http: `https://${host}`, configured: false };
}
