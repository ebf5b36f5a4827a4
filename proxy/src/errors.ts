import { CallgateError } from '@callgate/runtime';

/**
 * Every error code the proxy logs, counts (`proxy_errors_total{code}`) or answers with, and the one
 * table that maps each to the HTTP status the client gets. `null` means no HTTP answer is sent by
 * the proxy: the code names a background event, a per-attempt failure that is retried, or a
 * tunnel that ends after the 101, where the proxy can only cut TCP (close codes are the workers' job).
 */
export const ERROR_STATUS = {
  // The request itself.
  PROXY_ERR_BAD_REQUEST: 400,
  PROXY_ERR_HEADER_TOO_LARGE: 431,
  PROXY_ERR_HEADER_TIMEOUT: 408,
  PROXY_ERR_BAD_PATH: 400,
  PROXY_ERR_BAD_HOST: 400,
  PROXY_ERR_BAD_HANDSHAKE: 400,
  PROXY_ERR_NO_ROUTE: 404,
  PROXY_ERR_BAD_SIGNATURE: 403,
  /** A request body that did not arrive within REQUEST_TIMEOUT_MS (the client is slow, not the worker). */
  PROXY_ERR_CLIENT_TIMEOUT: 408,
  /** One client address over MAX_CONNECTIONS_PER_CLIENT / MAX_PENDING_PER_CLIENT. */
  PROXY_ERR_CLIENT_LIMIT: 429,
  // Capacity.
  PROXY_ERR_DRAINING: 503,
  PROXY_ERR_TOO_MANY_TUNNELS: 503,
  PROXY_ERR_TOO_MANY_CONNECTIONS: null,
  PROXY_ERR_NO_BACKEND: 503,
  // The backend, before the tunnel opens.
  PROXY_ERR_BACKEND_UNREACHABLE: null,
  PROXY_ERR_UPSTREAM_FAILED: 502,
  PROXY_ERR_UPSTREAM_TIMEOUT: 504,
  PROXY_ERR_UPSTREAM_REJECTED: null,
  PROXY_ERR_BACKEND_BUSY: null,
  /** A worker sent no response byte within FIRST_BYTE_TIMEOUT_MS: retried elsewhere, marked down. */
  PROXY_ERR_FIRST_BYTE_TIMEOUT: null,
  // The tunnel.
  PROXY_ERR_CLIENT_GONE: null,
  PROXY_ERR_TUNNEL_IDLE: null,
  PROXY_ERR_TUNNEL_ERROR: null,
  PROXY_ERR_DRAIN_FORCED: null,
  PROXY_ERR_BAD_FRAME: null,
  PROXY_ERR_MOVE_FAILED: null,
  PROXY_ERR_FRAME_FALLBACK: null,
  // Background work.
  PROXY_ERR_DNS_RESOLVE: null,
  PROXY_ERR_HEALTH_CHECK: null,
  // A bug: a throw caught at the edge of a listener.
  PROXY_ERR_INTERNAL: 500,
} as const satisfies Record<string, number | null>;

export type ProxyErrorCode = keyof typeof ERROR_STATUS;

/** Every code, in catalogue order. */
export const ERROR_CODES = Object.keys(ERROR_STATUS) as ProxyErrorCode[];

/** Codes answered with `503` also carry `Retry-After`: the condition is expected to pass. */
export function hasRetryAfter(code: ProxyErrorCode): boolean {
  return ERROR_STATUS[code] === 503;
}

/** The metric/log outcome for a code: `PROXY_ERR_NO_ROUTE` → `no_route`. */
export function outcomeOf(code: ProxyErrorCode): string {
  return code.slice('PROXY_ERR_'.length).toLowerCase();
}

/** An error raised by the proxy; callers branch on `code`. */
export class ProxyError extends CallgateError {
  declare readonly code: ProxyErrorCode;
  constructor(code: ProxyErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
