import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '@callgate/runtime';
import type { Backend, Lease } from './backend.js';
import type { Connector } from './connector.js';
import type { ProxyErrorCode } from './errors.js';
import type { Pool } from './pool.js';
import { sendError, statusOf } from './responses.js';
import type { RouteName } from './route-table.js';
import type { ExchangeHandler, HttpProxyAdapter } from './http-proxy-adapter.js';
import { upstreamHeaders, type ForwardedInfo } from './upstream-headers.js';

export interface HttpForwardOptions {
  id: string;
  pool: Pool;
  route: RouteName;
  forwardUrl: string;
  sessionId?: string | undefined;
  req: IncomingMessage;
  res: ServerResponse;
  forwarded: Pick<ForwardedInfo, 'clientAddress' | 'proto' | 'host'>;
  /** From the end of the request body until the worker's response headers arrive. */
  responseTimeoutMs: number;
  /**
   * Per attempt, from the end of the request body to the worker's response headers: past it the
   * worker is marked down and, when the request can be sent again, it is (default: no deadline
   * of its own, only `responseTimeoutMs`).
   */
  firstByteTimeoutMs?: number | undefined;
  /** Bodies up to this size (declared by Content-Length) are read whole first, so they can be resent. Default 0. */
  retryBodyBytes?: number | undefined;
  /** The client must have sent its whole body within this, or it gets 408. Default: none. */
  bodyTimeoutMs?: number | undefined;
  connector: Connector;
  adapter: HttpProxyAdapter;
  logger: Logger;
  /** While draining, responses close their connection so clients move to another proxy. */
  isDraining(): boolean;
  /** A worker that sent nothing in time; the request goes on to another (`retrying`) or fails. */
  slowBackend?(forward: HttpForward, backend: Backend, retrying: boolean): void;
  /** Once, when the response is over (sent, failed, or the client left). */
  done(forward: HttpForward, code: ProxyErrorCode | undefined, status: number | undefined): void;
}

/**
 * One plain HTTP request (a webhook, the test-agent page or its API) forwarded to a pool: the same
 * connect-first retry as tunnels, the same header hygiene, a deadline for the worker's answer, and
 * the upstream connection cut when the client leaves (http-proxy's `aborted` check is unreliable
 * since Node 15.5, #1559).
 *
 * Deadlines blame the right party: the client's body has `bodyTimeoutMs` (408), and the worker's
 * clocks start only once the body is in. A small body (`retryBodyBytes`) is read whole first, so
 * a worker that sends no response byte within `firstByteTimeoutMs` is marked down and the request
 * is sent to another one, as long as nothing was answered yet.
 */
export class HttpForward implements ExchangeHandler {
  readonly id: string;
  readonly route: RouteName;
  readonly pool: string;
  readonly startedAt = performance.now();
  readonly #options: HttpForwardOptions;
  readonly #abort = new AbortController();
  readonly #tried = new Set<Backend>();
  #lease: Lease | undefined;
  #upstream: Socket | undefined;
  #proxyReq: ClientRequest | undefined;
  /** The whole response deadline, from the end of the body. */
  #timer: NodeJS.Timeout | undefined;
  #attemptTimer: NodeJS.Timeout | undefined;
  #bodyTimer: NodeJS.Timeout | undefined;
  #body: Buffer | undefined;
  #bodyDone = false;
  #code: ProxyErrorCode | undefined;
  #status: number | undefined;
  #isDone = false;
  #attempts = 0;

  constructor(options: HttpForwardOptions) {
    this.#options = options;
    this.id = options.id;
    this.route = options.route;
    this.pool = options.pool.name;
  }

  get backend(): Backend | undefined {
    return this.#lease?.backend;
  }

  /** Workers tried so far (more than one: a retry after a first-byte timeout). */
  get attempts(): number {
    return this.#attempts;
  }

