import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERROR_STATUS, hasRetryAfter, type ProxyErrorCode } from './errors.js';

/** How long a rejected socket may stay open after the answer, for the client to read it. */
export const LINGER_MS = 2000;

/**
 * `Retry-After` on every 503: long enough for a health check round and a DNS refresh to change
 * the picture, short enough for a caller's retry to land inside a ringing phone's patience.
 */
export const RETRY_AFTER_SECONDS = 5;

/** The status for a code that is answered; 500 for a code that never should be (a bug). */
export function statusOf(code: ProxyErrorCode): number {
  return ERROR_STATUS[code] ?? 500;
}

function body(status: number, code: ProxyErrorCode): string {
  return `${status} ${STATUS_CODES[status] ?? 'Error'} (${code})\n`;
}

/** A complete `HTTP/1.1` error response for a raw socket, always `Connection: close`. */
export function rawErrorResponse(code: ProxyErrorCode, requestId: string): string {
  const status = statusOf(code);
  const text = body(status, code);
  const lines = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(text)}`,
    'Cache-Control: no-store',
    `X-Request-Id: ${requestId}`,
  ];
  if (hasRetryAfter(code)) lines.push(`Retry-After: ${RETRY_AFTER_SECONDS}`);
  return `${lines.join('\r\n')}\r\n\r\n${text}`;
}

export interface EndSocketOptions {
  /**
   * Keep reading (and discarding) input until the peer closes: unread input turns a close into a
   * reset that can eat the response. Off for sockets still owned by Node's HTTP parser.
   */
  drainInput?: boolean;
  lingerMs?: number;
}

/**
 * Answers a raw socket and closes it without losing the answer: end (FIN after the bytes), then
 * destroy when the peer closes or after `lingerMs` at the latest (nginx's lingering close); with
 * `drainInput: false`, destroy as soon as the answer is written.
 */
export function endSocket(
  socket: Socket,
  data: string | undefined,
  { drainInput = true, lingerMs = LINGER_MS }: EndSocketOptions = {},
): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), lingerMs);
  socket.once('close', () => clearTimeout(timer));
  if (drainInput) socket.resume();
  else socket.once('finish', () => socket.destroy());
  if (socket.writableEnded) return;
  if (data === undefined) socket.end();
  else socket.end(data);
}

/** Answers a plain HTTP request with an error and closes its connection. */
export function sendError(res: ServerResponse, code: ProxyErrorCode, requestId: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const status = statusOf(code);
  const text = body(status, code);
  const headers: Record<string, string> = {
    connection: 'close',
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
    'x-request-id': requestId,
  };
  if (hasRetryAfter(code)) headers['retry-after'] = String(RETRY_AFTER_SECONDS);
  res.writeHead(status, headers);
  res.end(text);
}
