/**
 * Error catalogue of @callgate/protocol. Codes are `PROTO_ERR_<WHAT>`; callers branch on `code`.
 * The parsers throw them and the workers decide what happens; `close` is the close code the media
 * worker ends a call's socket with (the others are logged, counted and the message dropped).
 *
 * The architecture keeps this package free of other workspaces (`packages/protocol → nothing`), so
 * the catalogue satisfies the shape of @callgate/runtime's `ErrorCatalogue` written out, and
 * `ProtocolError` extends `Error` with the same shape as `CallgateError` (`code`, `name`, `cause`)
 * rather than importing either from @callgate/runtime.
 */
export const PROTO_ERRORS = {
  /** A text message that is not JSON. */
  PROTO_ERR_INVALID_JSON: {},
  /** A JSON message whose `event` (Twilio, SansPBX) or `type` (test-agent) is not known. */
  PROTO_ERR_UNKNOWN_EVENT: {},
  /** A known message with a missing, wrongly typed or extra field. */
  PROTO_ERR_INVALID_MESSAGE: {},
  /** An audio payload that is not strict base64. */
  PROTO_ERR_BAD_BASE64: {},
  /** A binary message where only JSON text is spoken (Twilio, SansPBX). */
  PROTO_ERR_BINARY: { close: 1003 },
  /** A message over the size limit. */
  PROTO_ERR_TOO_LARGE: { close: 1009 },
} as const satisfies Record<string, { readonly status?: number; readonly close?: number }>;

export type ProtocolErrorCode = keyof typeof PROTO_ERRORS;

export class ProtocolError extends Error {
  readonly code: ProtocolErrorCode;
  /** Dotted path of the offending field (`start.mediaFormat.sampleRate`), when one is to blame. */
  readonly field: string | undefined;
  constructor(
    code: ProtocolErrorCode,
    message: string,
    options?: ErrorOptions & { field?: string },
  ) {
    super(message, options);
    this.code = code;
    this.field = options?.field;
    this.name = new.target.name;
  }
}
