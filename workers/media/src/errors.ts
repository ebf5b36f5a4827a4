import { CallgateError } from '@callgate/runtime';

/**
 * Every error the media worker decides on itself. Protocol-level problems keep the
 * `PROTO_ERR_*` code the parser gave them; both end up in `media_errors_total{code}`.
 */
export type MediaErrorCode =
  /** Upgrade on a path other than `/media-stream` or `/media-stream/<segment>` (404). */
  | 'MEDIA_ERR_NO_ROUTE'
  /**
   * An upgrade with `X-Callgate-Resume` (a call the proxy moves here) whose vouch is malformed,
   * forged, stale, or unsigned while CALL_TOKEN_SECRET is set (403).
   */
  | 'MEDIA_ERR_BAD_RESUME_VOUCH'
  /** `start` carried no, a malformed, a forged or an expired `callToken` (close 1008). */
  | 'MEDIA_ERR_BAD_CALL_TOKEN'
  /** CALL_TOKEN_SECRET is unset: streams are accepted without a call token (a warning at start). */
  | 'MEDIA_ERR_NO_CALL_TOKEN_SECRET'
  /** The `/media-stream/<CallSid>` path segment differs from the CallSid in `start` (close 1008). */
  | 'MEDIA_ERR_CALLSID_MISMATCH'
  /** `media`, `dtmf` or `mark` before `start` (close 1008). */
  | 'MEDIA_ERR_NOT_STARTED'
  /** A second `start` on one socket; counted and ignored. */
  | 'MEDIA_ERR_ALREADY_STARTED'
  /** A message whose `streamSid` is not this stream's; counted and ignored. */
  | 'MEDIA_ERR_WRONG_STREAM_SID'
  /** `start.mediaFormat` is not μ-law 8 kHz mono (close 1008). */
  | 'MEDIA_ERR_MEDIA_FORMAT'
  /** The first messages did not say which provider is calling (close 1008). */
  | 'MEDIA_ERR_UNKNOWN_PROVIDER'
  /** SansPBX is turned off with SANSPBX_ENABLED=false (close 1008). */
  | 'MEDIA_ERR_PROVIDER_DISABLED'
  /** No `start` within START_TIMEOUT_MS of the upgrade (close 1008). */
  | 'MEDIA_ERR_START_TIMEOUT'
  /** A started stream sent no caller audio for NO_MEDIA_TIMEOUT_MS (close 1008). */
  | 'MEDIA_ERR_NO_MEDIA'
  /** A `start` arrived while MAX_CALLS calls are live (close 1013: try again later). */
  | 'MEDIA_ERR_TOO_MANY_CALLS'
  /** A mark echo naming no mark this stream sent; counted as a bad message. */
  | 'MEDIA_ERR_UNKNOWN_MARK'
  /** A SansPBX upgrade without the SANSPBX_TOKEN bearer credential (401). */
  | 'MEDIA_ERR_SANSPBX_AUTH'
  /** Caller audio more than 5 s ahead of real time (a flood); dropped, counted as a bad message. */
  | 'MEDIA_ERR_TOO_FAST'
  /** More than MAX_BAD_MESSAGES bad messages on one socket (close 1008). */
  | 'MEDIA_ERR_TOO_MANY_BAD_MESSAGES'
  /** The session was closed because a newer stream for the same call started (close 4409). */
  | 'MEDIA_ERR_STREAM_REPLACED'
  /** A bug in the worker while handling a message or ending a session (close 1011). */
  | 'MEDIA_ERR_INTERNAL'
  /** Writing the recording failed; the call goes on without it. */
  | 'MEDIA_ERR_RECORDING'
  /** Voice webhook / status callback: `X-Twilio-Signature` missing or wrong (403). */
  | 'MEDIA_ERR_BAD_SIGNATURE'
  /** Voice webhook / status callback: body over the limit (413). */
  | 'MEDIA_ERR_BODY_TOO_LARGE'
  /** Voice webhook / status callback: not a form body, or no/invalid CallSid (400/415). */
  | 'MEDIA_ERR_BAD_WEBHOOK'
  /** Voice webhook / status callback with a method other than POST (405). */
  | 'MEDIA_ERR_METHOD_NOT_ALLOWED'
  /** `<Connect action>` request whose state query is missing, malformed or forged (403). */
  | 'MEDIA_ERR_BAD_ACTION_STATE'
  /** `<Connect action>`: STREAM_RECONNECT_LIMIT short streams in a row; the call is ended politely. */
  | 'MEDIA_ERR_RECONNECT_LIMIT';

export class MediaError extends CallgateError {
  declare readonly code: MediaErrorCode;
  constructor(code: MediaErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}

/**
 * WebSocket close codes the media worker uses (RFC 6455 §7.4 plus one private code).
 * Twilio logs any server close as error 31921 and runs the TwiML after `</Connect>`.
 */
export const CloseCode = {
  /** The call ended normally: `stop` received, or the agent hung up. */
  normal: 1000,
  /** Binary message: Twilio and SansPBX speak JSON text only. */
  unsupportedData: 1003,
  /** Oversized message (ws itself closes with it when maxPayload is passed). */
  tooBig: 1009,
  /** Policy: bad token, CallSid mismatch, media before start, too many bad messages. */
  policy: 1008,
  /** Internal: the agent failed (start, too many errors) or a worker bug. */
  internal: 1011,
  /** The drain deadline passed (service restart). */
  serviceRestart: 1012,
  /** Try again later: every call slot is taken, or the caller stopped reading (shed). */
  tryAgainLater: 1013,
  /** A newer stream for the same CallSid took over (4000–4999 is for applications). */
  replaced: 4409,
} as const;
