import { STATUS_CODES } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Seconds a `503` asks the client to wait (`Retry-After`) before trying again: long enough for a
 * health-check round to move traffic away, short enough that a caller's retry lands soon.
 */
export const RETRY_AFTER_SECONDS = 5;

/** How long a refused socket may linger if the peer never lets the error response drain. */
export const REFUSAL_LINGER_MS = 2000;

const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// Header values may not carry CR/LF (response splitting) or other control characters.
// eslint-disable-next-line no-control-regex -- the point is to reject control characters.
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;
// Headers writeHttpError sets itself; a verdict may not override them.
const RESERVED_HEADERS = new Set([
  'connection',
  'content-type',
  'content-length',
  'transfer-encoding',
  'cache-control',
]);

/** The JSON body of every error answer in callgate: `{"error":{"code","message"}}`. */
export function errorBody(code: string, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/**
 * A complete HTTP/1.1 error response for a raw socket (before any WebSocket handshake), always
 * `Connection: close`, with the JSON error body. Headers with invalid names or values, and ones
 * this function sets itself, are dropped.
 */
export function httpErrorResponse(
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): string {
  const body = errorBody(code, message);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
  ];
  for (const [name, value] of Object.entries(headers)) {
    if (!HEADER_NAME.test(name) || RESERVED_HEADERS.has(name.toLowerCase())) continue;
    if (!HEADER_VALUE.test(value)) continue;
    lines.push(`${name}: ${value}`);
  }
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

/**
 * Writes `httpErrorResponse(...)` on a raw socket and destroys the socket once it is sent (or after
 * `REFUSAL_LINGER_MS` if the peer never lets it drain).
 */
export function writeHttpError(
  socket: Duplex,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (socket.listenerCount('error') === 0) socket.on('error', () => socket.destroy());
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const linger = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
  linger.unref();
  socket.once('close', () => clearTimeout(linger));
  // Like ws's abortHandshake: destroy after the response is flushed, since the upgraded socket is
  // half-open capable and would otherwise wait for the peer's FIN.
  socket.once('finish', () => socket.destroy());
  socket.end(httpErrorResponse(status, code, message, headers));
}

/** Answers a plain HTTP request with `{"error":{"code","message"}}`. */
export function sendJsonError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { error: { code, message } }, headers);
}

function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/**
 * Answers a liveness (`healthz`: always 200 `{"status":"ok"}`) or readiness probe (`readyz`: 200
 * `{"status":"ready"}`, or 503 `{"status":"draining"}` when not `ready`). `closeConnection` adds
 * `Connection: close`, for a caller that is shedding its keep-alive connections.
 */
export function answerProbe(
  res: ServerResponse,
  probe: 'healthz' | 'readyz',
  ready: boolean,
  closeConnection = false,
): void {
  const ok = probe === 'healthz' || ready;
  const status = probe === 'healthz' ? 'ok' : ok ? 'ready' : 'draining';
  sendJson(res, ok ? 200 : 503, { status }, closeConnection ? { connection: 'close' } : {});
}