  start(): void {
    const { req, res, bodyTimeoutMs } = this.#options;
    res.on('close', () => this.#finish());
    if (bodyTimeoutMs !== undefined && !req.readableEnded) {
      this.#bodyTimer = setTimeout(() => {
        if (!this.#bodyDone) this.#fail('PROXY_ERR_CLIENT_TIMEOUT');
      }, bodyTimeoutMs);
    }
    req.headers = upstreamHeaders(
      req.headers,
      { ...this.#options.forwarded, requestId: this.id },
      false,
    );
    req.url = this.#options.forwardUrl;
    if (this.#retryable()) {
      this.#readBody();
      return;
    }
    if (req.readableEnded) this.#bodyEnded();
    else req.once('end', () => this.#bodyEnded());
    this.#attempt();
  }

  /** A small declared body, or none: read whole first so a second worker can get it too. */
  #retryable(): boolean {
    const { req, retryBodyBytes = 0 } = this.#options;
    if (req.headers['transfer-encoding'] !== undefined) return false;
    const length = req.headers['content-length'];
    if (length === undefined) return true;
    const n = Number(length);
    return Number.isInteger(n) && n >= 0 && n <= retryBodyBytes;
  }

  #readBody(): void {
    const { req } = this.#options;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.once('end', () => {
      this.#body = Buffer.concat(chunks);
      this.#bodyEnded();
      this.#attempt();
    });
  }

  #bodyEnded(): void {
    this.#bodyDone = true;
    clearTimeout(this.#bodyTimer);
    if (this.#isDone || this.#code !== undefined) return;
    this.#timer = setTimeout(
      () => this.#fail('PROXY_ERR_UPSTREAM_TIMEOUT'),
      this.#options.responseTimeoutMs,
    );
    this.#armAttemptTimer();
  }

  #armAttemptTimer(): void {
    const ms = this.#options.firstByteTimeoutMs;
    if (ms === undefined || !this.#bodyDone || this.#lease === undefined) return;
    clearTimeout(this.#attemptTimer);
    this.#attemptTimer = setTimeout(() => this.#firstByteTimeout(), ms);
  }

  #attempt(): void {
    if (this.#isDone || this.#code !== undefined) return;
    this.#attempts++;
    this.#connect().catch((err: unknown) => {
      this.#options.logger.error('request forwarding failed', {
        code: 'PROXY_ERR_INTERNAL',
        requestId: this.id,
        err,
      });
      this.#fail('PROXY_ERR_INTERNAL');
    });
  }

  async #connect(): Promise<void> {
    const { pool, connector, sessionId, res } = this.#options;
    const result = await connector.connect(pool, {
      sessionId,
      exclude: this.#tried,
      signal: this.#abort.signal,
      requestId: this.id,
    });
    if (this.#isDone || this.#code !== undefined) {
      if (result.ok) {
        result.socket.destroy();
        result.lease.release();
      }
      return;
    }
    if (!result.ok) {
      this.#fail(this.#tried.size > 0 ? 'PROXY_ERR_UPSTREAM_TIMEOUT' : 'PROXY_ERR_NO_BACKEND');
      return;
    }
    this.#lease = result.lease;
    this.#tried.add(result.lease.backend);
    this.#upstream = result.socket;
    this.#armAttemptTimer();
    const { req, adapter } = this.#options;
    adapter.web(req, res, result.socket, result.lease.backend, this, this.#body);
  }

  /** The worker sent nothing in time: it is marked down; the request moves on if it still can. */
  #firstByteTimeout(): void {
    if (this.#isDone || this.#code !== undefined || this.#status !== undefined) return;
    const backend = this.#lease?.backend;
    const retrying = this.#body !== undefined && !this.#options.res.headersSent;
    if (backend) {
      backend.markDown('no response to a plain request within FIRST_BYTE_TIMEOUT_MS');
      this.#options.slowBackend?.(this, backend, retrying);
    }
    if (!retrying) {
      this.#fail('PROXY_ERR_UPSTREAM_TIMEOUT');
      return;
    }
    this.#abandonAttempt();
    this.#attempt();
  }

  /** Drops the current attempt so that nothing it still reports reaches the client. */
  #abandonAttempt(): void {
    const proxyReq = this.#proxyReq;
    this.#proxyReq = undefined;
    if (proxyReq) {
      proxyReq.emit = ((event: string | symbol) =>
        event === 'close' || event === 'finish') as ClientRequest['emit'];
      proxyReq.destroy();
    }
    this.#upstream?.destroy();
    this.#upstream = undefined;
    this.#lease?.release();
    this.#lease = undefined;
  }

  proxyRequest(proxyReq: ClientRequest): void {
    this.#proxyReq = proxyReq;
  }

  proxyResponse(proxyRes: IncomingMessage): void {
    clearTimeout(this.#timer);
    clearTimeout(this.#attemptTimer);
    clearTimeout(this.#bodyTimer);
    this.#status = proxyRes.statusCode;
    // Read by http-proxy's header pass right after this event.
    if (this.#options.isDraining()) proxyRes.headers.connection = 'close';
  }

  proxyError(): void {
    this.#fail('PROXY_ERR_UPSTREAM_FAILED');
  }

  /** Answers with the code's status if nothing was sent yet, else cuts the response. */
  #fail(code: ProxyErrorCode): void {
    if (this.#isDone || this.#code !== undefined) return;
    this.#code = code;
    clearTimeout(this.#timer);
    clearTimeout(this.#attemptTimer);
    clearTimeout(this.#bodyTimer);
    this.#abort.abort();
    this.#proxyReq?.destroy();
    this.#upstream?.destroy();
    const { res, req } = this.#options;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.#status = statusOf(code);
    // A client still sending its body is not read any further: the answer closes the connection.
    if (code === 'PROXY_ERR_CLIENT_TIMEOUT') {
      res.setHeader('connection', 'close');
      res.once('finish', () => req.socket.destroy());
    }
    sendError(res, code, this.id);
  }

  #finish(): void {
    if (this.#isDone) return;
    this.#isDone = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#attemptTimer);
    clearTimeout(this.#bodyTimer);
    this.#abort.abort();
    const { res } = this.#options;
    if (this.#code === undefined && !res.writableFinished) this.#code = 'PROXY_ERR_CLIENT_GONE';
    this.#proxyReq?.destroy();
    this.#upstream?.destroy();
    this.#lease?.release();
    this.#options.done(this, this.#code, this.#status);
  }
}
