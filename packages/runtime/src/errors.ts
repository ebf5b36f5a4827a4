/**
 * Base class of every error callgate throws or logs. Callers branch on `code`, never on the message.
 * Each workspace defines its codes as `<AREA>_ERR_<WHAT>` in its own `errors.ts`.
 */
export class CallgateError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * One area's error codes, each with how it reaches the peer: `status`, the HTTP status it is
 * answered with; `close`, the WebSocket close code a socket is ended with; neither, logged and
 * counted only. Each area's `errors.ts` exports one as `<AREA>_ERRORS`, declared
 * `as const satisfies ErrorCatalogue` so its codes and numbers stay literal types.
 */
export type ErrorCatalogue = Record<
  string,
  {
    readonly status?: number;
    readonly close?: number;
    /** The sentence a client reads in the error body, where one message fits every call site. */
    readonly message?: string;
  }
>;

/** The codes of `C` that carry `K` (`'status'` or `'close'`). */
export type CodesWith<C extends ErrorCatalogue, K extends 'status' | 'close'> = {
  [Code in keyof C]: C[Code] extends Record<K, number> ? Code : never;
}[keyof C] &
  string;

/** The HTTP status `code` is answered with, from its area's catalogue. */
export function statusOf<C extends ErrorCatalogue, Code extends CodesWith<C, 'status'>>(
  catalogue: C,
  code: Code,
): C[Code]['status'] & number {
  return catalogue[code]!.status as C[Code]['status'] & number;
}

/** The WebSocket close code a socket is ended with for `code`, from its area's catalogue. */
export function closeOf<C extends ErrorCatalogue, Code extends CodesWith<C, 'close'>>(
  catalogue: C,
  code: Code,
): C[Code]['close'] & number {
  return catalogue[code]!.close as C[Code]['close'] & number;
}

/** The codes of @callgate/runtime: configuration, `runMain` and the `StreamServer`. */
export const RUNTIME_ERRORS = {
  CONFIG_ERR_INVALID: {},
  RUNTIME_ERR_CLOSED: {},
  RUNTIME_ERR_NOT_STARTED: {},
  // runMain
  RUNTIME_ERR_START_FAILED: {},
  RUNTIME_ERR_DRAIN_TIMEOUT: {},
  RUNTIME_ERR_CLOSE_FAILED: {},
  RUNTIME_ERR_UNCAUGHT: {},
  RUNTIME_ERR_DESTROY_TIMEOUT: {},
  // StreamServer
  RUNTIME_ERR_LISTEN: {},
  RUNTIME_ERR_DRAINING: { status: 503 },
  RUNTIME_ERR_TOO_MANY_SESSIONS: { status: 503 },
  RUNTIME_ERR_BAD_HANDSHAKE: { status: 400 },
  RUNTIME_ERR_BAD_HOST: { status: 400 },
  RUNTIME_ERR_BAD_REQUEST: { status: 400 },
  RUNTIME_ERR_METHOD_NOT_ALLOWED: { status: 405 },
  RUNTIME_ERR_NOT_FOUND: { status: 404 },
  /** A worker handler threw: 500 for a request or upgrade, 1011 for a session it could not open. */
  RUNTIME_ERR_HANDLER: { status: 500, close: 1011 },
  /** Terminated without a close frame: the peer stopped answering pings. */
  RUNTIME_ERR_HEARTBEAT_TIMEOUT: {},
  RUNTIME_ERR_SLOW_READER: { close: 1013 },
  RUNTIME_ERR_UNSTARTED_EVICTED: { close: 1013 },
  /** Closed by ws itself past `maxPayload`. */
  RUNTIME_ERR_MESSAGE_TOO_LARGE: { close: 1009 },
  /** Closed by ws itself (1002, protocol error) when the peer breaks the framing rules. */
  RUNTIME_ERR_WS_PROTOCOL: { close: 1002 },
} as const satisfies ErrorCatalogue;

export type RuntimeErrorCode = keyof typeof RUNTIME_ERRORS;

/** All configuration problems found in one pass, reported together before any port is bound. */
export class ConfigError extends CallgateError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('CONFIG_ERR_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/**
 * `start()` was called on a service that has been closed. A closed service has released its port,
 * sockets and timers for good; starting it again would run on half-torn-down state, so it refuses.
 */
export class ClosedError extends CallgateError {
  constructor(what: string) {
    super('RUNTIME_ERR_CLOSED', `${what} was closed and cannot be started again`);
  }
}

/** `address()` or another live-only accessor was used before `start()` (or after close). */
export class NotStartedError extends CallgateError {
  constructor(what: string) {
    super('RUNTIME_ERR_NOT_STARTED', `${what} is not listening`);
  }
}

/** Returns the `code` of any error-like value, or a fallback. Never throws. */
export function errorCode(err: unknown, fallback = 'ERR_UNKNOWN'): string {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === 'string' && code.length > 0) return code;
  }
  return fallback;
}
