import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Agent, PacerFactory } from '@callgate/agent';
import type { TestAgentSampleRate } from '@callgate/protocol';
import {
  Lifecycle,
  RETRY_AFTER_SECONDS,
  StreamServer,
  createRegistry,
  sendJsonError,
  statusOf,
  traceFields,
  type CodesWith,
  type DrainableService,
  type Logger,
  type Registry,
  type UpgradeVerdict,
} from '@callgate/runtime';
import type { WebSocket } from 'ws';
import type { TestAgentConfig } from './config.js';
import { TEST_AGENT_ERRORS } from './errors.js';
import { createTestAgentMetrics, type TestAgentMetrics } from './metrics.js';
import { SessionRateLimit, clientOf } from './session-rate-limit.js';
import { SessionTokens, createSessionId, isSessionId } from './session-token.js';
import { StaticFiles } from './static-files.js';
import { TestAgentSession } from './test-agent-session.js';

/** The parts of the worker's environment the worker itself uses (main.ts reads the rest). */
export type TestAgentWorkerConfig = Pick<
  TestAgentConfig,
  | 'host'
  | 'port'
  | 'secret'
  | 'apiKey'
  | 'sampleRate'
  | 'maxSessions'
  | 'sessionMaxDurationSeconds'
  | 'sessionTokenTtlSeconds'
  | 'sessionCreateRatePerMinute'
  | 'maxBadMessages'
  | 'heartbeatIntervalMs'
  | 'maxBufferedBytes'
  | 'acceptGraceMs'
  | 'playbackLeadMs'
>;

export interface TestAgentWorkerOptions {
  config: TestAgentWorkerConfig;
  logger: Logger;
  /** The agent, or how to load it; loaded once in `start()`, so a bad module fails the start. */
  agent: Agent | (() => Promise<Agent>);
  /** Default: a fresh registry (never prom-client's global one). */
  registry?: Registry;
  // For tests only:
  /** Wall clock in ms for token expiry and rate limits. Default `Date.now`. */
  now?: () => number;
  /** Outbound pacer of each Call, to tick by hand. */
  createPacer?: PacerFactory;
  /** Folder of the page. Default `workers/test-agent/public`. */
  publicDir?: string;
  /** Folder of @callgate/audio's built modules the page imports. Default `packages/audio/dist`. */
  audioDir?: string;
  /** How long close handshakes may take before terminate(). Default 3000. */
  closeTimeoutMs?: number;
}

/** What `POST /test-agent/sessions` answers (201). */
export interface CreatedSession {
  sessionId: string;
  token: string;
  /** Path and query of the session's WebSocket, relative to the page's origin. */
  wsUrl: string;
  /** When the token stops opening the socket (ISO 8601). */
  expiresAt: string;
  maxDurationSeconds: number;
}

/** Path prefix of everything the worker serves; the proxy routes it here. */
export const TEST_AGENT_PREFIX = '/test-agent/';
export const SESSIONS_PATH = '/test-agent/sessions';
// The page posts no body; anything larger than this is not a session request.
const MAX_BODY_BYTES = 1024;

type HttpErrorCode = CodesWith<typeof TEST_AGENT_ERRORS, 'status'>;

interface UpgradeContext {
  sessionId: string;
  tokenExpiresAtMs: number;
  /** The proxy's `X-Tunnel-Id`, for the session's log lines. */
  tunnelId: string | undefined;
}

/**
 * Where a session id stands on this worker. The proxy pins a session id to one worker (rendezvous
 * hash), so this local table is enough to refuse a second socket (409) or a reused one (410).
 */
type Slot =
  { state: 'claimed'; atMs: number } | { state: 'live' } | { state: 'ended'; untilMs: number };

const SESSION_PATH = /^\/test-agent\/([^/]+)$/;
// An accepted upgrade whose handshake never completed (the client left) frees its id after this.
const CLAIM_TIMEOUT_MS = 10_000;

/**
 * The test-agent worker: the browser page and its assets, `POST /test-agent/sessions`, and the
 * `/test-agent/<sessionId>` WebSockets, on one StreamServer ('test-agent'). Each socket is a
 * TestAgentSession running the agent through the same Call as the media worker.
 *
 * Lifecycle as StreamServer: `beginDrain()` turns readiness to 503 at once, and new sessions and
 * upgrades to 503 once the accept grace is over (both follow `StreamServer.isAccepting`);
 * `close()` waits for the grace and for live sessions; `destroy()` closes them with 1012.
 */
