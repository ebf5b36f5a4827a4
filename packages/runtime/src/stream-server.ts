import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import { WebSocket, WebSocketServer } from 'ws';
import { closeOrTerminate } from './close-or-terminate.js';
import { env } from './env-schema.js';
import {
  CallgateError,
  NotStartedError,
  RUNTIME_ERRORS,
  closeOf,
  errorCode,
  statusOf,
  type CodesWith,
} from './errors.js';
import { checkWebSocketHandshake } from './handshake.js';
import { Heartbeat } from './heartbeat.js';
import { RETRY_AFTER_SECONDS, answerProbe, sendJsonError, writeHttpError } from './http-answers.js';
import type { Logger } from './logger.js';
import { serveMetrics } from './metrics.js';
import { parseRequestTarget } from './request-target.js';
import { Lifecycle } from './service.js';
import type { DrainableService } from './service.js';
import { traceFields } from './trace.js';

export type UpgradeVerdict<Ctx> =
  | { accept: true; context: Ctx }
  | {
      accept: false;
      status: number;
      code: string;
      message: string;
      headers?: Record<string, string>;
    };

export interface StreamSession {
  readonly id: string;
  /** Graceful close with a WebSocket close code; idempotent. */
  close(code: number, reason: string): void;
  /** Resolves when the session is over (socket closed and session cleanup done). */
  readonly closed: Promise<void>;
  /**
   * With `maxUnstartedSessions`: whether the session is real work yet (a call past its `start`).
   * Sessions without it count as started.
   */
  readonly started?: boolean;
}

export interface StreamServerOptions<Ctx> {
  /**
   * 'media' | 'test-agent'; metric prefix (dashes → underscores) and log field `server`. The
   * `service` field is the process's own, set on the logger by its main.ts.
   */
  name: string;
  host: string;
  /** 0 picks a free port; `address()` tells which. */
  port: number;
  logger: Logger;
  registry: Registry;
  /** Over it, upgrades get 503 with Retry-After (RUNTIME_ERR_TOO_MANY_SESSIONS). */
  maxSessions: number;
  /**
   * Default: none, and every session holds one of `maxSessions`. When set, only started sessions
   * (`StreamSession.started`) and upgrades being decided count against `maxSessions`; sockets that
   * have not started are bounded by this on their own, and a new one past it evicts the oldest
   * (closed 1013 'too many unstarted streams', `RUNTIME_ERR_UNSTARTED_EVICTED`), so idle sockets
   * can never keep real calls out.
   */
  maxUnstartedSessions?: number;
  /** Default 65536; ws closes larger messages with 1009. */
  maxPayloadBytes?: number;
  /** Default 15000; a socket that missed the previous ping's pong is terminated. */
  heartbeatIntervalMs?: number;
  /** Default 262144; see `send()`. */
  maxBufferedBytes?: number;
  /** Default 10000. */
  headersTimeoutMs?: number;
  /** Default 15000. */
  requestTimeoutMs?: number;
  /** Default 16384. */
  maxHeaderBytes?: number;
  /** Default 3000: how long `destroy()` and shedding wait for close handshakes before terminate(). */
  closeTimeoutMs?: number;
  /**
   * Default 0. After `beginDrain()`, keep accepting upgrades this long while /readyz already
   * answers 503: a proxy keeps routing new calls here until its next readiness probe, and each of
   * those would otherwise be refused (a lost call). Set it above the proxy's probe interval plus
   * its probe timeout. `close()` waits for it; `destroy()` cuts it short.
   */
  acceptGraceMs?: number;
  /**
   * Decides before the handshake. A throw or rejection answers 500 (RUNTIME_ERR_HANDLER). Refusals
   * are logged and counted in `<prefix>_errors_total{code}` by the server; do not count them again.
   */
  routeUpgrade(req: IncomingMessage, url: URL): UpgradeVerdict<Ctx> | Promise<UpgradeVerdict<Ctx>>;
  /**
   * Called once the handshake is done. The server has already attached an 'error' listener to
   * `ws`. A throw closes the socket with 1011.
   */
  openSession(ws: WebSocket, req: IncomingMessage, context: Ctx): StreamSession;
  /** Plain HTTP besides /healthz, /readyz, /metrics. `false` (or no handler) answers 404. */
  handleRequest?(req: IncomingMessage, res: ServerResponse, url: URL): boolean | Promise<boolean>;
}

