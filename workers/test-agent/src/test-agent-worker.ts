import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadAgent, type Agent, type LoadAgentOptions, type PacerFactory } from '@callgate/agent';
import type { TestAgentSampleRate } from '@callgate/protocol';
import {
  Lifecycle,
  StreamServer,
  sendJsonError,
  traceFields,
  type DrainableService,
  type Logger,
  type Registry,
  type UpgradeVerdict,
} from '@callgate/runtime';
import type { WebSocket } from 'ws';
import { createTestAgentMetrics, type TestAgentMetrics } from './metrics.js';
import { SESSIONS_PATH, SessionApi, TEST_AGENT_PREFIX } from './session-api.js';
import { SessionTokens, isSessionId } from './session-token.js';
import { StaticFiles } from './static-files.js';
import { TestAgentSession } from './test-agent-session.js';

export interface TestAgentWorkerOptions {
  host: string;
  /** 0 picks a free port; `address()` tells which. */
  port: number;
  logger: Logger;
  registry: Registry;
  /** HMAC key of session tokens, shared by every test-agent worker behind one proxy. */
  secret: string | Uint8Array;
  /** When set, `POST /test-agent/sessions` needs it as a bearer token. */
  apiKey?: string | undefined;
  /** The agent; default: `loadAgent(agentOptions)` at start (parrot). */
  agent?: Agent;
  agentOptions?: LoadAgentOptions;
  /** Rate of the PCM16 frames both ways. Default 16000. */
  sampleRate?: TestAgentSampleRate;
  /** Default 50. */
  maxSessions?: number;
  /** Default 300. */
  sessionMaxDurationSeconds?: number;
  /** How long a new session's token may open its socket. Default 120. */
  sessionTokenTtlSeconds?: number;
  /** Default 60. */
  sessionCreateRatePerMinute?: number;
  /** Default 10. */
  maxBadMessages?: number;
  heartbeatIntervalMs?: number;
  maxBufferedBytes?: number;
  /** How long close handshakes may take before terminate(). Default 3000. */
  closeTimeoutMs?: number;
  /**
   * After `beginDrain()`, how long new sessions and upgrades are still accepted while /readyz
   * already answers 503 (the proxies route here until their next probe). Default 0.
   */
  acceptGraceMs?: number;
  /** Folder of the page; default `workers/test-agent/public`. */
  publicDir?: string;
  /** Wall clock in ms for token expiry and rate limits; injectable for tests. */
  now?: () => number;
  /** Outbound pacer of each Call; tests may tick by hand. */
  createPacer?: PacerFactory;
  /** How far ahead of real time agent audio is sent (Call `playbackLeadMs`). Default 100. */
  playbackLeadMs?: number;
}

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
  readonly #options: TestAgentWorkerOptions;
  readonly #log: Logger;
  readonly #lifecycle = new Lifecycle('test-agent worker');
  readonly #server: StreamServer<UpgradeContext>;
  readonly #metrics: TestAgentMetrics;
  readonly #tokens: SessionTokens;
  readonly #api: SessionApi;
  readonly #static: StaticFiles;
  readonly #slots = new Map<string, Slot>();
  readonly #now: () => number;
  readonly #sampleRate: TestAgentSampleRate;
  readonly #maxSessions: number;
  readonly #maxDurationSeconds: number;
  #agent: Agent | undefined;

  constructor(options: TestAgentWorkerOptions) {
    this.#options = options;
    // The `service` field is main.ts's (one value for every line of the process).
    this.#log = options.logger;
    this.#now = options.now ?? Date.now;
    this.#sampleRate = options.sampleRate ?? 16000;
    this.#maxSessions = options.maxSessions ?? 50;
    this.#maxDurationSeconds = options.sessionMaxDurationSeconds ?? 300;
    this.#agent = options.agent;
    this.#metrics = createTestAgentMetrics(options.registry);
    this.#tokens = new SessionTokens({
      secret: typeof options.secret === 'string' ? Buffer.from(options.secret) : options.secret,
      ttlSeconds: options.sessionTokenTtlSeconds ?? 120,
      now: this.#now,
    });
    const serverOptions: ConstructorParameters<typeof StreamServer<UpgradeContext>>[0] = {
      name: 'test-agent',
      host: options.host,
      port: options.port,
      logger: options.logger,
      registry: options.registry,
      maxSessions: this.#maxSessions,
      routeUpgrade: (req, url) => this.#routeUpgrade(req, url),
      openSession: (ws, _req, context) => this.#openSession(ws, context),
      handleRequest: (req, res, url) => this.#handleRequest(req, res, url),
    };
    if (options.heartbeatIntervalMs !== undefined) {
      serverOptions.heartbeatIntervalMs = options.heartbeatIntervalMs;
    }
    if (options.maxBufferedBytes !== undefined)
      serverOptions.maxBufferedBytes = options.maxBufferedBytes;
    if (options.closeTimeoutMs !== undefined) serverOptions.closeTimeoutMs = options.closeTimeoutMs;
    if (options.acceptGraceMs !== undefined) serverOptions.acceptGraceMs = options.acceptGraceMs;
    this.#server = new StreamServer<UpgradeContext>(serverOptions);
    this.#api = new SessionApi({
      tokens: this.#tokens,
      apiKey: options.apiKey,
      maxDurationSeconds: this.#maxDurationSeconds,
      ratePerMinute: options.sessionCreateRatePerMinute ?? 60,
      // Sessions follow the upgrades: a session created during the accept grace can still open
      // its socket here, and none is created once upgrades are refused.
      availability: () =>
        !this.#server.isAccepting
          ? 'draining'
          : this.#server.sessionCount >= this.#maxSessions
            ? 'full'
            : 'ok',
      logger: this.#log,
      metrics: this.#metrics,
      countError: (code) => this.#server.countError(code),
      now: this.#now,
    });
    this.#static = new StaticFiles(
      options.publicDir === undefined ? {} : { dir: options.publicDir },
    );
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
    return this.#sampleRate;
  }

  /** Reads the page, loads the agent, then listens. */
  start(): Promise<void> {
    return this.#lifecycle.start(async () => {
      await this.#static.load();
      this.#agent ??= await loadAgent(this.#options.agentOptions ?? {});
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
      return refuse(404, 'TEST_AGENT_ERR_NOT_FOUND', 'sessions live at /test-agent/<sessionId>');
    }
    const sessionId = m[1]!;
    if (!isSessionId(sessionId)) {
      return refuse(404, 'TEST_AGENT_ERR_BAD_SESSION_ID', 'not a session id');
    }
    const check = this.#tokens.verify(sessionId, url.searchParams.get('token') ?? undefined);
    if (!check.ok) return refuse(401, check.code, check.message);
    const now = this.#now();
    this.#sweep(now);
    const slot = this.#slots.get(sessionId);
    if (slot?.state === 'live' || slot?.state === 'claimed') {
      return refuse(409, 'TEST_AGENT_ERR_SESSION_BUSY', 'this session already has a socket');
    }
    if (slot?.state === 'ended') {
      return refuse(410, 'TEST_AGENT_ERR_SESSION_ENDED', 'this session has ended; start a new one');
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
      sampleRate: this.#sampleRate,
      maxDurationSeconds: this.#maxDurationSeconds,
      maxBadMessages: this.#options.maxBadMessages ?? 10,
      logger: this.#log,
      metrics: this.#metrics,
      tunnelId,
    };
    if (this.#options.closeTimeoutMs !== undefined) {
      sessionOptions.closeTimeoutMs = this.#options.closeTimeoutMs;
    }
    if (this.#options.createPacer) sessionOptions.createPacer = this.#options.createPacer;
    if (this.#options.playbackLeadMs !== undefined) {
      sessionOptions.playbackLeadMs = this.#options.playbackLeadMs;
    }
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
    if (path === SESSIONS_PATH) return this.#api.handle(req, res).then(() => true);
    if (!path.startsWith(TEST_AGENT_PREFIX)) return false;
    const name = path.slice(TEST_AGENT_PREFIX.length);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.#refuseRequest(res, 405, 'TEST_AGENT_ERR_METHOD_NOT_ALLOWED', `${path} answers GET`, {
        Allow: 'GET, HEAD',
      });
      return true;
    }
    if (this.#static.serve(req, res, name)) {
      this.#metrics.staticRequests.inc({ status: String(res.statusCode) });
      return true;
    }
    this.#refuseRequest(res, 404, 'TEST_AGENT_ERR_NOT_FOUND', `no such file: ${path}`);
    return true;
  }

  #refuseRequest(
    res: ServerResponse,
    status: number,
    code: 'TEST_AGENT_ERR_NOT_FOUND' | 'TEST_AGENT_ERR_METHOD_NOT_ALLOWED',
    message: string,
    headers: Record<string, string> = {},
  ): void {
    this.#log.debug('request refused', { code, status, ...traceFields(res.req) });
    this.#server.countError(code);
    this.#metrics.staticRequests.inc({ status: String(status) });
    sendJsonError(res, status, code, message, headers);
  }
}

function refuse(status: number, code: string, message: string): UpgradeVerdict<UpgradeContext> {
  return { accept: false, status, code, message };
}
