import { once } from 'node:events';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';
import { WebSocket, type ClientOptions, type RawData } from 'ws';
import { createLogger, type Logger } from '../src/logger.js';

export type CapturedLine = Record<string, unknown> & { msg: string; level: string };

/** A real JSON logger whose lines are parsed into `lines`. */
export function captureLogger(): { logger: Logger; lines: CapturedLine[] } {
  const lines: CapturedLine[] = [];
  const logger = createLogger({
    level: 'debug',
    stream: { write: (text: string) => lines.push(JSON.parse(text) as CapturedLine) },
  });
  return { logger, lines };
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One plain HTTP request on its own connection (no keep-alive pool left behind). */
export function httpGet(url: string, method = 'GET'): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Opens a real ws client; rejects with the HTTP status if the upgrade is refused. */
export async function connectWs(url: string, options: ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
  ws.on('error', () => undefined);
  onTestFinished(() => {
    ws.terminate();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => {
      reject(new Error(`upgrade refused with ${res.statusCode}`));
      res.resume();
    });
    ws.once('error', reject);
  });
  return ws;
}

export function nextMessage(ws: WebSocket): Promise<{ data: RawData; isBinary: boolean }> {
  return new Promise((resolve) => {
    ws.once('message', (data, isBinary) => resolve({ data, isBinary }));
  });
}

export function nextClose(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('already closed');
  return new Promise((resolve) => {
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
}

export const HANDSHAKE_KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** A raw TCP client; destroyed at the end of the test. */
export async function rawConnect(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname);
  socket.on('error', () => undefined);
  onTestFinished(() => {
    socket.destroy();
  });
  await once(socket, 'connect');
  return socket;
}

/** Sends `text` on a raw socket and returns everything the server wrote until it closed. */
export async function rawExchange(url: string, text: string): Promise<string> {
  const socket = await rawConnect(url);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = once(socket, 'close');
  socket.write(text);
  await closed;
  return Buffer.concat(chunks).toString('latin1');
}

export function upgradeRequest(
  path: string,
  extra: Record<string, string> = {},
  method = 'GET',
): string {
  const headers: Record<string, string> = {
    Host: 'worker.test',
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Key': HANDSHAKE_KEY,
    'Sec-WebSocket-Version': '13',
    ...extra,
  };
  const lines = [`${method} ${path} HTTP/1.1`];
  for (const [k, v] of Object.entries(headers)) if (v !== '') lines.push(`${k}: ${v}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** Splits a raw HTTP response into status, lower-cased headers and body. */
export function parseRawResponse(text: string): HttpReply {
  const split = text.indexOf('\r\n\r\n');
  const head = split === -1 ? text : text.slice(0, split);
  const body = split === -1 ? '' : text.slice(split + 4);
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0);
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status, headers, body };
}
