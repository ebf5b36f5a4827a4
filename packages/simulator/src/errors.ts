import { CallgateError } from '@callgate/runtime';

export type SimulatorErrorCode =
  | 'SIM_ERR_CONNECT'
  | 'SIM_ERR_HANDSHAKE'
  | 'SIM_ERR_TIMEOUT'
  | 'SIM_ERR_TWIML'
  | 'SIM_ERR_ABORTED'
  | 'SIM_ERR_INVALID_OPTIONS'
  | 'SIM_ERR_USAGE';

/**
 * Every failure the simulator reports. Callers (tests, the CLI) branch on `code`; `status` is the
 * HTTP status of a refused handshake or webhook when there was one.
 */
export class SimulatorError extends CallgateError {
  declare readonly code: SimulatorErrorCode;
  readonly status: number | undefined;
  constructor(
    code: SimulatorErrorCode,
    message: string,
    options: ErrorOptions & { status?: number } = {},
  ) {
    super(code, message, options.cause === undefined ? {} : { cause: options.cause });
    this.status = options.status;
  }
}

/** Maps a socket-level error (ECONNREFUSED, ENOTFOUND, ...) from ws or fetch to a SimulatorError. */
export function connectError(what: string, err: unknown): SimulatorError {
  const sysCode = findSysCode(err);
  if (sysCode === 'ETIMEDOUT' || sysCode === 'UND_ERR_CONNECT_TIMEOUT') {
    return new SimulatorError('SIM_ERR_TIMEOUT', `${what}: connect timed out`, { cause: err });
  }
  const detail = sysCode ?? (err instanceof Error ? err.message : String(err));
  return new SimulatorError('SIM_ERR_CONNECT', `${what}: cannot connect (${detail})`, {
    cause: err,
  });
}

// fetch wraps the socket error in `cause`; ws passes it through. Look a few levels deep.
function findSysCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 4 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code.length > 0) return code;
    const errors = (current as { errors?: unknown }).errors;
    if (Array.isArray(errors) && errors.length > 0) {
      current = errors[0];
      continue;
    }
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