/** Outcomes of an upgrade: the `outcome` label of `<prefix>_upgrades_total`. */
type UpgradeOutcome =
  'accepted' | 'rejected' | 'draining' | 'over_capacity' | 'bad_handshake' | 'error';

const UPGRADE_OUTCOMES: readonly UpgradeOutcome[] = [
  'accepted',
  'rejected',
  'draining',
  'over_capacity',
  'bad_handshake',
  'error',
];

/** A runtime code that is answered with an HTTP status (from `RUNTIME_ERRORS`). */
type RefusalCode = CodesWith<typeof RUNTIME_ERRORS, 'status'>;

/** All clients together may hold this many times `maxUnstartedSessions` idle sockets. */
const UNSTARTED_CLIENTS_FACTOR = 4;

/**
 * The StreamServer's defaults, in one place: the workers' environment tables take theirs from here
 * (`HEARTBEAT_INTERVAL_MS`, `MAX_BUFFERED_BYTES`) and their sessions close with the same deadline.
 */
export const STREAM_SERVER_DEFAULTS = {
  /** How long a close handshake may take before the socket is terminated. */
  closeTimeoutMs: 3000,
  acceptGraceMs: 0,
  /** Outbound bytes queued in one WebSocket before its reader is shed with 1013. */
  maxBufferedBytes: 262_144,
  /** Twilio's largest message is about 1 KiB; 64 KiB leaves room and bounds memory per socket. */
  maxPayloadBytes: 65_536,
  heartbeatIntervalMs: 15_000,
} as const;

/**
 * The environment variables behind a StreamServer's settings, read the same way by every worker:
 * name, default and bounds live here; each worker words its own README line where the meaning
 * differs (calls or sessions). `ACCEPT_GRACE_MS` defaults to 5000 in a deployed worker (the library
 * default is 0): long enough for the proxies' next readiness probe with their default timings.
 */
export const streamServerEnv = {
  acceptGraceMs: (doc: string) => env.int('ACCEPT_GRACE_MS', 5000, { min: 0, max: 600_000 }, doc),
  heartbeatIntervalMs: () =>
    env.int(
      'HEARTBEAT_INTERVAL_MS',
      STREAM_SERVER_DEFAULTS.heartbeatIntervalMs,
      { min: 100, max: 600_000 },
      'WebSocket ping interval; a missed pong ends the session',
    ),
  maxBufferedBytes: (doc: string) =>
    env.int(
      'MAX_BUFFERED_BYTES',
      STREAM_SERVER_DEFAULTS.maxBufferedBytes,
      { min: 16_384, max: 1 << 30 },
      doc,
    ),
};

/** Closing every session at `destroy()`: the drain deadline passed, so the worker is restarting. */
const SERVICE_RESTART = { code: 1012, reason: 'service restart' } as const;

interface SessionEntry {
  readonly ws: WebSocket;
  session: StreamSession | undefined;
  /** Pong seen since the last ping; a socket that missed one by the next tick is dead. */
  alive: boolean;
  /** Settles once the session (or, when openSession threw, the socket) is over. */
  done: Promise<void>;
  /** Who opened it: the X-Forwarded-For the proxy wrote, else the socket's peer. */
  readonly client: string;
}

