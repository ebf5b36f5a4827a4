import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { CallgateError, NotStartedError, errorCode } from './errors.js';
import { Heartbeat } from './heartbeat.js';
import { HttpEndpoints } from './http-endpoints.js';
import type { Logger } from './logger.js';
import { Lifecycle } from './service.js';
import type { DrainableService } from './service.js';
import { validateStreamServerOptions } from './stream-server-options.js';
import type { StreamServerOptions } from './stream-server-options.js';
import { createStreamServerMetrics } from './stream-server-metrics.js';
import type { StreamServerMetrics } from './stream-server-metrics.js';
import { SessionTable } from './session-table.js';
import { UpgradeGate } from './upgrade-gate.js';

/**
 * The WebSocket server both workers run on: one `http.Server` with exactly one 'upgrade' listener
 * and a `ws` server in noServer mode. It decides each upgrade before the handshake (drain,
 * capacity, the worker's `routeUpgrade`), keeps sessions alive with one heartbeat timer, sheds slow
 * readers, and serves /healthz, /readyz and /metrics.
 *
 * Lifecycle: `beginDrain()` turns readiness to 503 at once but keeps listening, so health checks see
 * 503 rather than a refused connection; new upgrades are still accepted for `acceptGraceMs` (until
 * the proxies have seen the 503), then refused with 503. `close()` waits for the grace to pass and
 * every session to end, then closes the listener; `destroy()` ends the grace, closes sessions with
 * 1012, terminates the rest after `closeTimeoutMs`, and cuts a pending `close()` short.
 */
export class StreamServer<Ctx> implements DrainableService {
  readonly #options: StreamServerOptions<Ctx>;
  readonly #log: Logger;
  readonly #closeTimeoutMs: number;
  readonly #acceptGraceMs: number;
  readonly #lifecycle: Lifecycle;
  readonly #wss: WebSocketServer;
  readonly #metrics: StreamServerMetrics;
  readonly #sessions: SessionTable<Ctx>;
  readonly #heartbeat: Heartbeat;
  readonly #gate: UpgradeGate<Ctx>;
  readonly #endpoints: HttpEndpoints<Ctx>;

  #server: Server | undefined;
  #starting: Promise<void> | undefined;
  #draining = false;
  /** False once the accept grace after beginDrain() is over (or at once without one). */
  #accepting = true;
  #graceTimer: NodeJS.Timeout | undefined;
  #graceWaiters: (() => void)[] = [];
  #destroyed = false;
  #shutdown: Promise<void> | undefined;
  /** Every TCP connection, so destroy() can end them all. */
  readonly #connections = new Set<Socket>();
  #idleWaiters: (() => void)[] = [];

