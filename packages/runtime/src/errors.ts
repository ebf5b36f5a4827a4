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

export type RuntimeErrorCode =
  | 'CONFIG_ERR_INVALID'
  | 'RUNTIME_ERR_CLOSED'
  | 'RUNTIME_ERR_ALREADY_STARTED'
  | 'RUNTIME_ERR_AGENT_LOAD'
  // runMain
  | 'RUNTIME_ERR_START_FAILED'
  | 'RUNTIME_ERR_DRAIN_TIMEOUT'
  | 'RUNTIME_ERR_CLOSE_FAILED'
  | 'RUNTIME_ERR_UNCAUGHT'
  | 'RUNTIME_ERR_DESTROY_TIMEOUT'
  // StreamServer
  | 'RUNTIME_ERR_NOT_STARTED'
  | 'RUNTIME_ERR_LISTEN'
  | 'RUNTIME_ERR_DRAINING'
  | 'RUNTIME_ERR_TOO_MANY_SESSIONS'
  | 'RUNTIME_ERR_BAD_HANDSHAKE'
  | 'RUNTIME_ERR_BAD_REQUEST'
  | 'RUNTIME_ERR_METHOD_NOT_ALLOWED'
  | 'RUNTIME_ERR_NOT_FOUND'
  | 'RUNTIME_ERR_HANDLER'
  | 'RUNTIME_ERR_HEARTBEAT_TIMEOUT'
  | 'RUNTIME_ERR_SLOW_READER'
  | 'RUNTIME_ERR_MESSAGE_TOO_LARGE'
  | 'RUNTIME_ERR_WS_PROTOCOL';

/** All configuration problems found in one pass, reported together before any port is bound. */
export class ConfigError extends CallgateError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('CONFIG_ERR_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/** `start()` was called on a service that has been closed (fastify FST_ERR_REOPENED_CLOSE_SERVER). */
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
