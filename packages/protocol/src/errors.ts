/**
 * Error catalogue of @callgate/protocol. Codes are `PROTO_ERR_<WHAT>`; callers branch on `code`.
 *
 * The architecture keeps this package free of other workspaces (`packages/protocol → nothing`), so
 * `ProtocolError` extends `Error` with the same shape as `CallgateError` (`code`, `name`, `cause`)
 * rather than importing it from @callgate/runtime.
 */
export type ProtocolErrorCode =
  | 'PROTO_ERR_INVALID_JSON'
  | 'PROTO_ERR_UNKNOWN_EVENT'
  | 'PROTO_ERR_INVALID_MESSAGE'
  | 'PROTO_ERR_BAD_BASE64'
  | 'PROTO_ERR_BINARY'
  | 'PROTO_ERR_TOO_LARGE';

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