  constructor(options: StreamServerOptions<Ctx>) {
    validateStreamServerOptions(options);
    this.#options = options;
    this.#log = options.logger.child({ server: options.name });
    this.#closeTimeoutMs = options.closeTimeoutMs ?? 3000;
    this.#acceptGraceMs = options.acceptGraceMs ?? 0;
    this.#lifecycle = new Lifecycle(`${options.name} stream server`);
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayloadBytes ?? 65536,
      perMessageDeflate: false,
      clientTracking: true,
    });
    this.#metrics = createStreamServerMetrics(options.registry, options.name.replace(/-/g, '_'));
    const countError = (code: string): void => this.countError(code);
    this.#sessions = new SessionTable({
      log: this.#log,
      metrics: this.#metrics,
      countError,
      handlers: options,
      maxBufferedBytes: options.maxBufferedBytes ?? 262144,
      closeTimeoutMs: this.#closeTimeoutMs,
      onForget: () => this.#checkIdle(),
    });
    this.#heartbeat = new Heartbeat({
      intervalMs: options.heartbeatIntervalMs ?? 15000,
      log: this.#log,
      countError,
      entries: () => this.#sessions.entries(),
    });
    this.#gate = new UpgradeGate({
      log: this.#log,
      metrics: this.#metrics,
      handlers: options,
      isAccepting: () => this.isAccepting,
      sessionCount: () =>
        options.maxUnstartedSessions === undefined
          ? this.#sessions.size
          : this.#sessions.startedCount,
      unstartedCount: (client) => this.#sessions.unstartedCount(client),
      evictUnstarted: (client) => this.#sessions.evictOldestUnstarted(client),
      accept: (req, socket, head, context) => {
        this.#wss.handleUpgrade(req, socket, head, (ws) => this.#sessions.open(ws, req, context));
      },
      onSettled: () => this.#checkIdle(),
    });
    this.#endpoints = new HttpEndpoints({
      log: this.#log,
      handlers: options,
      isDraining: () => this.#draining,
      countError,
    });
    // ws emits this for handshake problems it finds itself (e.g. a malformed
    // Sec-WebSocket-Protocol); answering here keeps the JSON error shape and the counters.
    this.#wss.on('wsClientError', (err, socket) => {
      this.#gate.refuse(socket, 'bad_handshake', 'RUNTIME_ERR_BAD_HANDSHAKE', err.message);
    });
  }

  /** True from `beginDrain()` on: /readyz answers 503. */
  get isDraining(): boolean {
    return this.#draining;
  }

  /**
   * Whether new work is taken: true until `beginDrain()`, and during its accept grace; false after
   * it, and after `destroy()`. Workers gate their own new work (e.g. session creation) on it.
   */
  get isAccepting(): boolean {
    return this.#accepting && !this.#destroyed;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** The bound address; throws RUNTIME_ERR_NOT_STARTED before `start()` has finished. */
  address(): AddressInfo {
    const address = this.#server?.address();
    if (!address || typeof address === 'string') {
      throw new NotStartedError(`${this.#options.name} stream server`);
    }
    return address;
  }

  /** `http://host:port` of the bound address (IPv6 in brackets). */
  get url(): string {
    const { address, port } = this.address();
    return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  }

  /**
   * The underlying `http.Server`, for tests and diagnostics (`getConnections`). Do not add
   * 'upgrade' listeners to it: exactly one is allowed. Throws before `start()`.
   */
  get httpServer(): Server {
    if (!this.#server) throw new NotStartedError(`${this.#options.name} stream server`);
    return this.#server;
  }

  /** Counts one error in `<prefix>_errors_total{code}`. */
  countError(code: string): void {
    this.#metrics.errors.inc({ code });
  }

  start(): Promise<void> {
    return this.#lifecycle.start(() => {
      this.#starting = this.#listen();
      return this.#starting;
    });
  }

  beginDrain(): void {
    if (this.#draining) return;
    this.#draining = true;
    const graceMs = this.#destroyed ? 0 : this.#acceptGraceMs;
    this.#log.info('stream server draining', {
      sessions: this.#sessions.size,
      acceptGraceMs: graceMs,
    });
    if (graceMs === 0) {
      this.#stopAccepting();
      return;
    }
    this.#graceTimer = setTimeout(() => {
      this.#graceTimer = undefined;
      this.#log.info('accept grace over, refusing new sessions', {
        sessions: this.#sessions.size,
      });
      this.#stopAccepting();
    }, graceMs);
  }

  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      this.beginDrain();
      await this.#starting?.catch(() => undefined);
      // Sessions accepted during the grace are waited for like the others.
      await this.#whenNotAccepting();
      await this.#whenIdle();
      await this.#closeServer();
    });
  }

  destroy(reason?: Error): Promise<void> {
    return this.#lifecycle.destroy(async () => {
      this.#draining = true;
      this.#destroyed = true;
      // Ends the accept grace: no new sessions, and a pending close() stops waiting for it.
      this.#stopAccepting();
      if (reason) {
        this.#log.warn('stream server destroyed', {
          code: errorCode(reason, 'RUNTIME_ERR_CLOSED'),
          err: reason,
        });
      }
      // Cut a pending close() short: it goes on to #closeServer, which this awaits too.
      this.#wakeIdleWaiters();
      await this.#starting?.catch(() => undefined);
      this.#gate.destroyPending();

      await settleWithin(this.#sessions.closeAll(1012, 'service restart'), this.#closeTimeoutMs);
      const stragglers = this.#sessions.terminateAll();
      for (const socket of this.#connections) socket.destroy();
      await this.#closeServer();
      // Give sessions a bounded chance to finish their cleanup after the terminate.
      await settleWithin(stragglers, this.#closeTimeoutMs);
    });
  }

  /**
   * Sends with backpressure. If `ws.bufferedAmount > maxBufferedBytes` the peer is a slow reader:
   * the socket is closed with 1013 'slow reader' (terminated if it does not close within
   * closeTimeoutMs), counted in `<prefix>_sessions_shed_total` and
   * `errors{code=RUNTIME_ERR_SLOW_READER}`, and false is returned. Also false when the socket is
   * not open.
   */
  send(ws: WebSocket, data: string | Buffer | Uint8Array, options?: { binary?: boolean }): boolean {
    return this.#sessions.send(ws, data, options);
  }

  /**
   * Sheds a session whose peer stopped reading, found by the worker's own bound (e.g. mark
   * echoes lagging): the same 1013, log line and counters as a `send()` over `maxBufferedBytes`.
   */
  shed(ws: WebSocket, why: Record<string, unknown> = {}): void {
    this.#sessions.shed(ws, why);
  }

  async #listen(): Promise<void> {
    const server = createServer({
      headersTimeout: this.#options.headersTimeoutMs ?? 10000,
      requestTimeout: this.#options.requestTimeoutMs ?? 15000,
      maxHeaderSize: this.#options.maxHeaderBytes ?? 16384,
    });
    this.#server = server;
    server.on('connection', (socket: Socket) => {
      this.#connections.add(socket);
      socket.once('close', () => this.#connections.delete(socket));
    });
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void this.#endpoints.handle(req, res);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#gate.handle(req, socket, head);
    });
    // Node emits exactly one 'upgrade' per request to every listener; two owners of one socket
    // corrupt it (ws #885, #1478). Fail loudly if anything else attached one.
    if (server.listenerCount('upgrade') !== 1) {
      throw new CallgateError('RUNTIME_ERR_LISTEN', 'stream server must have one upgrade listener');
    }
    const { host, port } = this.#options;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(
          new CallgateError(
            'RUNTIME_ERR_LISTEN',
            `cannot listen on ${host}:${port}: ${err.message}`,
            { cause: err },
          ),
        );
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.removeListener('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => {
      // After listen, 'error' means accept() failed (EMFILE and friends); the listener survives.
      this.#log.error('http server error', { code: 'RUNTIME_ERR_LISTEN', err });
      this.countError('RUNTIME_ERR_LISTEN');
    });
    if (!this.#destroyed) this.#heartbeat.start();
  }

  #stopAccepting(): void {
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    this.#graceTimer = undefined;
    this.#accepting = false;
    const waiters = this.#graceWaiters;
    this.#graceWaiters = [];
    for (const wake of waiters) wake();
  }

  #whenNotAccepting(): Promise<void> {
    if (!this.#accepting) return Promise.resolve();
    return new Promise<void>((resolve) => this.#graceWaiters.push(resolve));
  }

  #whenIdle(): Promise<void> {
    if (this.#destroyed || (this.#sessions.size === 0 && this.#gate.pendingCount === 0)) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  #checkIdle(): void {
    if (this.#sessions.size === 0 && this.#gate.pendingCount === 0) this.#wakeIdleWaiters();
  }

  #wakeIdleWaiters(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Stops the heartbeat and the listener; shared by close() and destroy(). */
  #closeServer(): Promise<void> {
    this.#shutdown ??= new Promise<void>((resolve) => {
      this.#heartbeat.stop();
      this.#sessions.clearTimers();
      this.#wss.close();
      const server = this.#server;
      if (!server?.listening) {
        resolve();
        return;
      }
      server.close(() => resolve());
      // Idle keep-alive connections (health checkers) would hold close() open otherwise.
      server.closeAllConnections();
    });
    return this.#shutdown;
  }
}

/** Resolves when every promise settled or after `ms`, whichever comes first. */
function settleWithin(promises: readonly Promise<unknown>[], ms: number): Promise<void> {
  if (promises.length === 0) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    void Promise.allSettled(promises).then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
