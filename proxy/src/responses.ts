import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import {
  REFUSAL_LINGER_MS,
  RETRY_AFTER_SECONDS,
  httpErrorResponse,
  sendJsonError,
  type ErrorCatalogue,
} from '@callgate/runtime';
import { PROXY_ERRORS, answerStatus, hasRetryAfter, type ProxyErrorCode } from './errors.js';

/** The status for a code that is answered; 500 for a code that never should be (a bug). */
export function statusOf(code: ProxyErrorCode): number {
  return answerStatus(code) ?? 500;
}

/** What a refused client reads in the JSON error body, besides the code. */
function messageOf(code: ProxyErrorCode): string {
  return (PROXY_ERRORS as ErrorCatalogue)[code]?.message ?? 'the proxy refused the request';
}

function answerHeaders(code: ProxyErrorCode, requestId: string): Record<string, string> {
  const headers: Record<string, string> = { 'X-Request-Id': requestId };
  if (hasRetryAfter(code)) headers['Retry-After'] = String(RETRY_AFTER_SECONDS);
  return headers;
}

/** A complete `HTTP/1.1` error response for a raw socket, always `Connection: close`. */
export function rawErrorResponse(code: ProxyErrorCode, requestId: string): string {
  return httpErrorResponse(statusOf(code), code, messageOf(code), answerHeaders(code, requestId));
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
  { drainInput = true, lingerMs = REFUSAL_LINGER_MS }: EndSocketOptions = {},
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
  sendJsonError(res, statusOf(code), code, messageOf(code), {
    connection: 'close',
    ...answerHeaders(code, requestId),
  });
}