/**
 * The WebSocket server both workers run on: one `http.Server` with exactly one 'upgrade' listener
 * and a `ws` server in noServer mode.
 *
 * Upgrades are decided before the handshake: a valid WebSocket handshake, drain, capacity, then
 * the worker's `routeUpgrade`. Refusals answer a JSON HTTP error on the raw socket, are logged, and
 * counted in `<prefix>_upgrades_total{outcome}` and `<prefix>_errors_total{code}`. Open sessions
 * are kept alive with one heartbeat timer, sent to with backpressure (slow readers are shed), and
 * forgotten once over, keeping `<prefix>_sessions_active` in step. Plain HTTP gets /healthz,
 * /readyz (503 while draining) and /metrics, then the worker's `handleRequest`, then 404; every
 * error answers `{"error":{"code","message"}}`.
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
  readonly #maxBufferedBytes: number;
  readonly #lifecycle: Lifecycle;
  readonly #wss: WebSocketServer;
  readonly #heartbeat: Heartbeat;

  readonly #upgrades: Counter<'outcome'>;
  readonly #sessionsActive: Gauge;
  readonly #sessionsTotal: Counter;
  readonly #errors: Counter<'code'>;
  readonly #sessionsShed: Counter;

  readonly #sessions = new Map<WebSocket, SessionEntry>();
  /** Sockets being shed or evicted: closed already, no longer sent to or counted as unstarted. */
  readonly #shedding = new WeakSet<WebSocket>();
  /** Cancels the terminate deadline of each socket being closed. */
  readonly #closeDeadlines = new Set<() => void>();
  /** Sockets between the 'upgrade' event and handleUpgrade (awaiting routeUpgrade). */
  readonly #pending = new Set<Duplex>();

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
    validateOptions(options);
    this.#options = options;
    this.#log = options.logger.child({ server: options.name });
    this.#closeTimeoutMs = options.closeTimeoutMs ?? STREAM_SERVER_DEFAULTS.closeTimeoutMs;
    this.#acceptGraceMs = options.acceptGraceMs ?? STREAM_SERVER_DEFAULTS.acceptGraceMs;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? STREAM_SERVER_DEFAULTS.maxBufferedBytes;
    this.#lifecycle = new Lifecycle(`${options.name} stream server`);
    this.#wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayloadBytes ?? STREAM_SERVER_DEFAULTS.maxPayloadBytes,
      perMessageDeflate: false,
      clientTracking: true,
    });

    const prefix = options.name.replace(/-/g, '_');
    const registers = [options.registry];
    this.#upgrades = new Counter({
      name: `${prefix}_upgrades_total`,
      help: 'WebSocket upgrade requests by outcome.',
      labelNames: ['outcome'] as const,
      registers,
    });
    for (const outcome of UPGRADE_OUTCOMES) this.#upgrades.inc({ outcome }, 0);
    this.#sessionsActive = new Gauge({
      name: `${prefix}_sessions_active`,
      help: 'Open WebSocket sessions.',
      registers,
    });
    this.#sessionsTotal = new Counter({
      name: `${prefix}_sessions_total`,
      help: 'WebSocket sessions opened.',
      registers,
    });
    this.#errors = new Counter({
      name: `${prefix}_errors_total`,
      help: 'Errors by code.',
      labelNames: ['code'] as const,
      registers,
    });
    this.#sessionsShed = new Counter({
      name: `${prefix}_sessions_shed_total`,
      help: 'Sessions closed with 1013 because the peer did not read fast enough.',
      registers,
    });

    this.#heartbeat = new Heartbeat({
      intervalMs: options.heartbeatIntervalMs ?? STREAM_SERVER_DEFAULTS.heartbeatIntervalMs,
      log: this.#log,
      countError: (code) => this.countError(code),
      entries: () => this.#sessions.values(),
    });
    // ws emits this for handshake problems it finds itself (e.g. a malformed
    // Sec-WebSocket-Protocol); answering here keeps the JSON error shape and the counters.
    this.#wss.on('wsClientError', (err, socket) => {
      this.#refuse(socket, 'bad_handshake', 'RUNTIME_ERR_BAD_HANDSHAKE', err.message);
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
    this.#errors.inc({ code });
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
      for (const socket of this.#pending) socket.destroy();

      await settleWithin(this.#closeAll(), this.#closeTimeoutMs);
      const stragglers = [...this.#sessions.values()];
      for (const entry of stragglers) entry.ws.terminate();
      for (const socket of this.#connections) socket.destroy();
      await this.#closeServer();
      // Give sessions a bounded chance to finish their cleanup after the terminate.
      await settleWithin(
        stragglers.map((e) => e.done),
        this.#closeTimeoutMs,
      );
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
    if (ws.readyState !== WebSocket.OPEN || this.#shedding.has(ws)) return false;
    if (ws.bufferedAmount > this.#maxBufferedBytes) {
      this.shed(ws);
      return false;
    }
    if (options?.binary === undefined) ws.send(data);
    else ws.send(data, { binary: options.binary });
    return true;
  }

  /**
   * Ends a session whose peer does not read: 1013 'slow reader' (through the session, so it can
   * record why it ended), terminated if the close handshake does not finish in closeTimeoutMs,
   * counted once. `send()` calls it when ws's own buffer passes `maxBufferedBytes`; a worker calls
   * it when its own bound shows the same (e.g. mark acks lagging), with `why` saying what did.
   */
  shed(ws: WebSocket, why: Record<string, unknown> = {}): void {
    if (this.#shedding.has(ws) || ws.readyState !== WebSocket.OPEN) return;
    this.#shedding.add(ws);
    const session = this.#sessions.get(ws)?.session;
    this.#log.warn('slow reader, shedding session', {
      code: 'RUNTIME_ERR_SLOW_READER',
      sessionId: session?.id,
      bufferedAmount: ws.bufferedAmount,
      maxBufferedBytes: this.#maxBufferedBytes,
      ...why,
    });
    this.countError('RUNTIME_ERR_SLOW_READER');
    this.#sessionsShed.inc();
    const close = closeOf(RUNTIME_ERRORS, 'RUNTIME_ERR_SLOW_READER');
    try {
      session?.close(close, 'slow reader');
    } finally {
      this.#closeOrTerminate(ws, close, 'slow reader');
    }
  }

  // ---- plain HTTP ---------------------------------------------------------------------------

  async #handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = parseRequestTarget(req);
    if (!url) {
      this.countError('RUNTIME_ERR_BAD_REQUEST');
      this.#refuseRequest(res, 'RUNTIME_ERR_BAD_REQUEST', 'invalid request target');
      return;
    }
    try {
      const path = url.pathname;
      if (path === '/healthz' || path === '/readyz' || path === '/metrics') {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          this.countError('RUNTIME_ERR_METHOD_NOT_ALLOWED');
          this.#refuseRequest(res, 'RUNTIME_ERR_METHOD_NOT_ALLOWED', `${path} answers GET`, {
            Allow: 'GET, HEAD',
          });
          return;
        }
        if (path === '/metrics') await serveMetrics(this.#options.registry, req, res);
        else answerProbe(res, path === '/healthz' ? 'healthz' : 'readyz', !this.#draining);
        return;
      }
      const handled = (await this.#options.handleRequest?.(req, res, url)) ?? false;
      if (!handled && !res.headersSent) {
        this.countError('RUNTIME_ERR_NOT_FOUND');
        this.#log.debug('no route', { code: 'RUNTIME_ERR_NOT_FOUND', method: req.method, path });
        this.#refuseRequest(res, 'RUNTIME_ERR_NOT_FOUND', `no route for ${req.method} ${path}`);
      }
    } catch (err) {
      this.#log.error('request handler failed', {
        code: 'RUNTIME_ERR_HANDLER',
        method: req.method,
        path: url.pathname,
        err,
      });
      this.countError('RUNTIME_ERR_HANDLER');
      if (!res.headersSent) this.#refuseRequest(res, 'RUNTIME_ERR_HANDLER', 'internal error');
      else res.destroy();
    }
  }

  #refuseRequest(
    res: ServerResponse,
    code: RefusalCode,
    message: string,
    headers: Record<string, string> = {},
  ): void {
    sendJsonError(res, statusOf(RUNTIME_ERRORS, code), code, message, headers);
  }

  // ---- upgrades -----------------------------------------------------------------------------

  /** The http.Server 'upgrade' listener. */
  #handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // Node removed its own 'error' listener before emitting 'upgrade' (nodejs/node #18868): a
    // peer reset without one crashes the process.
    const onSocketError = (): void => {
      socket.destroy();
    };
    socket.on('error', onSocketError);
    try {
      this.#upgrade(req, socket, head, onSocketError).catch((err: unknown) =>
        this.#upgradeCrashed(socket, err),
      );
    } catch (err) {
      this.#upgradeCrashed(socket, err);
    }
  }

  async #upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    onSocketError: () => void,
  ): Promise<void> {
    const url = parseRequestTarget(req);
    if (!url) {
      this.#refuse(socket, 'bad_handshake', 'RUNTIME_ERR_BAD_HANDSHAKE', 'invalid request target');
      return;
    }
    const handshake = checkWebSocketHandshake('RUNTIME', req, head.length);
    if (!handshake.ok) {
      this.#refuse(socket, 'bad_handshake', handshake.code, handshake.reason, {}, url, req);
      return;
    }
    if (!this.isAccepting) {
      this.#refuseDraining(socket, url, req);
      return;
    }
    const { maxSessions: max, maxUnstartedSessions: maxUnstarted } = this.#options;
    // With maxUnstartedSessions only started sessions hold a slot; upgrades being decided do too.
    const holding = maxUnstarted === undefined ? this.#sessions.size : this.#startedCount();
    if (holding + this.#pending.size >= max) {
      this.#refuse(
        socket,
        'over_capacity',
        'RUNTIME_ERR_TOO_MANY_SESSIONS',
        `session limit of ${max} reached`,
        { 'Retry-After': String(RETRY_AFTER_SECONDS) },
        url,
        req,
      );
      return;
    }

    if (maxUnstarted !== undefined) {
      // Idle sockets never keep callers out: per client address, a new socket pushes out that
      // client's oldest idle one, so a squatter only ever evicts its own; all clients together
      // hold at most UNSTARTED_CLIENTS_FACTOR times as many, and past that the client holding the
      // most loses its oldest.
      const client = clientOf(req);
      let own = this.#unstartedCount(client) - maxUnstarted + 1;
      while (own > 0 && this.#evictOldestUnstarted(client)) own--;
      let over =
        this.#unstartedCount() + this.#pending.size - maxUnstarted * UNSTARTED_CLIENTS_FACTOR + 1;
      while (over > 0 && this.#evictOldestUnstarted()) over--;
    }

    // Holding a slot while routeUpgrade runs keeps a burst of upgrades from overshooting the limit.
    this.#pending.add(socket);
    try {
      let verdict: UpgradeVerdict<Ctx>;
      try {
        verdict = await this.#options.routeUpgrade(req, url);
      } catch (err) {
        this.#log.error('routeUpgrade failed', {
          code: 'RUNTIME_ERR_HANDLER',
          path: url.pathname,
          err,
        });
        this.#refuse(socket, 'error', 'RUNTIME_ERR_HANDLER', 'internal error');
        return;
      }
      if (socket.destroyed || !socket.writable) {
        // The client left while we decided; nothing to answer.
        socket.destroy();
        return;
      }
      if (!this.isAccepting) {
        this.#refuseDraining(socket, url, req);
        return;
      }
      if (!verdict.accept) {
        const status = isErrorStatus(verdict.status) ? verdict.status : 500;
        this.#answerUpgrade(
          socket,
          'rejected',
          status,
          verdict.code,
          verdict.message,
          verdict.headers ?? {},
          url,
          req,
        );
        return;
      }
      const { context } = verdict;
      // ws attaches its own socket 'error' listener for the rest of the socket's life.
      socket.removeListener('error', onSocketError);
      this.#wss.handleUpgrade(req, socket, head, (ws) => this.#openSession(ws, req, context));
    } finally {
      this.#pending.delete(socket);
      this.#checkIdle();
    }
  }

  #upgradeCrashed(socket: Duplex, err: unknown): void {
    this.#log.error('upgrade failed', { code: 'RUNTIME_ERR_HANDLER', err });
    this.#upgrades.inc({ outcome: 'error' });
    this.countError('RUNTIME_ERR_HANDLER');
    if (socket.listenerCount('error') === 0) socket.on('error', () => undefined);
    socket.destroy();
  }

  #refuseDraining(socket: Duplex, url: URL, req: IncomingMessage): void {
    this.#refuse(
      socket,
      'draining',
      'RUNTIME_ERR_DRAINING',
      'server is draining',
      { 'Retry-After': String(RETRY_AFTER_SECONDS) },
      url,
      req,
    );
  }

  /** Refuses an upgrade with a runtime code, answered with the status of its catalogue entry. */
  #refuse(
    socket: Duplex,
    outcome: Exclude<UpgradeOutcome, 'accepted' | 'rejected'>,
    code: RefusalCode,
    message: string,
    headers: Record<string, string> = {},
    url?: URL,
    req?: IncomingMessage,
  ): void {
    const status = statusOf(RUNTIME_ERRORS, code);
    this.#answerUpgrade(socket, outcome, status, code, message, headers, url, req);
  }

  /** Answers `status` with a JSON error on the raw socket, logs (unless 'error') and counts it. */
  #answerUpgrade(
    socket: Duplex,
    outcome: Exclude<UpgradeOutcome, 'accepted'>,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string>,
    url?: URL,
    req?: IncomingMessage,
  ): void {
    this.#upgrades.inc({ outcome });
    this.countError(code);
    // outcome 'error' was logged where it happened, with its cause.
    if (outcome !== 'error') {
      const level = outcome === 'over_capacity' ? 'warn' : 'info';
      // The tunnel id joins this line with the proxy's PROXY_ERR_UPSTREAM_REJECTED line.
      const trace = req ? { tunnelId: traceFields(req).tunnelId } : {};
      this.#log[level]('upgrade refused', {
        code,
        status,
        outcome,
        path: url?.pathname,
        ...trace,
      });
    }
    writeHttpError(socket, status, code, message, headers);
  }

  // ---- sessions -----------------------------------------------------------------------------

  /** Tracks a socket whose handshake is done and hands it to `openSession`. */
  #openSession(ws: WebSocket, req: IncomingMessage, context: Ctx): void {
    const entry: SessionEntry = {
      ws,
      session: undefined,
      alive: true,
      done: Promise.resolve(),
      client: clientOf(req),
    };
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself after a protocol error (1009 for maxPayload, 1002 otherwise).
      const code =
        err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? 'RUNTIME_ERR_MESSAGE_TOO_LARGE'
          : 'RUNTIME_ERR_WS_PROTOCOL';
      this.#log.info('websocket error', {
        code,
        wsCode: err.code,
        sessionId: entry.session?.id,
        err,
      });
      this.countError(code);
    });
    ws.on('pong', () => {
      entry.alive = true;
    });
    this.#sessions.set(ws, entry);
    this.#sessionsActive.set(this.#sessions.size);
    this.#sessionsTotal.inc();
    this.#upgrades.inc({ outcome: 'accepted' });

    let session: StreamSession;
    try {
      session = this.#options.openSession(ws, req, context);
    } catch (err) {
      this.#log.error('openSession failed', { code: 'RUNTIME_ERR_HANDLER', err });
      this.countError('RUNTIME_ERR_HANDLER');
      entry.done = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      void entry.done.then(() => this.#forget(ws));
      this.#closeOrTerminate(ws, closeOf(RUNTIME_ERRORS, 'RUNTIME_ERR_HANDLER'), 'internal error');
      return;
    }
    entry.session = session;
    entry.done = Promise.resolve(session.closed).then(
      () => undefined,
      (err: unknown) => {
        this.#log.error('session ended with an error', {
          code: 'RUNTIME_ERR_HANDLER',
          sessionId: session.id,
          err,
        });
        this.countError('RUNTIME_ERR_HANDLER');
      },
    );
    void entry.done.then(() => this.#forget(ws));
  }

  #forget(ws: WebSocket): void {
    if (!this.#sessions.delete(ws)) return;
    this.#sessionsActive.set(this.#sessions.size);
    this.#checkIdle();
  }

  /** Whether a session has not started yet (and is not already being closed). */
  #isUnstarted(entry: SessionEntry): boolean {
    const session = entry.session;
    return session !== undefined && !(session.started ?? true) && !this.#shedding.has(entry.ws);
  }

  /** Sessions that say they have started (or cannot say). */
  #startedCount(): number {
    let n = 0;
    for (const e of this.#sessions.values()) if (e.session?.started ?? true) n++;
    return n;
  }

  /** Sessions that have not started (of `client`, if given), not counting those being closed. */
  #unstartedCount(client?: string): number {
    let n = 0;
    for (const e of this.#sessions.values()) {
      if (client !== undefined && e.client !== client) continue;
      if (this.#isUnstarted(e)) n++;
    }
    return n;
  }

  /**
   * Closes a session that has not started (1013), to make room for a new socket: the oldest of
   * `client`, or without it the oldest of the client holding the most unstarted ones, so a
   * squatter opening sockets it never starts evicts its own, not a real call waiting for its
   * `start`. False when there is none to close.
   */
  #evictOldestUnstarted(client?: string): boolean {
    const byClient = new Map<string, { count: number; oldest: SessionEntry }>();
    let victim: { count: number; oldest: SessionEntry } | undefined;
    for (const entry of this.#sessions.values()) {
      if (!this.#isUnstarted(entry)) continue;
      if (client !== undefined && entry.client !== client) continue;
      let held = byClient.get(entry.client);
      if (held === undefined) {
        held = { count: 0, oldest: entry };
        byClient.set(entry.client, held);
      }
      held.count++;
      if (victim === undefined || held.count > victim.count) victim = held;
    }
    if (victim === undefined) return false;
    const entry = victim.oldest;
    const session = entry.session!;
    this.#shedding.add(entry.ws);
    this.countError('RUNTIME_ERR_UNSTARTED_EVICTED');
    this.#log.warn('too many unstarted streams, closing the oldest of the client with the most', {
      code: 'RUNTIME_ERR_UNSTARTED_EVICTED',
      sessionId: session.id,
      client: entry.client,
      unstartedFromClient: victim.count,
    });
    const close = closeOf(RUNTIME_ERRORS, 'RUNTIME_ERR_UNSTARTED_EVICTED');
    try {
      session.close(close, 'too many unstarted streams');
    } finally {
      this.#closeOrTerminate(entry.ws, close, 'too many unstarted streams');
    }
    return true;
  }

  #closeOrTerminate(ws: WebSocket, code: number, reason: string): void {
    const cancel = closeOrTerminate(ws, code, reason, this.#closeTimeoutMs);
    this.#closeDeadlines.add(cancel);
    ws.once('close', () => this.#closeDeadlines.delete(cancel));
  }

  /**
   * Closes every session with 1012 (through the session when it has one); one whose close throws
   * is terminated. Returns each session's `done`.
   */
  #closeAll(): Promise<void>[] {
    const { code, reason } = SERVICE_RESTART;
    const entries = [...this.#sessions.values()];
    for (const entry of entries) {
      try {
        if (entry.session) entry.session.close(code, reason);
        else entry.ws.close(code, reason);
      } catch (err) {
        this.#log.error('session close failed, terminating', {
          code: 'RUNTIME_ERR_HANDLER',
          sessionId: entry.session?.id,
          err,
        });
        this.countError('RUNTIME_ERR_HANDLER');
        entry.ws.terminate();
      }
    }
    return entries.map((e) => e.done);
  }

  // ---- listener and drain -------------------------------------------------------------------

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
      void this.#handleRequest(req, res);
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.#handleUpgrade(req, socket, head);
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
    if (this.#destroyed || (this.#sessions.size === 0 && this.#pending.size === 0)) {
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  #checkIdle(): void {
    if (this.#sessions.size === 0 && this.#pending.size === 0) this.#wakeIdleWaiters();
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
      // The listener is closing: pending close-handshake deadlines are cut short with it.
      for (const cancel of this.#closeDeadlines) cancel();
      this.#closeDeadlines.clear();
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

/** Throws a TypeError naming the first bad option, so a misconfigured server fails at construction. */
function validateOptions<Ctx>(o: StreamServerOptions<Ctx>): void {
  if (typeof o.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_-]*$/.test(o.name)) {
    throw new TypeError(`StreamServer: name must be a metric-safe word, got "${String(o.name)}"`);
  }
  if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
    throw new TypeError(`StreamServer: port must be 0..65535, got ${o.port}`);
  }
  if (typeof o.routeUpgrade !== 'function' || typeof o.openSession !== 'function') {
    throw new TypeError('StreamServer: routeUpgrade and openSession are required');
  }
  const counts: [string, number | undefined, number][] = [
    ['maxSessions', o.maxSessions, 0],
    ['maxPayloadBytes', o.maxPayloadBytes, 1],
    ['heartbeatIntervalMs', o.heartbeatIntervalMs, 1],
    ['maxBufferedBytes', o.maxBufferedBytes, 0],
    ['headersTimeoutMs', o.headersTimeoutMs, 1],
    ['requestTimeoutMs', o.requestTimeoutMs, 1],
    ['maxHeaderBytes', o.maxHeaderBytes, 1],
    ['closeTimeoutMs', o.closeTimeoutMs, 0],
    ['acceptGraceMs', o.acceptGraceMs, 0],
    ['maxUnstartedSessions', o.maxUnstartedSessions, 1],
  ];
  for (const [name, value, min] of counts) {
    if (value === undefined && name !== 'maxSessions') continue;
    if (!Number.isInteger(value) || (value as number) < min) {
      throw new TypeError(`StreamServer: ${name} must be an integer >= ${min}, got ${value}`);
    }
  }
  // Node rejects headersTimeout > requestTimeout at listen time; say so at construction.
  if ((o.headersTimeoutMs ?? 10000) > (o.requestTimeoutMs ?? 15000)) {
    throw new TypeError('StreamServer: headersTimeoutMs must not exceed requestTimeoutMs');
  }
}

/** The caller's address: the proxy overwrites X-Forwarded-For with it (one value); else the peer. */
function clientOf(req: IncomingMessage): string {
  const forwarded = req.headers['x-forwarded-for'];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
  return first || req.socket.remoteAddress || '';
}

function isErrorStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 400 && status <= 599;
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
