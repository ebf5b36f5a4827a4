import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  Lifecycle,
  NotStartedError,
  errorCode,
  type Logger,
  type Service,
} from '@callgate/runtime';
import { ProxyError, type ProxyErrorCode } from './errors.js';
import type { ClientLimits } from './client-limits.js';
import type { ProxyMetrics } from './metrics.js';
import { endSocket, rawErrorResponse, sendError } from './responses.js';

export interface ListenerOptions {
  host: string;
  port: number;
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxConnections: number;
  /** Per-client-address limits, checked at accept; none in some tests. */
  clientLimits?: ClientLimits | undefined;
  logger: Logger;
  metrics: ProxyMetrics;
  onRequest(req: IncomingMessage, res: ServerResponse): void;
  /** Called with an `error` listener already on the socket. */
  onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void;
}

// What Node reports in 'clientError' → what the client is told.
const CLIENT_ERRORS: Record<string, ProxyErrorCode> = {
  HPE_HEADER_OVERFLOW: 'PROXY_ERR_HEADER_TOO_LARGE',
  ERR_HTTP_REQUEST_TIMEOUT: 'PROXY_ERR_HEADER_TIMEOUT',
};

/**
 * The public port: one `http.Server` with exactly one `upgrade` listener (guard 4), the client
 * socket's `error` handler installed before anything else runs (guard 2), every listener body
 * behind try/catch so no throw reaches Node (guard 3), and the server limits of guard 9. It also
 * keeps every accepted socket, so `destroy()` leaves none behind: `closeAllConnections()` does
 * not reach upgraded sockets.
 */
export class Listener implements Service {
  readonly #options: ListenerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  readonly #lifecycle = new Lifecycle('listener');
  #closed: Promise<void> | undefined;

  constructor(options: ListenerOptions) {
    this.#options = options;
    this.#server = createServer({
      maxHeaderSize: options.maxHeaderBytes,
      // The router checks Host itself (presence and syntax), with a code and a log line.
      requireHostHeader: false,
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      // How often the two deadlines above are checked (Node's default is 30 s).
      connectionsCheckingInterval: Math.min(
        1000,
        Math.max(50, Math.floor(options.headersTimeoutMs / 4)),
      ),
    });
    this.#server.maxConnections = options.maxConnections;
    // A handshake has a dozen headers; Node keeps only the first 100 of a flood (ws CVE-2024-37890).
    this.#server.maxHeadersCount = 100;
    this.#server.on('connection', (socket: Socket) => this.#track(socket));
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) =>
      this.#request(req, res),
    );
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.#upgrade(req, socket, head),
    );
    this.#server.on('clientError', (err: Error, socket: Socket) => this.#clientError(err, socket));
    this.#server.on('drop', (data?: { remoteAddress?: string }) => {
      options.metrics.error('PROXY_ERR_TOO_MANY_CONNECTIONS');
      // Throttled per client by the logger: a reconnect storm is a few lines and a count.
      options.logger.warn('connection dropped at accept', {
        code: 'PROXY_ERR_TOO_MANY_CONNECTIONS',
        maxConnections: options.maxConnections,
        client: data?.remoteAddress,
      });
    });
  }

  /** How many `upgrade` listeners the server has: exactly one, always. */
  get upgradeListenerCount(): number {
    return this.#server.listenerCount('upgrade');
  }

  start(): Promise<void> {
    return this.#lifecycle.start(async () => {
      // Node calls every upgrade listener; a second one would fight this one for the socket.
      if (this.upgradeListenerCount !== 1) {
        throw new ProxyError(
          'PROXY_ERR_INTERNAL',
          `expected exactly one upgrade listener, found ${this.upgradeListenerCount}`,
        );
      }
      await new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        this.#server.listen(this.#options.port, this.#options.host, () => {
          this.#server.off('error', reject);
          resolve();
        });
      });
      this.#server.on('error', (err) => {
        this.#options.logger.error('listener error', { code: 'PROXY_ERR_INTERNAL', err });
      });
    });
  }

  address(): AddressInfo {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new NotStartedError('listener');
    return address;
  }

  /** Open sockets on the public port, tunnels included. */
  getConnections(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.getConnections((err, count) => (err ? reject(err) : resolve(count)));
    });
  }

  /** Stops accepting new connections; established ones (and their tunnels) continue. Idempotent. */
  stopAccepting(): void {
    if (this.#closed) return;
    this.#closed = new Promise<void>((resolve) => {
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
    });
    this.#server.closeIdleConnections();
  }

  /** Resolves once every connection has ended; the caller drains the tunnels first. */
  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      this.stopAccepting();
      this.#server.closeIdleConnections();
      await this.#closed;
    });
  }

  /** Destroys every socket the server ever accepted that is still open. */
  destroy(): Promise<void> {
    return this.#lifecycle.destroy(async () => {
      this.stopAccepting();
      const closing = [...this.#sockets].map(
        (socket) => new Promise((resolve) => socket.once('close', resolve)),
      );
      for (const socket of this.#sockets) socket.destroy();
      await Promise.all([this.#closed, ...closing]);
    });
  }

  #track(socket: Socket): void {
    if (this.#options.clientLimits && !this.#options.clientLimits.accept(socket)) return;
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    // Guard 2: Node removed its own error handler before emitting 'upgrade'; a reset from here on
    // would crash the process without this. It stays for the socket's whole life.
    socket.on('error', socketOnError);
    this.#options.clientLimits?.headersDone(socket);
    try {
      this.#options.onUpgrade(req, socket, head);
    } catch (err) {
      this.#internalError(err);
      if (socket.bytesWritten === 0) {
        endSocket(socket, rawErrorResponse('PROXY_ERR_INTERNAL', randomUUID()));
      } else {
        socket.destroy();
      }
    }
  }

  #request(req: IncomingMessage, res: ServerResponse): void {
    this.#options.clientLimits?.headersDone(req.socket);
    try {
      this.#options.onRequest(req, res);
    } catch (err) {
      this.#internalError(err);
      sendError(res, 'PROXY_ERR_INTERNAL', randomUUID());
    }
  }

  #clientError(err: Error, socket: Socket): void {
    const nodeCode = errorCode(err);
    // A client that reset or left mid-request is gone; there is nobody to answer.
    if (nodeCode === 'ECONNRESET' || nodeCode === 'HPE_INVALID_EOF_STATE' || !socket.writable) {
      socket.destroy();
      return;
    }
    const code = CLIENT_ERRORS[nodeCode] ?? 'PROXY_ERR_BAD_REQUEST';
    const requestId = randomUUID();
    this.#options.metrics.error(code);
    this.#options.logger.warn('bad request', {
      code,
      cause: nodeCode,
      requestId,
      client: socket.remoteAddress,
    });
    // The socket still belongs to Node's parser: answer, then destroy once written.
    if (socket.bytesWritten === 0) {
      endSocket(socket, rawErrorResponse(code, requestId), { drainInput: false });
    } else {
      socket.destroy();
    }
  }

  #internalError(err: unknown): void {
    this.#options.metrics.error('PROXY_ERR_INTERNAL');
    this.#options.logger.error('listener threw', {
      code: 'PROXY_ERR_INTERNAL',
      err,
      stack: err instanceof Error ? err.stack : undefined,
    });
  }
}

/** Errors on upgrade sockets end in 'close', where the owner cleans up; nothing else to do here. */
function socketOnError(this: Socket): void {
  this.destroy();
}
