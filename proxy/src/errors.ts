import { CallgateError, type ErrorCatalogue } from '@callgate/runtime';

/**
 * Every error code the proxy logs, counts (`proxy_errors_total{code}`) or answers with: `status`,
 * the HTTP status the client gets; `close`, the close frame a media call gets toward its caller
 * (the proxy writes one only on the media route, where it tracks frames). Neither: no answer of
 * the proxy's own: a background event, a per-attempt failure that is retried, or a tunnel that ends
 * after the 101 where the proxy can only cut TCP.
 */
export const PROXY_ERRORS = {
  // The request itself.
  PROXY_ERR_BAD_REQUEST: { status: 400, message: 'the request could not be parsed' },
  PROXY_ERR_HEADER_TOO_LARGE: { status: 431, message: 'the request head is too large' },
  PROXY_ERR_HEADER_TIMEOUT: { status: 408, message: 'the request head did not arrive in time' },
  PROXY_ERR_BAD_PATH: { status: 400, message: 'the request path is not canonical' },
  PROXY_ERR_BAD_HOST: { status: 400, message: 'the Host header is missing, repeated or malformed' },
  PROXY_ERR_BAD_HANDSHAKE: { status: 400, message: 'not a well-formed WebSocket handshake' },
  PROXY_ERR_NO_ROUTE: { status: 404, message: 'no route for this path' },
  PROXY_ERR_BAD_SIGNATURE: {
    status: 403,
    message: 'X-Twilio-Signature is missing or does not match',
  },
  /** A request body that did not arrive within REQUEST_TIMEOUT_MS (the client is slow, not the worker). */
  PROXY_ERR_CLIENT_TIMEOUT: { status: 408, message: 'the request body did not arrive in time' },
  /** One client address over MAX_CONNECTIONS_PER_CLIENT / MAX_PENDING_PER_CLIENT. */
  PROXY_ERR_CLIENT_LIMIT: { status: 429, message: 'too many connections from this client' },
  // Capacity.
  PROXY_ERR_DRAINING: { status: 503, message: 'the proxy is restarting; retry' },
  PROXY_ERR_TOO_MANY_TUNNELS: { status: 503, message: 'the proxy is at its tunnel limit; retry' },
  PROXY_ERR_TOO_MANY_CONNECTIONS: {},
  PROXY_ERR_NO_BACKEND: { status: 503, message: 'no worker is available; retry' },
  // The backend, before the tunnel opens.
  PROXY_ERR_BACKEND_UNREACHABLE: {},
  PROXY_ERR_UPSTREAM_FAILED: { status: 502, message: 'the worker failed before answering' },
  PROXY_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'the worker did not answer in time' },
  PROXY_ERR_UPSTREAM_REJECTED: {},
  PROXY_ERR_BACKEND_BUSY: {},
  /** A worker sent no response byte within FIRST_BYTE_TIMEOUT_MS: retried elsewhere, marked down. */
  PROXY_ERR_FIRST_BYTE_TIMEOUT: {},
  // The tunnel.
  PROXY_ERR_CLIENT_GONE: {},
  PROXY_ERR_TUNNEL_IDLE: {},
  PROXY_ERR_TUNNEL_ERROR: {},
  PROXY_ERR_DRAIN_FORCED: { close: 1012 },
  /** 1002 toward a caller that sent a malformed frame (1009 when it is only too large). */
  PROXY_ERR_BAD_FRAME: { close: 1002 },
  PROXY_ERR_MOVE_FAILED: { close: 1011 },
  PROXY_ERR_FRAME_FALLBACK: {},
  // Background work.
  PROXY_ERR_DNS_RESOLVE: {},
  PROXY_ERR_HEALTH_CHECK: {},
  // A bug: a throw caught at the edge of a listener.
  PROXY_ERR_INTERNAL: { status: 500, message: 'internal error in the proxy' },
} as const satisfies ErrorCatalogue;

export type ProxyErrorCode = keyof typeof PROXY_ERRORS;

/** Every code, in catalogue order. */
export const ERROR_CODES = Object.keys(PROXY_ERRORS) as ProxyErrorCode[];

/** Codes answered with `503` also carry `Retry-After`: the condition is expected to pass. */
export function hasRetryAfter(code: ProxyErrorCode): boolean {
  return answerStatus(code) === 503;
}

/** The HTTP status a code is answered with; `undefined` for a code the proxy answers nothing for. */
export function answerStatus(code: ProxyErrorCode): number | undefined {
  return (PROXY_ERRORS as ErrorCatalogue)[code]?.status;
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
