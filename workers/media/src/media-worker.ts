import { createHash, timingSafeEqual } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { WebSocket } from 'ws';
import type { Agent } from '@callgate/agent';
import {
  Lifecycle,
  RESUME_HEADER,
  StreamServer,
  createRegistry,
  statusOf,
  traceFields,
  type DrainableService,
  type Logger,
  type Registry,
  type UpgradeVerdict,
  verifyResumeVouch,
} from '@callgate/runtime';
import { PacerGroup } from '@callgate/audio';
import { FRAME_MS } from '@callgate/agent';
import type { MediaConfig } from './config.js';
import { MEDIA_ERRORS, MediaError, type MediaCodeWith } from './errors.js';
import { MediaSession, type StreamResume } from './media-session.js';
import { createMediaMetrics, type MediaMetrics } from './metrics.js';
import { CALL_SID_RE, STREAM_PATH } from './twiml.js';
import { TwilioWebhooks } from './webhook.js';

export type MediaWorkerConfig = Pick<
  MediaConfig,
  | 'host'
  | 'port'
  | 'workerId'
  | 'publicUrl'
  | 'callTokenSecret'
  | 'callTokenTtlSeconds'
  | 'twilioAuthToken'
  | 'recordingsDir'
  | 'maxCalls'
  | 'acceptGraceMs'
  | 'sansPbxEnabled'
  | 'sansPbxSampleRate'
  | 'heartbeatIntervalMs'
  | 'maxBufferedBytes'
  | 'startTimeoutMs'
  | 'maxBadMessages'
  | 'playbackLeadMs'
  | 'maxWebhookBytes'
  | 'maxUnstartedStreams'
  | 'noMediaTimeoutMs'
  | 'stuckReaderMs'
  | 'sansPbxToken'
  | 'streamReconnectLimit'
  | 'streamStableMs'
>;

export interface MediaWorkerOptions {
  config: MediaWorkerConfig;
  logger: Logger;
  /** The agent, or how to load it; loaded once in `start()`, so a bad module fails the start. */
  agent: Agent | (() => Promise<Agent>);
  /** Default: a fresh registry (never prom-client's global one). */
  registry?: Registry;
}

/** What `routeUpgrade` decided for a socket: the CallSid in the path, if any. */
interface UpgradeContext {
  pathCallSid: string | undefined;
  /** The proxy's `X-Tunnel-Id`, so session lines join the proxy's `upgrade`/`tunnel closed`. */
  tunnelId: string | undefined;
  /** Set when the proxy vouched (X-Callgate-Resume) that this is a live call moving here. */
  resume: StreamResume | undefined;
}

/**
 * The media worker: a StreamServer ('media') that accepts upgrades on `/media-stream` (SansPBX)
 * and `/media-stream/<CallSid>` (Twilio), one `MediaSession` per socket, and the Twilio webhooks.
 * It keeps one live session per CallSid: a newer stream for a call replaces the older one.
 *
 * Lifecycle (Service): `start()` loads the agent, prepares RECORDINGS_DIR and listens;
 * `beginDrain()` makes /readyz 503 at once and new upgrades 503 after `acceptGraceMs` (calls the
 * proxies send until they notice are still served) while calls go on; `close()` resolves when the
 * grace is over and every call has ended (recordings written); `destroy()` closes live calls
 * with 1012 and nothing before it (the proxy reads that as "move this call" and replays it on
 * another worker with an `X-Callgate-Resume` vouch), and resolves once their recordings are
 * written.
 *
 * Moved calls: an upgrade with `X-Callgate-Resume` is checked in `routeUpgrade` (403
 * MEDIA_ERR_BAD_RESUME_VOUCH unless the vouch verifies); its session is a resumption: the call
 * token may be past its open-by time, foreign mark echoes are ignored, the agent sees
 * `info.resumed`, and the recording is a new segment.
 */
export class MediaWorker implements DrainableService {
  readonly registry: Registry;
  readonly metrics: MediaMetrics;
  readonly config: MediaWorkerConfig;
  /** The worker's logger (`workerId` on every line); sessions and webhooks derive theirs from it. */
  readonly logger: Logger;
  readonly #server: StreamServer<UpgradeContext>;
  readonly #webhooks: TwilioWebhooks;
  readonly #loadAgent: Agent | (() => Promise<Agent>);
  readonly #calls = new Map<string, MediaSession>();
  readonly #lifecycle = new Lifecycle('media worker');
  #agent: Agent | undefined;
  #pacers: PacerGroup | undefined;

