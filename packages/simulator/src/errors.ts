import { CallgateError } from '@callgate/runtime';

/**
 * The codes of @callgate/simulator. The simulator is the client, so it answers no HTTP status and
 * closes no socket with an error code: every code is thrown (`simulateCall()` rejects) or printed
 * by the CLI.
 */
export const SIM_ERRORS = {
  /** The TCP connection to the stream or the webhook was refused, or the host is unknown. */
  SIM_ERR_CONNECT: {},
  /** The server answered the upgrade with an HTTP status instead of 101 (`status` set). */
  SIM_ERR_HANDSHAKE: {},
  /** The connection opened but the handshake or the webhook did not complete in time. */
  SIM_ERR_TIMEOUT: {},
  /** The voice webhook or the action URL answered non-2xx, or without a usable TwiML. */
  SIM_ERR_TWIML: {},
  /** Interrupted (`signal`) before the call was up. */
  SIM_ERR_ABORTED: {},
  /** Options the simulator cannot use (bad URL, provider, sample rate, DTMF entry ...). */
  SIM_ERR_INVALID_OPTIONS: {},
  /** Invalid command-line flags (CLI only). */
  SIM_ERR_USAGE: {},
  /** The CLI's code for a failure that carried no code of its own. */
  SIM_ERR_UNKNOWN: {},
} as const satisfies Record<string, { readonly status?: number; readonly close?: number }>;

export type SimulatorErrorCode = keyof typeof SIM_ERRORS;

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
