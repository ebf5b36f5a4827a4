import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { onTestFinished } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
}

export interface WsBackendOptions {
  /** Tag added to echoes, so a test can tell which backend answered. */
  name?: string;
  /** Status of GET /readyz (changeable later with `setReady`). */
  readyStatus?: number;
  /** What to do with each message; default: echo `<name>:<message>`. */
  onMessage?: (ws: WebSocket, data: Buffer) => void;
}

/**
 * A worker stand-in: a real `ws` server behind one upgrade listener, plus `/readyz` and a plain
 * HTTP echo. It records what reached it and counts its open sockets, so a test can prove that a
 * refused request never touched it and that nothing stays open.
 */
export class WsBackend extends EventEmitter<{ upgrade: [SeenRequest]; request: [SeenRequest] }> {
  readonly name: string;
  readonly upgrades: SeenRequest[] = [];
  /** Plain requests other than the health checker's `/readyz`. */
  readonly requests: SeenRequest[] = [];
  readonly clients = new Set<WebSocket>();
  readonly #server: Server;
  readonly #wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  readonly #sockets = new Set<Socket>();
  #readyStatus: number;

  constructor(options: WsBackendOptions = {}) {
    super();
    this.name = options.name ?? 'backend';
    this.#readyStatus = options.readyStatus ?? 200;
    const onMessage =
      options.onMessage ??
      ((ws: WebSocket, data: Buffer) => ws.send(`${this.name}:${data.toString()}`));
    this.#server = createServer((req, res) => {
      if (req.url === '/readyz') {
        res.writeHead(this.#readyStatus, { 'content-type': 'text/plain' });
        res.end(String(this.#readyStatus));
        return;
      }
      const seen = record(req);
      this.requests.push(seen);
      this.emit('request', seen);
      const body: Buffer[] = [];
      req.on('data', (c: Buffer) => body.push(c));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json', 'x-backend': this.name });
        res.end(
          JSON.stringify({
            backend: this.name,
            url: req.url,
            body: Buffer.concat(body).toString(),
          }),
        );
      });
    });
    this.#server.on('connection', (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('upgrade', (req, socket: Socket, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      const seen = record(req);
      this.upgrades.push(seen);
      this.emit('upgrade', seen);
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        this.clients.add(ws);
        ws.on('error', () => {});
        ws.on('close', () => this.clients.delete(ws));
        ws.on('message', (data: Buffer) => onMessage(ws, data));
      });
    });
  }

  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening');
    return address.port;
  }

  /** `127.0.0.1:<port>`, the form MEDIA_BACKENDS takes. */
  get hostPort(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** TCP connections open on this backend right now (health probes included while they run). */
  get openSockets(): number {
    return this.#sockets.size;
  }

  setReady(status: number): void {
    this.#readyStatus = status;
  }

  async listen(): Promise<this> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    return this;
  }

  /** Closes every WebSocket with `code` (the worker hanging up). */
  closeAll(code = 1000): void {
    for (const ws of this.clients) ws.close(code);
  }

  async close(): Promise<void> {
    for (const ws of this.clients) ws.terminate();
    for (const socket of this.#sockets) socket.destroy();
    if (this.#server.listening) {
      this.#server.close();
      await once(this.#server, 'close');
    }
  }
}

/** Starts a WsBackend on 127.0.0.1:0 and closes it when the test ends. */
export async function startWsBackend(options: WsBackendOptions = {}): Promise<WsBackend> {
  const backend = await new WsBackend(options).listen();
  onTestFinished(() => backend.close());
  return backend;
}

/** What a raw backend does with one connection once the request head has arrived. */
export type BackendScript = (socket: Socket, head: string) => void;

/**
 * A backend that plays a script on raw TCP, for answers a real server would never give: silence,
 * a reset right after the 101, a chunked refusal. `/readyz` probes get a plain 200 unless the
 * script handles them.
 */
export class RawBackend extends EventEmitter<{
  request: [head: string, socket: Socket];
  closed: [];
}> {
  readonly heads: string[] = [];
  readonly #server: NetServer;
  readonly #sockets = new Set<Socket>();

  /** `answerHealthChecks: false` leaves `/readyz` probes to the script too (a silent backend). */
  constructor(script: BackendScript, { answerHealthChecks = true } = {}) {
    super();
    this.#server = createNetServer((socket) => {
      this.#sockets.add(socket);
      socket.on('error', () => {});
      socket.once('close', () => {
        this.#sockets.delete(socket);
        this.emit('closed');
      });
      let buffered = '';
      const onData = (chunk: Buffer): void => {
        buffered += chunk.toString('latin1');
        const end = buffered.indexOf('\r\n\r\n');
        if (end === -1) return;
        socket.off('data', onData);
        const head = buffered.slice(0, end);
        if (answerHealthChecks && head.startsWith('GET /readyz ')) {
          socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
          return;
        }
        this.heads.push(head);
        this.emit('request', head, socket);
        script(socket, head);
      };
      socket.on('data', onData);
    });
  }

  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new Error('not listening');
    return address.port;
  }

  get hostPort(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Connections open right now, not counting finished health probes. */
  get openSockets(): number {
    return this.#sockets.size;
  }

  async listen(): Promise<this> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
    return this;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    if (this.#server.listening) {
      this.#server.close();
      await once(this.#server, 'close');
    }
  }
}

export async function startRawBackend(
  script: BackendScript,
  options: { answerHealthChecks?: boolean } = {},
): Promise<RawBackend> {
  const backend = await new RawBackend(script, options).listen();
  onTestFinished(() => backend.close());
  return backend;
}

/** A 101 a `ws` client accepts, for the key in a raw request head. */
export function switchingProtocols(head: string): string {
  const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? '';
  return (
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`
  );
}

function acceptKey(key: string): string {
  // RFC 6455 §4.2.2.
  return createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
}

/** A port nothing listens on (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function record(req: {
  method?: string | undefined;
  url?: string | undefined;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
}): SeenRequest {
  return {
    method: req.method ?? '',
    url: req.url ?? '',
    headers: req.headers,
    rawHeaders: req.rawHeaders,
  };
}
