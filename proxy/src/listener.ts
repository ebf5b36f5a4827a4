import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
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
import {
  MAX_HEADERS,
  couldBeUpgrade,
  headEnd,
  parseUpgradeHead,
  type UpgradeRequest,
} from './upgrade-head.js';

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
  onUpgrade(req: UpgradeRequest, socket: Socket, head: Buffer): void;
}

type ConnectionListener = (this: Server, socket: Socket) => void;

const kListener = Symbol('callgate.listener');
/** The first request head so far: null before any byte, undefined once it is no longer read here. */
const kPeek = Symbol('callgate.peek');
type Accepted = Socket & { [kListener]?: Listener; [kPeek]?: Buffer | null | undefined };

// What Node reports in 'clientError' → what the client is told.
const CLIENT_ERRORS: Record<string, ProxyErrorCode> = {
  HPE_HEADER_OVERFLOW: 'PROXY_ERR_HEADER_TOO_LARGE',
  ERR_HTTP_REQUEST_TIMEOUT: 'PROXY_ERR_HEADER_TIMEOUT',
};

/**
 * The public port: one `http.Server` with exactly one `upgrade` listener (Node calls every one,
 * and two would fight over the socket), the client socket's `error` handler installed before
 * anything else runs (an upgraded socket has none of Node's, and an unhandled socket error ends
 * the process), every listener body behind try/catch so no throw reaches Node, and limits on
 * header size, header count, header time and connections. It also keeps every accepted socket, so
 * `destroy()` leaves none behind: `closeAllConnections()` does not reach upgraded sockets.
 *
 * The first request head of a connection is read here before Node's HTTP server sees it: a clean
 * WebSocket upgrade (see `parseUpgradeHead`) goes to `onUpgrade` straight away, without Node's
 * parser, `IncomingMessage` and per-connection listeners, which cost more CPU than the rest of an
 * upgrade; everything else is handed to the server with its bytes put back (`unshift`), and Node
 * answers it exactly as before. The header deadline runs from accept either way.
 */
export class Listener implements Service {
  readonly #options: ListenerOptions;
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  /** Node's own 'connection' listener: sockets not upgraded here are handed to it. */
  readonly #httpConnection: ConnectionListener;
  /** Sockets whose first request head is not complete yet → `performance.now()` at accept. */
  readonly #pendingHeads = new Map<Socket, number>();
  readonly #checkInterval: number;
  #checkTimer: NodeJS.Timeout | undefined;
  readonly #lifecycle = new Lifecycle('listener');
  #closed: Promise<void> | undefined;

