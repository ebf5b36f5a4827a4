import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';
import { WebSocket, type ClientOptions } from 'ws';

/** Header lines of a well-formed handshake; tests change or drop single lines. */
export function handshakeHeaders(host = 'edge.test'): Record<string, string> {
  return {
    Host: host,
    Upgrade: 'websocket',
    Connection: 'Upgrade',
    'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
    'Sec-WebSocket-Version': '13',
  };
}

/** Builds a raw request; a header set to `undefined` is left out. */
export function rawRequest(
  requestLine: string,
  headers: Record<string, string | undefined>,
  body = '',
): string {
  const lines = [requestLine];
  for (const [name, value] of Object.entries(headers))
    if (value !== undefined) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n${body}`;
}

export interface RawExchange {
  /** Everything the proxy sent until it closed the connection. */
  text: string;
  /** Status code of the first response line, or undefined if none came. */
  status: number | undefined;
}

/** Opens a TCP connection, destroyed at the end of the test. */
export async function openSocket(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  onTestFinished(() => {
    socket.destroy();
  });
  await once(socket, 'connect');
  return socket;
}

/**
 * Sends raw bytes and reads until the proxy closes the connection; fails if it does not within
 * `timeoutMs`, which is how a test proves the proxy closes every socket it refuses.
 */
export async function exchange(
  port: number,
  data: string | Buffer,
  timeoutMs = 5000,
): Promise<RawExchange> {
  const socket = await openSocket(port);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(data);
  const closed = once(socket, 'close');
  const timer = setTimeout(
    () => socket.destroy(new Error(`proxy kept the socket open for ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    await closed;
  } finally {
    clearTimeout(timer);
  }
  if (socket.errored && /kept the socket open/.test(socket.errored.message)) throw socket.errored;
  const text = Buffer.concat(chunks).toString('latin1');
  const m = /^HTTP\/1\.1 (\d{3}) /.exec(text);
  return { text, status: m ? Number(m[1]) : undefined };
}

/** Resolves with the first complete response head received on `socket`. */
export async function readHead(socket: Socket): Promise<string> {
  let text = '';
  for await (const chunk of socket) {
    text += (chunk as Buffer).toString('latin1');
    const end = text.indexOf('\r\n\r\n');
    if (end !== -1) return text.slice(0, end);
  }
  return text;
}

/** A connected `ws` client, terminated at the end of the test. */
export async function openWs(url: string, options: ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
  ws.on('error', () => {});
  onTestFinished(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('close', (code) => reject(new Error(`closed with ${code} before open`)));
  });
  return ws;
}

/** The status of a refused WebSocket handshake. */
export function refusedStatus(
  url: string,
  options: ClientOptions = {},
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}> {
  const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
  ws.on('error', () => {});
  onTestFinished(() => ws.terminate());
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('handshake unexpectedly succeeded')));
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
      res.on('error', reject);
    });
  });
}

export function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data: Buffer) => resolve(data.toString()));
    ws.once('close', (code) => reject(new Error(`closed with ${code}`)));
  });
}

export function closed(ws: WebSocket): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(1006);
  return new Promise((resolve) => ws.once('close', (code: number) => resolve(code)));
}

/** Polls `check` until it holds; for states no event announces (socket counts). */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