export class TestAgentWorker implements DrainableService {
  readonly registry: Registry;
  readonly metrics: TestAgentMetrics;
  readonly #config: TestAgentWorkerConfig;
  readonly #options: TestAgentWorkerOptions;
  readonly #log: Logger;
  readonly #lifecycle = new Lifecycle('test-agent worker');
  readonly #server: StreamServer<UpgradeContext>;
  readonly #tokens: SessionTokens;
  readonly #rateLimit: SessionRateLimit;
  /** Digest of TEST_AGENT_API_KEY: comparing digests keeps the check constant-time. */
  readonly #apiKeyDigest: Buffer | undefined;
  readonly #static: StaticFiles;
  readonly #slots = new Map<string, Slot>();
  readonly #now: () => number;
  #agent: Agent | undefined;

  constructor(options: TestAgentWorkerOptions) {
    const { config } = options;
    this.#config = config;
    this.#options = options;
    // The `service` field is main.ts's (one value for every line of the process).
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
    this.registry = options.registry ?? createRegistry();
    this.metrics = createTestAgentMetrics(this.registry);
    this.#tokens = new SessionTokens({
      secret: Buffer.from(config.secret),
      ttlSeconds: config.sessionTokenTtlSeconds,
      now: this.#now,
    });
    this.#rateLimit = new SessionRateLimit(config.sessionCreateRatePerMinute);
    this.#apiKeyDigest = config.apiKey === undefined ? undefined : digest(config.apiKey);
    const serverOptions: ConstructorParameters<typeof StreamServer<UpgradeContext>>[0] = {
      name: 'test-agent',
      host: config.host,
      port: config.port,
      logger: this.#log,
      registry: this.registry,
      maxSessions: config.maxSessions,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      maxBufferedBytes: config.maxBufferedBytes,
      acceptGraceMs: config.acceptGraceMs,
      routeUpgrade: (req, url) => this.#routeUpgrade(req, url),
      openSession: (ws, _req, context) => this.#openSession(ws, context),
      handleRequest: (req, res, url) => this.#handleRequest(req, res, url),
    };
    if (options.closeTimeoutMs !== undefined) serverOptions.closeTimeoutMs = options.closeTimeoutMs;
    this.#server = new StreamServer<UpgradeContext>(serverOptions);
    this.#static = new StaticFiles(options.publicDir, options.audioDir);
  }

  /** The bound address; throws RUNTIME_ERR_NOT_STARTED before `start()` has finished. */
  address(): AddressInfo {
    return this.#server.address();
  }

  /** `http://host:port` of the bound address. */
  get url(): string {
    return this.#server.url;
  }

  get sessionCount(): number {
    return this.#server.sessionCount;
  }

  /** True from `beginDrain()` on (/readyz answers 503). */
  get isDraining(): boolean {
    return this.#server.isDraining;
  }

  /** Whether new sessions and upgrades are taken: until `beginDrain()`, then during the grace. */
  get isAccepting(): boolean {
    return this.#server.isAccepting;
  }

  /** The agent sessions run; known once `start()` resolved. */
  get agentName(): string | undefined {
    return this.#agent?.name;
  }

  get sampleRate(): TestAgentSampleRate {
    return this.#config.sampleRate;
  }

  /** Reads the page, loads the agent, then listens. */
  start(): Promise<void> {
    return this.#lifecycle.start(async () => {
      await this.#static.load();
      const { agent } = this.#options;
      this.#agent = typeof agent === 'function' ? await agent() : agent;
      await this.#server.start();
    });
  }

  beginDrain(): void {
    this.#server.beginDrain();
  }

  close(): Promise<void> {
    return this.#lifecycle.close(() => this.#server.close());
  }

  destroy(reason?: Error): Promise<void> {
    return this.#lifecycle.destroy(() => this.#server.destroy(reason));
  }

  #routeUpgrade(req: IncomingMessage, url: URL): UpgradeVerdict<UpgradeContext> {
    const m = SESSION_PATH.exec(url.pathname);
    if (!m) {
      return refuse('TEST_AGENT_ERR_NOT_FOUND', 'sessions live at /test-agent/<sessionId>');
    }
    const sessionId = m[1]!;
    if (!isSessionId(sessionId)) {
      return refuse('TEST_AGENT_ERR_BAD_SESSION_ID', 'not a session id');
    }
    const check = this.#tokens.verify(sessionId, url.searchParams.get('token') ?? undefined);
    // A token fails with one of the TEST_AGENT_ERR_TOKEN_* codes, each answered with a status.
    if (!check.ok) return refuse(check.code as HttpErrorCode, check.message);
    const now = this.#now();
    this.#sweep(now);
    const slot = this.#slots.get(sessionId);
    if (slot?.state === 'live' || slot?.state === 'claimed') {
      return refuse('TEST_AGENT_ERR_SESSION_BUSY', 'this session already has a socket');
    }
    if (slot?.state === 'ended') {
      return refuse('TEST_AGENT_ERR_SESSION_ENDED', 'this session has ended; start a new one');
    }
    // Claimed before the handshake, so two sockets racing for one session cannot both win.
    this.#slots.set(sessionId, { state: 'claimed', atMs: now });
    return {
      accept: true,
      context: {
        sessionId,
        tokenExpiresAtMs: check.expiresAtMs,
        tunnelId: traceFields(req).tunnelId,
      },
    };
  }

  /** Forgets ended sessions whose token has expired anyway, and claims that never opened. */
  #sweep(now: number): void {
    for (const [id, slot] of this.#slots) {
      if (
        (slot.state === 'ended' && slot.untilMs <= now) ||
        (slot.state === 'claimed' && now - slot.atMs > CLAIM_TIMEOUT_MS)
      ) {
        this.#slots.delete(id);
      }
    }
  }

  #openSession(ws: WebSocket, context: UpgradeContext): TestAgentSession {
    const { sessionId, tokenExpiresAtMs, tunnelId } = context;
    const sessionOptions: ConstructorParameters<typeof TestAgentSession>[0] = {
      sessionId,
      ws,
      server: this.#server,
      agent: this.#agent!,
      sampleRate: this.#config.sampleRate,
      maxDurationSeconds: this.#config.sessionMaxDurationSeconds,
      maxBadMessages: this.#config.maxBadMessages,
      playbackLeadMs: this.#config.playbackLeadMs,
      logger: this.#log,
      metrics: this.metrics,
      tunnelId,
    };
    if (this.#options.closeTimeoutMs !== undefined) {
      sessionOptions.closeTimeoutMs = this.#options.closeTimeoutMs;
    }
    if (this.#options.createPacer) sessionOptions.createPacer = this.#options.createPacer;
    const session = new TestAgentSession(sessionOptions);
    this.#slots.set(sessionId, { state: 'live' });
    void session.closed.then(() => {
      this.#slots.set(sessionId, { state: 'ended', untilMs: tokenExpiresAtMs });
    });
    session.start();
    return session;
  }

  #handleRequest(req: IncomingMessage, res: ServerResponse, url: URL): boolean | Promise<boolean> {
    const path = url.pathname;
    if (path === '/test-agent') {
      res.writeHead(308, { location: TEST_AGENT_PREFIX, 'content-length': 0 });
      res.end();
      return true;
    }
    if (path === SESSIONS_PATH) return this.#createSession(req, res).then(() => true);
    if (!path.startsWith(TEST_AGENT_PREFIX)) return false;
    const name = path.slice(TEST_AGENT_PREFIX.length);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.#refuseRequest(res, 'TEST_AGENT_ERR_METHOD_NOT_ALLOWED', `${path} answers GET`, {
        Allow: 'GET, HEAD',
      });
      return true;
    }
    if (this.#static.serve(req, res, name)) {
      this.metrics.staticRequests.inc({ status: String(res.statusCode) });
      return true;
    }
    this.#refuseRequest(res, 'TEST_AGENT_ERR_NOT_FOUND', `no such file: ${path}`);
    return true;
  }

  /**
   * `POST /test-agent/sessions`: checks the API key, the worker's state and the creation rate, then
   * issues a session id and its signed token. Keeps no per-session state: the token carries it.
   */
  async #createSession(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The proxy's X-Request-Id joins these lines with its `request` line.
    const { requestId } = traceFields(req);
    const log = requestId === undefined ? this.#log : this.#log.child({ requestId });
    const refuseSession = (
      code: HttpErrorCode,
      message: string,
      headers: Record<string, string>,
    ): void => {
      const status = statusOf(TEST_AGENT_ERRORS, code);
      log.info('session request refused', { code, status });
      this.#server.countError(code);
      this.metrics.sessionRequests.inc({ status: String(status) });
      sendJsonError(res, status, code, message, headers);
    };
    if (req.method !== 'POST') {
      refuseSession('TEST_AGENT_ERR_METHOD_NOT_ALLOWED', `${SESSIONS_PATH} answers POST`, {
        Allow: 'POST',
      });
      return;
    }
    if (!this.#authorized(req.headers.authorization)) {
      refuseSession('TEST_AGENT_ERR_UNAUTHORIZED', 'a valid API key is required', {
        'WWW-Authenticate': 'Bearer realm="test-agent"',
      });
      return;
    }
    if (!(await readSmallBody(req))) {
      refuseSession('TEST_AGENT_ERR_BODY_TOO_LARGE', `request body over ${MAX_BODY_BYTES} bytes`, {
        Connection: 'close',
      });
      return;
    }
    // Sessions follow the upgrades: a session created during the accept grace can still open
    // its socket here, and none is created once upgrades are refused.
    if (!this.#server.isAccepting) {
      refuseSession('TEST_AGENT_ERR_DRAINING', 'worker is draining; try again shortly', {
        'Retry-After': String(RETRY_AFTER_SECONDS),
      });
      return;
    }
    if (this.#server.sessionCount >= this.#config.maxSessions) {
      refuseSession('TEST_AGENT_ERR_AT_CAPACITY', 'every session slot is taken', {
        'Retry-After': String(RETRY_AFTER_SECONDS),
      });
      return;
    }
    const waitSeconds = this.#rateLimit.take(clientOf(req), this.#now());
    if (waitSeconds > 0) {
      refuseSession('TEST_AGENT_ERR_RATE_LIMITED', 'too many sessions created; slow down', {
        'Retry-After': String(waitSeconds),
      });
      return;
    }
    const sessionId = createSessionId();
    const { token, expiresAtMs } = this.#tokens.issue(sessionId);
    const created: CreatedSession = {
      sessionId,
      token,
      wsUrl: `${TEST_AGENT_PREFIX}${sessionId}?token=${encodeURIComponent(token)}`,
      expiresAt: new Date(expiresAtMs).toISOString(),
      maxDurationSeconds: this.#config.sessionMaxDurationSeconds,
    };
    this.metrics.sessionRequests.inc({ status: '201' });
    log.info('session created', { sessionId, expiresAt: created.expiresAt });
    const body = JSON.stringify(created);
    res.writeHead(201, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(body);
  }

  #authorized(header: string | undefined): boolean {
    if (!this.#apiKeyDigest) return true;
    const m = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
    return m !== null && timingSafeEqual(digest(m[1]!), this.#apiKeyDigest);
  }

  #refuseRequest(
    res: ServerResponse,
    code: 'TEST_AGENT_ERR_NOT_FOUND' | 'TEST_AGENT_ERR_METHOD_NOT_ALLOWED',
    message: string,
    headers: Record<string, string> = {},
  ): void {
    const status = statusOf(TEST_AGENT_ERRORS, code);
    this.#log.debug('request refused', { code, status, ...traceFields(res.req) });
    this.#server.countError(code);
    this.metrics.staticRequests.inc({ status: String(status) });
    sendJsonError(res, status, code, message, headers);
  }
}

function refuse(code: HttpErrorCode, message: string): UpgradeVerdict<UpgradeContext> {
  return { accept: false, status: statusOf(TEST_AGENT_ERRORS, code), code, message };
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Reads and discards a body; false when it is over MAX_BODY_BYTES. An oversized body is still
 * drained (the server's request timeout bounds that) so the 413 reaches the client instead of a
 * reset socket.
 */
function readSmallBody(req: IncomingMessage): Promise<boolean> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.byteLength;
    });
    req.once('end', () => resolve(bytes <= MAX_BODY_BYTES));
    // A client that went away mid-body: nothing to answer, the write is dropped.
    req.once('error', () => resolve(false));
    req.once('close', () => resolve(false));
  });
}