  constructor(options: ListenerOptions) {
    this.#options = options;
    // How often the header deadlines are checked, Node's and this class's (Node's default is 30 s).
    this.#checkInterval = Math.min(1000, Math.max(50, Math.floor(options.headersTimeoutMs / 4)));
    this.#server = createServer({
      maxHeaderSize: options.maxHeaderBytes,
      // The router checks Host itself (presence and syntax), with a code and a log line.
      requireHostHeader: false,
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      connectionsCheckingInterval: this.#checkInterval,
    });
    this.#server.maxConnections = options.maxConnections;
    // A handshake has a dozen headers; Node keeps only the first 100 of a flood (ws CVE-2024-37890).
    this.#server.maxHeadersCount = MAX_HEADERS;
    // Node's server reads every accepted socket through its 'connection' listener; it is taken
    // off here and called for the sockets this class does not upgrade itself.
    const nodeListeners = this.#server.listeners('connection') as ConnectionListener[];
    if (nodeListeners.length !== 1) {
      throw new ProxyError(
        'PROXY_ERR_INTERNAL',
        `expected one 'connection' listener on Node's HTTP server, found ${nodeListeners.length}`,
      );
    }
    this.#httpConnection = nodeListeners[0]!;
    this.#server.removeListener('connection', this.#httpConnection);
    this.#server.on('connection', (socket: Socket) => this.#accepted(socket));
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) =>
      this.#request(req, res),
    );
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) =>
      this.#upgrade(req, socket, head, false),
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
      this.#checkTimer = setInterval(() => this.#checkHeads(), this.#checkInterval);
      this.#checkTimer.unref();
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
      clearInterval(this.#checkTimer);
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
      clearInterval(this.#checkTimer);
    });
  }

  #accepted(socket: Accepted): void {
    if (this.#options.clientLimits && !this.#options.clientLimits.accept(socket)) return;
    this.#sockets.add(socket);
    this.#pendingHeads.set(socket, performance.now());
    socket[kListener] = this;
    socket[kPeek] = null;
    socket.once('close', onAcceptedClose);
    // Until the head is read, a reset is only this socket's end.
    socket.on('error', socketOnError);
    socket.on('data', onPeekData);
    socket.on('end', onPeekEnd);
  }

  /** Shared socket listeners' entry points (they cannot reach # members from outside). */
  static closed(socket: Accepted): void {
    const self = socket[kListener]!;
    self.#sockets.delete(socket);
    self.#pendingHeads.delete(socket);
  }

  /** Bytes of a connection's first request head. */
  static peekData(socket: Accepted, chunk: Buffer): void {
    const self = socket[kListener]!;
    try {
      self.#peekData(socket, chunk);
    } catch (err) {
      self.#internalError(err);
      socket.destroy();
    }
  }

  /** The client half-closed before its head was complete: like Node, nobody to answer. */
  static peekEnded(socket: Accepted): void {
    socket[kListener]!.#endPeek(socket);
    socket.destroy();
  }

  #peekData(socket: Accepted, chunk: Buffer): void {
    const before = socket[kPeek];
    const data = before ? Buffer.concat([before, chunk]) : chunk;
    if (!couldBeUpgrade(data)) {
      this.#handOff(socket, data);
      return;
    }
    const end = headEnd(data);
    if (end < 0) {
      // Node answers 431 to an oversized head: it gets the bytes as soon as they are too many.
      if (data.length > this.#options.maxHeaderBytes) this.#handOff(socket, data);
      else socket[kPeek] = data;
      return;
    }
    const req =
      end + 4 <= this.#options.maxHeaderBytes ? parseUpgradeHead(data, end, socket) : undefined;
    if (req === undefined) {
      this.#handOff(socket, data);
      return;
    }
    this.#endPeek(socket);
    this.#upgrade(req, socket, data.subarray(end + 4), true);
  }

  #endPeek(socket: Accepted): void {
    socket[kPeek] = undefined;
    socket.removeListener('data', onPeekData);
    socket.removeListener('end', onPeekEnd);
  }

  /**
   * Node's HTTP server takes the socket from here, with the bytes read so far put back first.
   * Node's clocks start now: the header deadline stays counted from accept (#checkHeads), but
   * Node's whole-request deadline (`REQUEST_TIMEOUT_MS`) runs from here, i.e. from the first byte
   * of anything that is not an upgrade, at most `HEADERS_TIMEOUT_MS` after accept.
   */
  #handOff(socket: Accepted, data: Buffer): void {
    this.#endPeek(socket);
    // Node installs its own error handler, which reports parse errors through 'clientError'.
    socket.removeListener('error', socketOnError);
    socket.pause();
    socket.unshift(data);
    this.#httpConnection.call(this.#server, socket);
    socket.resume();
  }

  /**
   * The header deadline, from accept until the first request head is complete (Node's own
   * starts when it gets the socket, later than accept for the sockets read here first).
   */
  #checkHeads(): void {
    const expired = performance.now() - this.#options.headersTimeoutMs;
    for (const [socket, acceptedAt] of this.#pendingHeads) {
      if (acceptedAt > expired) continue;
      this.#pendingHeads.delete(socket);
      if ((socket as Accepted)[kPeek] !== undefined) {
        this.#endPeek(socket);
        socket.removeListener('error', socketOnError);
      }
      this.#clientError(HEADERS_TIMEOUT, socket);
    }
  }

  /** `hasErrorHandler`: read here, with `socketOnError` on since accept. */
  #upgrade(req: UpgradeRequest, socket: Socket, head: Buffer, hasErrorHandler: boolean): void {
    this.#pendingHeads.delete(socket);
    // Node removed its own error handler before emitting 'upgrade': a reset from here on would
    // crash the process without this. It stays for the socket's whole life.
    if (!hasErrorHandler) socket.on('error', socketOnError);
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
    this.#pendingHeads.delete(req.socket);
    this.#options.clientLimits?.headersDone(req.socket);
    try {
      this.#options.onRequest(req, res);
    } catch (err) {
      this.#internalError(err);
      sendError(res, 'PROXY_ERR_INTERNAL', randomUUID());
    }
  }

  #clientError(err: Error, socket: Socket): void {
    this.#pendingHeads.delete(socket);
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

function onPeekData(this: Accepted, chunk: Buffer): void {
  Listener.peekData(this, chunk);
}

function onPeekEnd(this: Accepted): void {
  Listener.peekEnded(this);
}

function onAcceptedClose(this: Accepted): void {
  Listener.closed(this);
}

/** What Node reports when a request head is not complete in time (answered 408). */
const HEADERS_TIMEOUT = Object.assign(new Error('request headers not complete in time'), {
  code: 'ERR_HTTP_REQUEST_TIMEOUT',
});
