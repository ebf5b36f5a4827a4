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
  /** Until the worker's response headers arrive. */
  responseTimeoutMs: number;
  connector: Connector;
  adapter: HttpProxyAdapter;
  logger: Logger;
  /** While draining, responses close their connection so clients move to another proxy. */
  isDraining(): boolean;
  /** Once, when the response is over (sent, failed, or the client left). */
  done(forward: HttpForward, code: ProxyErrorCode | undefined, status: number | undefined): void;
}

/**
 * One plain HTTP request (a webhook, the test-agent page or its API) forwarded to a pool: the same
 * connect-first retry as tunnels, the same header hygiene, a deadline for the worker's answer, and
 * the upstream connection cut when the client leaves (http-proxy's `aborted` check is unreliable
 * since Node 15.5, #1559).
 */
export class HttpForward implements ExchangeHandler {
  readonly id: string;
  readonly route: RouteName;
  readonly pool: string;
  readonly startedAt = performance.now();
  readonly #options: HttpForwardOptions;
  readonly #abort = new AbortController();
  #lease: Lease | undefined;
  #upstream: Socket | undefined;
  #proxyReq: ClientRequest | undefined;
  #timer: NodeJS.Timeout | undefined;
  #code: ProxyErrorCode | undefined;
  #status: number | undefined;
  #isDone = false;

  constructor(options: HttpForwardOptions) {
    this.#options = options;
    this.id = options.id;
    this.route = options.route;
    this.pool = options.pool.name;
  }

  get backend(): Backend | undefined {
    return this.#lease?.backend;
  }

  start(): void {
    this.#options.res.on('close', () => this.#finish());
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
      signal: this.#abort.signal,
      requestId: this.id,
    });
    if (this.#isDone) {
      if (result.ok) {
        result.socket.destroy();
        result.lease.release();
      }
      return;
    }
    if (!result.ok) {
      this.#fail('PROXY_ERR_NO_BACKEND');
      return;
    }
    this.#lease = result.lease;
    this.#upstream = result.socket;
    this.#timer = setTimeout(
      () => this.#fail('PROXY_ERR_UPSTREAM_TIMEOUT'),
      this.#options.responseTimeoutMs,
    );
    const { req, forwarded, forwardUrl, adapter } = this.#options;
    req.headers = upstreamHeaders(req.headers, { ...forwarded, requestId: this.id }, false);
    req.url = forwardUrl;
    adapter.web(req, res, result.socket, result.lease.backend, this);
  }

  proxyRequest(proxyReq: ClientRequest): void {
    this.#proxyReq = proxyReq;
  }

  proxyResponse(proxyRes: IncomingMessage): void {
    clearTimeout(this.#timer);
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
    this.#abort.abort();
    this.#proxyReq?.destroy();
    this.#upstream?.destroy();
    const { res } = this.#options;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.#status = statusOf(code);
    sendError(res, code, this.id);
  }

  #finish(): void {
    if (this.#isDone) return;
    this.#isDone = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    const { res } = this.#options;
    if (this.#code === undefined && !res.writableFinished) this.#code = 'PROXY_ERR_CLIENT_GONE';
    this.#proxyReq?.destroy();
    this.#upstream?.destroy();
    this.#lease?.release();
    this.#options.done(this, this.#code, this.#status);
  }
}
