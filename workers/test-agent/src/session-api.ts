import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJsonError, traceFields, type Logger } from '@callgate/runtime';
import type { TestAgentErrorCode } from './errors.js';
import type { TestAgentMetrics } from './metrics.js';
import { createSessionId, type SessionTokens } from './session-token.js';

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

export interface SessionApiOptions {
  tokens: SessionTokens;
  /** When set, callers need `Authorization: Bearer <apiKey>`. */
  apiKey?: string | undefined;
  maxDurationSeconds: number;
  /**
   * Sessions created per minute per client address (X-Forwarded-For as the proxy overwrites it,
   * else the socket peer): a token bucket of this size per client, refilled over a minute.
   */
  ratePerMinute: number;
  /** The worker's state: draining, or no session slot left. */
  availability(): 'ok' | 'draining' | 'full';
  logger: Logger;
  metrics: TestAgentMetrics;
  /** Counts a refusal in `test_agent_errors_total{code}` (StreamServer.countError). */
  countError(code: string): void;
  /** Milliseconds clock; injectable for rate-limit tests. */
  now?: () => number;
}

/** Path prefix of everything the worker serves; the proxy routes it here. */
export const TEST_AGENT_PREFIX = '/test-agent/';
export const SESSIONS_PATH = '/test-agent/sessions';
// The page posts no body; anything larger than this is not a session request.
const MAX_BODY_BYTES = 1024;
const RETRY_AFTER_SECONDS = '5';

/**
 * `POST /test-agent/sessions`: checks the API key, the worker's state and the creation rate, then
 * issues a session id and its signed token. Keeps no per-session state: the token carries it.
 */
export class SessionApi {
  readonly #options: SessionApiOptions;
  readonly #now: () => number;
  readonly #apiKeyDigest: Buffer | undefined;
  /** Client address → its bucket; full buckets are forgotten (they carry no state). */
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(options: SessionApiOptions) {
    if (!Number.isInteger(options.ratePerMinute) || options.ratePerMinute < 1) {
      throw new TypeError(
        `ratePerMinute must be a whole number >= 1, got ${options.ratePerMinute}`,
      );
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
    // Comparing digests keeps the comparison constant-time whatever the key's length.
    this.#apiKeyDigest = options.apiKey === undefined ? undefined : digest(options.apiKey);
  }

  /** Answers one request to SESSIONS_PATH. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The proxy's X-Request-Id joins these lines with its `request` line.
    const { requestId } = traceFields(req);
    const log =
      requestId === undefined ? this.#options.logger : this.#options.logger.child({ requestId });
    if (req.method !== 'POST') {
      this.#refuse(
        log,
        res,
        405,
        'TEST_AGENT_ERR_METHOD_NOT_ALLOWED',
        `${SESSIONS_PATH} answers POST`,
        {
          Allow: 'POST',
        },
      );
      return;
    }
    if (!this.#authorized(req.headers.authorization)) {
      this.#refuse(log, res, 401, 'TEST_AGENT_ERR_UNAUTHORIZED', 'a valid API key is required', {
        'WWW-Authenticate': 'Bearer realm="test-agent"',
      });
      return;
    }
    if (!(await readSmallBody(req))) {
      this.#refuse(
        log,
        res,
        413,
        'TEST_AGENT_ERR_BODY_TOO_LARGE',
        `request body over ${MAX_BODY_BYTES} bytes`,
        {
          Connection: 'close',
        },
      );
      return;
    }
    const availability = this.#options.availability();
    if (availability === 'draining') {
      this.#refuse(
        log,
        res,
        503,
        'TEST_AGENT_ERR_DRAINING',
        'worker is draining; try again shortly',
        {
          'Retry-After': RETRY_AFTER_SECONDS,
        },
      );
      return;
    }
    if (availability === 'full') {
      this.#refuse(log, res, 503, 'TEST_AGENT_ERR_AT_CAPACITY', 'every session slot is taken', {
        'Retry-After': RETRY_AFTER_SECONDS,
      });
      return;
    }
    const waitSeconds = this.#take(clientOf(req));
    if (waitSeconds > 0) {
      this.#refuse(
        log,
        res,
        429,
        'TEST_AGENT_ERR_RATE_LIMITED',
        'too many sessions created; slow down',
        {
          'Retry-After': String(waitSeconds),
        },
      );
      return;
    }
    const sessionId = createSessionId();
    const { token, expiresAtMs } = this.#options.tokens.issue(sessionId);
    const created: CreatedSession = {
      sessionId,
      token,
      wsUrl: `${TEST_AGENT_PREFIX}${sessionId}?token=${encodeURIComponent(token)}`,
      expiresAt: new Date(expiresAtMs).toISOString(),
      maxDurationSeconds: this.#options.maxDurationSeconds,
    };
    this.#options.metrics.sessionRequests.inc({ status: '201' });
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

  /** Takes one token from the client's bucket; returns 0, or the seconds until one is available. */
  #take(client: string): number {
    const rate = this.#options.ratePerMinute;
    const now = this.#now();
    if (this.#buckets.size >= MAX_BUCKETS) this.#prune(now);
    const bucket = this.#buckets.get(client) ?? { tokens: rate, at: now };
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) * rate) / 60_000);
    bucket.at = now;
    this.#buckets.set(client, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - bucket.tokens) * 60) / rate));
  }

  /** Forgets buckets that have refilled; if that is not enough, the oldest. */
  #prune(now: number): void {
    const rate = this.#options.ratePerMinute;
    for (const [client, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) * rate) / 60_000 >= rate) this.#buckets.delete(client);
    }
    for (const client of this.#buckets.keys()) {
      if (this.#buckets.size < MAX_BUCKETS) break;
      this.#buckets.delete(client);
    }
  }

  #refuse(
    log: Logger,
    res: ServerResponse,
    status: number,
    code: TestAgentErrorCode,
    message: string,
    headers: Record<string, string>,
  ): void {
    log.info('session request refused', { code, status });
    this.#options.countError(code);
    this.#options.metrics.sessionRequests.inc({ status: String(status) });
    sendJsonError(res, status, code, message, headers);
  }
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

/** Client buckets kept at once (each a few dozen bytes). */
const MAX_BUCKETS = 10_000;

/**
 * The client a request is from: the proxy overwrites X-Forwarded-For with the one address it
 * resolved (never appends), so its value is trusted here; without it, the socket peer.
 */
function clientOf(req: IncomingMessage): string {
  const forwarded = req.headers['x-forwarded-for'];
  const value = Array.isArray(forwarded) ? forwarded[0] : forwarded;
  const first = value?.split(',')[0]?.trim();
  return first !== undefined && first !== '' ? first : (req.socket.remoteAddress ?? '');
}