  constructor(options: MediaWorkerOptions) {
    const { config } = options;
    this.config = config;
    this.logger = options.logger.child({ workerId: config.workerId });
    this.#loadAgent = options.agent;
    this.registry = options.registry ?? createRegistry();
    this.metrics = createMediaMetrics(this.registry);
    const serverOptions: ConstructorParameters<typeof StreamServer<UpgradeContext>>[0] = {
      name: 'media',
      host: config.host,
      port: config.port,
      logger: this.logger,
      registry: this.registry,
      maxSessions: config.maxCalls,
      // Sockets without a `start` hold no call slot; a bounded few, the oldest pushed out.
      maxUnstartedSessions: config.maxUnstartedStreams,
      acceptGraceMs: config.acceptGraceMs,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      maxBufferedBytes: config.maxBufferedBytes,
      routeUpgrade: (req, url) => this.#routeUpgrade(req, url),
      openSession: (ws, _req, context) => this.#openSession(ws, context),
      handleRequest: (req, res, url) => this.#webhooks.handle(req, res, url),
    };
    this.#server = new StreamServer(serverOptions);
    this.#webhooks = new TwilioWebhooks(this);
  }

  /** The bound address (after `start()`). */
  address(): AddressInfo {
    return this.#server.address();
  }

  /** `http://host:port` (after `start()`). */
  get url(): string {
    return this.#server.url;
  }

  /** True from `beginDrain()` on (/readyz answers 503). */
  get isDraining(): boolean {
    return this.#server.isDraining;
  }

  /** Whether new calls are accepted: until `beginDrain()`, then during the accept grace. */
  get isAccepting(): boolean {
    return this.#server.isAccepting;
  }

  /** Calls past `start` that have not ended. */
  get activeCalls(): number {
    return this.#calls.size;
  }

  start(): Promise<void> {
    return this.#lifecycle.start(() => this.#start());
  }

