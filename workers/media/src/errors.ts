import { CloseCode as SharedCloseCode } from '@callgate/protocol';
import { CallgateError, type CodesWith, type ErrorCatalogue } from '@callgate/runtime';

/**
 * WebSocket close codes the media worker uses: the shared table plus one private code.
 * Twilio logs any server close as error 31921 and runs the TwiML after `</Connect>`.
 */
export const CloseCode = {
  ...SharedCloseCode,
  /** A newer stream for the same CallSid took over (4000–4999 is for applications). */
  replaced: 4409,
} as const;

/**
 * Every error the media worker decides on itself, with the HTTP status or close code it is
 * answered with. Protocol-level problems keep the `PROTO_ERR_*` code the parser gave them; both
 * end up in `media_errors_total{code}`. docs/errors.md (MEDIA) has one row per code.
 */
export const MEDIA_ERRORS = {
  /** Upgrade on a path other than `/media-stream` or `/media-stream/<segment>`. */
  MEDIA_ERR_NO_ROUTE: { status: 404 },
  /**
   * An upgrade with `X-Callgate-Resume` (a call the proxy moves here) whose vouch is malformed,
   * forged, stale, or unsigned while CALL_TOKEN_SECRET is set.
   */
  MEDIA_ERR_BAD_RESUME_VOUCH: { status: 403 },
  /** A bare `/media-stream` upgrade (SansPBX) without the SANSPBX_TOKEN bearer credential. */
  MEDIA_ERR_SANSPBX_AUTH: { status: 401 },
  /** `start` carried no, a malformed, a forged or an expired `callToken`. */
  MEDIA_ERR_BAD_CALL_TOKEN: { close: CloseCode.policyViolation },
  /** CALL_TOKEN_SECRET is unset: streams are accepted without a call token (a warning at start). */
  MEDIA_ERR_NO_CALL_TOKEN_SECRET: {},
  /** The `/media-stream/<CallSid>` path segment differs from the CallSid in `start`. */
  MEDIA_ERR_CALLSID_MISMATCH: { close: CloseCode.policyViolation },
  /** `media`, `dtmf`, `mark` or `stop` before `start`. */
  MEDIA_ERR_NOT_STARTED: { close: CloseCode.policyViolation },
  /** A second `start` on one socket; counted as a bad message and ignored. */
  MEDIA_ERR_ALREADY_STARTED: {},
  /** A message whose `streamSid` is not this stream's; counted as a bad message and ignored. */
  MEDIA_ERR_WRONG_STREAM_SID: {},
  /**
   * Twilio's `start.mediaFormat` is not μ-law 8 kHz mono (the socket is closed). A SansPBX
   * `start` announcing another rate than SANSPBX_SAMPLE_RATE is only logged and counted.
   */
  MEDIA_ERR_MEDIA_FORMAT: { close: CloseCode.policyViolation },
  /** The first messages match neither provider; counted as a bad message. */
  MEDIA_ERR_UNKNOWN_PROVIDER: {},
  /** A SansPBX stream while SANSPBX_ENABLED=false. */
  MEDIA_ERR_PROVIDER_DISABLED: { close: CloseCode.policyViolation },
  /** No `start` within START_TIMEOUT_MS of the upgrade. */
  MEDIA_ERR_START_TIMEOUT: { close: CloseCode.policyViolation },
  /** A started stream sent no caller audio for NO_MEDIA_TIMEOUT_MS. */
  MEDIA_ERR_NO_MEDIA: { close: CloseCode.policyViolation },
  /** A `start` arrived while MAX_CALLS calls are live: try again later. */
  MEDIA_ERR_TOO_MANY_CALLS: { close: CloseCode.tryAgainLater },
  /** A mark naming no mark this stream sent; counted as a bad message. */
  MEDIA_ERR_UNKNOWN_MARK: {},
  /** Caller audio more than 5 s ahead of real time (a flood); dropped, counted as a bad message. */
  MEDIA_ERR_TOO_FAST: {},
  /** More than MAX_BAD_MESSAGES bad messages on one socket. */
  MEDIA_ERR_TOO_MANY_BAD_MESSAGES: { close: CloseCode.policyViolation },
  /** A newer stream for the same call started here; this one is closed first. */
  MEDIA_ERR_STREAM_REPLACED: { close: CloseCode.replaced },
  /** A bug in the worker while handling a message or ending a session. */
  MEDIA_ERR_INTERNAL: { close: CloseCode.internalError },
  /** Writing the recording failed; the call goes on without it. */
  MEDIA_ERR_RECORDING: {},
  /** Voice webhook, action or status callback: `X-Twilio-Signature` missing or wrong. */
  MEDIA_ERR_BAD_SIGNATURE: { status: 403 },
  /** Webhook body over MAX_WEBHOOK_BYTES. */
  MEDIA_ERR_BODY_TOO_LARGE: { status: 413 },
  /** Webhook body that is not `application/x-www-form-urlencoded`. */
  MEDIA_ERR_NOT_A_FORM: { status: 415 },
  /** Webhook without a valid CallSid, without PUBLIC_URL or a usable Host, or an aborted body. */
  MEDIA_ERR_BAD_WEBHOOK: { status: 400 },
  /** Webhook with a method other than POST. */
  MEDIA_ERR_METHOD_NOT_ALLOWED: { status: 405 },
  /** `<Connect action>` request whose state query is missing, malformed or forged. */
  MEDIA_ERR_BAD_ACTION_STATE: { status: 403 },
  /**
   * `<Connect action>`: STREAM_RECONNECT_LIMIT short streams in a row; answered 200 with TwiML
   * that ends the call politely, so no error status.
   */
  MEDIA_ERR_RECONNECT_LIMIT: {},
} as const satisfies ErrorCatalogue;

export type MediaErrorCode = keyof typeof MEDIA_ERRORS;

/** The media codes answered with an HTTP status (`'status'`) or ending a socket (`'close'`). */
export type MediaCodeWith<K extends 'status' | 'close'> = CodesWith<typeof MEDIA_ERRORS, K>;

export class MediaError extends CallgateError {
  declare readonly code: MediaErrorCode;
  constructor(code: MediaErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