  async #start(): Promise<void> {
    this.#agent = typeof this.#loadAgent === 'function' ? await this.#loadAgent() : this.#loadAgent;
    // Every call's outbound pacer on one timer (one per worker, not one per call per frame).
    this.#pacers = new PacerGroup({ intervalMs: FRAME_MS });
    const dir = this.config.recordingsDir;
    if (dir !== undefined) {
      try {
        await mkdir(dir, { recursive: true });
      } catch (err) {
        throw new MediaError('MEDIA_ERR_RECORDING', `cannot create RECORDINGS_DIR ${dir}`, {
          cause: err,
        });
      }
    }
    if (this.config.callTokenSecret === undefined) {
      this.logger.warn('CALL_TOKEN_SECRET is not set: streams are accepted without a call token', {
        code: 'MEDIA_ERR_NO_CALL_TOKEN_SECRET',
      });
    }
    await this.#server.start();
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
    const path = url.pathname;
    let pathCallSid: string | undefined;
    if (path.startsWith(`${STREAM_PATH}/`)) {
      const segment = path.slice(STREAM_PATH.length + 1);
      if (CALL_SID_RE.test(segment)) pathCallSid = segment;
    }
    if (path !== STREAM_PATH && pathCallSid === undefined) {
      return refusal(
        'MEDIA_ERR_NO_ROUTE',
        'streams are served on /media-stream and /media-stream/<CallSid>',
      );
    }
    // SansPBX streams come to the bare path (Twilio's carry the CallSid).
    const token = this.config.sansPbxToken;
    if (
      path === STREAM_PATH &&
      token !== undefined &&
      !bearerMatches(req.headers.authorization, token)
    ) {
      return refusal(
        'MEDIA_ERR_SANSPBX_AUTH',
        'SansPBX streams need Authorization: Bearer <SANSPBX_TOKEN>',
      );
    }
    const { tunnelId } = traceFields(req);
    const header = req.headers[RESUME_HEADER];
    if (header === undefined)
      return { accept: true, context: { pathCallSid, tunnelId, resume: undefined } };
    return this.#routeResume(req, header, pathCallSid, tunnelId);
  }

  /**
   * An upgrade that says it is a live call moving here from another worker. Its vouch must be the
   * proxy's (HMAC with CALL_TOKEN_SECRET over the path and tunnel id, fresh): a caller cannot
   * forge one, as the proxy strips the header from callers. Anything else is refused with 403.
   */
  #routeResume(
    req: IncomingMessage,
    header: string | string[],
    pathCallSid: string | undefined,
    tunnelId: string | undefined,
  ): UpgradeVerdict<UpgradeContext> {
    const rawTunnelId = req.headers['x-tunnel-id'];
    const verdict = verifyResumeVouch({
      secret: this.config.callTokenSecret,
      // A repeated header is not a vouch; verifyResumeVouch calls it malformed.
      header: typeof header === 'string' ? header : header.join(', '),
      path: req.url ?? '',
      tunnelId: typeof rawTunnelId === 'string' ? rawTunnelId : undefined,
    });
    if (!verdict.ok) {
      const code = 'MEDIA_ERR_BAD_RESUME_VOUCH';
      // The server logs `upgrade refused` and counts the code too; this line says why.
      this.logger.warn('resume vouch refused', {
        code,
        reason: verdict.reason,
        ...(pathCallSid === undefined ? {} : { callSid: pathCallSid }),
        ...(tunnelId === undefined ? {} : { tunnelId }),
      });
      this.metrics.resumeRefused.inc({ reason: verdict.reason });
      return refusal(code, `resume vouch ${verdict.reason}`);
    }
    const resume: StreamResume = {
      attempt: verdict.attempt,
      issuedAtMs: verdict.issuedAtMs,
      signed: verdict.signed,
      tunnelId,
    };
    return { accept: true, context: { pathCallSid, tunnelId, resume } };
  }

  #openSession(ws: WebSocket, context: UpgradeContext): MediaSession {
    if (!this.#agent) throw new MediaError('MEDIA_ERR_INTERNAL', 'session before start()');
    return new MediaSession(ws, this, context.pathCallSid, context.tunnelId, context.resume);
  }

  // ---- for its sessions and webhooks ----------------------------------------------------------

  /** The loaded agent (after `start()`). */
  get agent(): Agent {
    if (!this.#agent) throw new MediaError('MEDIA_ERR_INTERNAL', 'agent before start()');
    return this.#agent;
  }

  /** The shared pacer timer for every call's outbound audio frames (after `start()`). */
  get pacers(): PacerGroup | undefined {
    return this.#pacers;
  }

  /** One `media_errors_total{code}` for the whole worker. */
  countError(code: string): void {
    this.#server.countError(code);
  }

  /** StreamServer.send: backpressure; false when the socket is gone or was shed. */
  send(ws: WebSocket, text: string): boolean {
    return this.#server.send(ws, text);
  }

  /** StreamServer.shed: 1013 'slow reader', counted in `media_sessions_shed_total`. */
  shed(ws: WebSocket, why: Record<string, unknown>): void {
    this.#server.shed(ws, why);
  }

  /**
   * Registers `session` as the live stream of `callSid`, replacing an older one. False (nothing
   * registered) when MAX_CALLS other calls are live: slots belong to started calls only.
   */
  claimCall(callSid: string, session: MediaSession): boolean {
    const older = this.#calls.get(callSid);
    // A second stream of a live call takes that call's slot; a new call needs a free one.
    if (!older && this.#calls.size >= this.config.maxCalls) return false;
    this.#calls.set(callSid, session);
    // The older agent ends here, synchronously, before the newer one is started.
    if (older && older !== session) older.replace();
    return true;
  }

  releaseCall(callSid: string, session: MediaSession): void {
    if (this.#calls.get(callSid) === session) this.#calls.delete(callSid);
  }
}

/** An upgrade refused with `code`, answered with the code's status from MEDIA_ERRORS. */
function refusal(code: MediaCodeWith<'status'>, message: string): UpgradeVerdict<never> {
  return { accept: false, status: statusOf(MEDIA_ERRORS, code), code, message };
}

/** Constant-time check of `Authorization: Bearer <token>`. */
function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  if (!match) return false;
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(match[1]!), digest(token));
}
