import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { errorCode, type Logger } from '@callgate/runtime';
import type { Backend, Lease } from './backend.js';
import type { Connector } from './connector.js';
import type { ProxyErrorCode } from './errors.js';
import type { HttpProxyAdapter, TunnelHandler } from './http-proxy-adapter.js';
import type { Pool } from './pool.js';
import { endSocket, rawErrorResponse, statusOf } from './responses.js';
import type { RouteName } from './route-table.js';
import { upstreamHeaders, type ForwardedInfo } from './upstream-headers.js';

export type TunnelState = 'connecting' | 'handshaking' | 'open' | 'rejected' | 'failed' | 'closed';
export type ClosedBy = 'client' | 'backend' | 'proxy';

export interface TunnelHooks {
  /** A backend accepted the TCP connection and the upgrade is being sent to it. */
  assigned(tunnel: Tunnel): void;
  /** `backend` answered the upgrade 503 (full or draining); the tunnel tries the next one. */
  busy(tunnel: Tunnel, backend: Backend): void;
  /** The handshake is decided, once: `code` undefined means the 101 went through. */
  decided(tunnel: Tunnel, code: ProxyErrorCode | undefined, status: number | undefined): void;
  /** The client socket closed and everything is released; always last, always once. */
  closed(tunnel: Tunnel): void;
}

export interface TunnelOptions {
  id: string;
  pool: Pool;
  route: RouteName;
  /** The canonical path without the query (logs; the query may carry a token). */
  pathname: string;
  forwardUrl: string;
  sessionId?: string | undefined;
  /** Call affinity key (the CallSid of `/media-stream/<CallSid>`); see `PickOptions`. */
  affinityKey?: string | undefined;
  req: IncomingMessage;
  client: Socket;
  head: Buffer;
  /** X-Forwarded-* values; the ids are added here. */
  forwarded: Pick<ForwardedInfo, 'clientAddress' | 'proto' | 'host'>;
  handshakeTimeoutMs: number;
  connector: Connector;
  adapter: HttpProxyAdapter;
  hooks: TunnelHooks;
  logger: Logger;
}

/** After one side sends FIN, how long the other direction may finish before both are cut. */
export const CLOSE_LINGER_MS = 2000;

/**
 * One proxied WebSocket from upgrade to close. It owns both sockets and applies the guards of
 * http-proxy-pitfalls.md §1.6 around the library: the client's error handler exists before
 * anything else (guard 2, in the listener); a client that leaves before the 101 takes the upstream
 * request down with it (guard 7, #783/#877); the upstream handshake has a deadline (guard 7); any
 * close, error or reset on either side destroys the other (guard 8, #1510), with a short linger
 * after a clean FIN so the last frames still arrive; and the client's `close` is the one place
 * where the tunnel is counted out.
 */
export class Tunnel implements TunnelHandler {
  readonly id: string;
  readonly pool: string;
  readonly route: RouteName;
  readonly path: string;
  readonly client: Socket;
  /** `performance.now()` at the upgrade. */
  readonly startedAt = performance.now();
  readonly #options: TunnelOptions;
  readonly #abort = new AbortController();
  #state: TunnelState = 'connecting';
  #lease: Lease | undefined;
  #byAffinity = false;
  /** Backends that answered this upgrade 503; the next attempt skips them. */
  readonly #busy = new Set<Backend>();
  /** The client's headers, before the upstream set is built from them for each attempt. */
  #clientHeaders: IncomingMessage['headers'] | undefined;
  #upstream: Socket | undefined;
  #proxyReq: ClientRequest | undefined;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;
  #isDecided = false;
  #closedBy: ClosedBy | undefined;
  #code: ProxyErrorCode | undefined;
  #openedAt: number | undefined;
  #closedAt: number | undefined;
  #bytesFromClient = 0;
  #bytesFromBackend = 0;

  constructor(options: TunnelOptions) {
    this.#options = options;
    this.id = options.id;
    this.pool = options.pool.name;
    this.route = options.route;
    this.path = options.pathname;
    this.client = options.client;
  }

  get state(): TunnelState {
    return this.#state;
  }

  get backend(): Backend | undefined {
    return this.#lease?.backend;
  }

  /** The backend was chosen because a live tunnel of the same call is there. */
  get byAffinity(): boolean {
    return this.#byAffinity;
  }

  get closedBy(): ClosedBy | undefined {
    return this.#closedBy;
  }

  /** Why the proxy or a socket error ended it; undefined for a clean close by either peer. */
  get code(): ProxyErrorCode | undefined {
    return this.#code;
  }

  get bytesFromClient(): number {
    return this.#bytesFromClient;
  }

  get bytesFromBackend(): number {
    return this.#bytesFromBackend;
  }

  /** Milliseconds from the 101 to the close (or to now); undefined if it never opened. */
  get openDurationMs(): number | undefined {
    if (this.#openedAt === undefined) return undefined;
    return (this.#closedAt ?? performance.now()) - this.#openedAt;
  }

  /** Connects to a backend and sends the upgrade. Never rejects: every outcome goes to the hooks. */
  start(): void {
    const { client } = this;
    client.on('error', (err) => this.#clientGone(err));
    client.on('end', () => this.#clientEnded());
    client.on('close', () => this.#finalize());
    if (client.destroyed) {
      this.#finalize();
      return;
    }
    this.#startConnect();
  }

  /** Proxy-initiated end (idle watchdog, forced drain): both sockets are destroyed now. */
  destroy(code: ProxyErrorCode): void {
    if (this.#state === 'closed') return;
    this.#closedBy ??= 'proxy';
    this.#code ??= code;
    this.#decide(code, undefined);
    this.#teardown();
  }

  #startConnect(): void {
    this.#connect().catch((err: unknown) => {
      this.#options.logger.error('tunnel setup failed', {
        code: 'PROXY_ERR_INTERNAL',
        tunnelId: this.id,
        err,
      });
      this.#fail('PROXY_ERR_INTERNAL');
    });
  }

  async #connect(): Promise<void> {
    const { pool, connector, sessionId, affinityKey } = this.#options;
    const result = await connector.connect(pool, {
      sessionId,
      affinityKey,
      exclude: this.#busy,
      signal: this.#abort.signal,
      requestId: this.id,
    });
    if (this.#state !== 'connecting') {
      if (result.ok) {
        result.socket.destroy();
        result.lease.release();
      }
      return;
    }
    if (!result.ok) {
      if (result.reason === 'no-backend') this.#fail('PROXY_ERR_NO_BACKEND');
      else this.#clientGone(undefined);
      return;
    }
    this.#byAffinity = result.byAffinity;
    this.#handshake(result.lease, result.socket);
  }

  #handshake(lease: Lease, upstream: Socket): void {
    const { req, client, head, adapter, forwarded, forwardUrl, handshakeTimeoutMs } = this.#options;
    this.#state = 'handshaking';
    this.#lease = lease;
    this.#upstream = upstream;
    // A socket of an attempt given up on (503, retried) may still report; only the current counts.
    upstream.on('error', (err) => {
      if (upstream === this.#upstream) this.#upstreamGone(err);
    });
    upstream.on('end', () => {
      if (upstream === this.#upstream) this.#upstreamEnded();
    });
    upstream.on('close', () => {
      if (upstream === this.#upstream) this.#upstreamGone(undefined);
    });
    this.#options.hooks.assigned(this);
    this.#handshakeTimer = setTimeout(() => this.#handshakeTimedOut(), handshakeTimeoutMs);
    // Guards 6 and 10: the worker gets exactly the path that was routed and a header set built
    // here. setupOutgoing() copies req.headers verbatim, so replacing them is the whole job.
    this.#clientHeaders ??= req.headers;
    req.headers = upstreamHeaders(
      this.#clientHeaders,
      { ...forwarded, requestId: this.id, tunnelId: this.id },
      true,
    );
    req.url = forwardUrl;
    adapter.ws(req, client, head, upstream, lease.backend, this);
  }

  proxyRequest(proxyReq: ClientRequest): void {
    this.#proxyReq = proxyReq;
    // Registered before http-proxy's own listeners, so these run first.
    proxyReq.on('upgrade', () => this.#upgraded());
    proxyReq.on('response', (res: IncomingMessage) => this.#answeredWithout101(res));
  }

  /**
   * A worker that answers 503 is full or draining, not refusing this caller: like a refused
   * connect, the next backend is tried before the caller notices (the 503 reaches it only when no
   * backend is left, as the proxy's own). Not when call affinity chose the worker: the call's
   * other stream lives there, and a second worker would start a second agent on it.
   */
  retryAnswer(res: IncomingMessage): boolean {
    const lease = this.#lease;
    if (this.#state !== 'handshaking' || res.statusCode !== 503 || this.#byAffinity || !lease) {
      return false;
    }
    const backend = lease.backend;
    this.#busy.add(backend);
    clearTimeout(this.#handshakeTimer);
    res.on('error', () => {});
    const upstream = this.#upstream;
    const proxyReq = this.#proxyReq;
    this.#upstream = undefined;
    this.#proxyReq = undefined;
    this.#lease = undefined;
    this.#state = 'connecting';
    upstream?.destroy();
    proxyReq?.destroy();
    this.#options.hooks.busy(this, backend);
    lease.release();
    this.#startConnect();
    return true;
  }

  piped(): void {
    this.client.on('data', (chunk: Buffer) => {
      this.#bytesFromClient += chunk.length;
    });
    this.#upstream?.on('data', (chunk: Buffer) => {
      this.#bytesFromBackend += chunk.length;
    });
  }

  proxyError(err: Error): void {
    switch (this.#state) {
      case 'handshaking':
        // A parse error on the worker's answer, or a reset the socket handlers have not seen yet.
        this.#fail('PROXY_ERR_UPSTREAM_FAILED', err);
        return;
      case 'open':
      case 'rejected':
        this.#closedBy ??= 'backend';
        this.#code ??= 'PROXY_ERR_TUNNEL_ERROR';
        this.#teardown();
        return;
      default:
        // Already failed or closed: this is http-proxy reporting the teardown we started.
        return;
    }
  }

  #upgraded(): void {
    if (this.#state !== 'handshaking') return;
    clearTimeout(this.#handshakeTimer);
    this.#state = 'open';
    this.#openedAt = performance.now();
    this.#proxyReq = undefined;
    this.#decide(undefined, 101);
  }

  /** Guard: a non-101 answer is relayed, then the connection is closed; never a tunnel. */
  #answeredWithout101(res: IncomingMessage): void {
    if (this.#state !== 'handshaking') return;
    this.#state = 'rejected';
    this.#closedBy = 'backend';
    this.#decide('PROXY_ERR_UPSTREAM_REJECTED', res.statusCode);
    // http-proxy writes these headers and then pipes the decoded body: a `chunked` framing header
    // would lie about it, so the body is delimited by the close instead.
    delete res.headers['transfer-encoding'];
    delete res.headers['keep-alive'];
    res.headers.connection = 'close';
    res.on('error', () => this.#teardown());
    // The handshake deadline keeps running until the body is complete.
    res.on('end', () => clearTimeout(this.#handshakeTimer));
    this.client.once('finish', () => endSocket(this.client, undefined));
  }

  #handshakeTimedOut(): void {
    if (this.#state === 'handshaking') {
      this.#lease?.backend.markDown('upstream handshake timeout');
      this.#fail('PROXY_ERR_UPSTREAM_TIMEOUT');
    } else if (this.#state === 'rejected') {
      this.#teardown();
    }
  }

  #clientGone(err: Error | undefined): void {
    this.#closedBy ??= 'client';
    switch (this.#state) {
      case 'connecting':
      case 'handshaking':
        this.#code ??= 'PROXY_ERR_CLIENT_GONE';
        this.#decide('PROXY_ERR_CLIENT_GONE', undefined);
        break;
      case 'open':
        if (err) this.#code ??= 'PROXY_ERR_TUNNEL_ERROR';
        break;
      default:
        break;
    }
    this.#teardown();
  }

  #clientEnded(): void {
    // A WebSocket client cannot half-close before the 101: it left.
    if (this.#state !== 'open') {
      this.#clientGone(undefined);
      return;
    }
    this.#closedBy ??= 'client';
    this.#armLinger();
  }

  #upstreamGone(err: Error | undefined): void {
    switch (this.#state) {
      case 'handshaking':
        this.#fail('PROXY_ERR_UPSTREAM_FAILED', err);
        return;
      case 'open':
        this.#closedBy ??= 'backend';
        if (err) this.#code ??= 'PROXY_ERR_TUNNEL_ERROR';
        this.#teardown();
        return;
      case 'rejected':
        // A clean close after the answer is how the relay ends; an error mid-body is not.
        if (err) this.#teardown();
        return;
      default:
        return;
    }
  }

  #upstreamEnded(): void {
    if (this.#state === 'handshaking') {
      this.#fail('PROXY_ERR_UPSTREAM_FAILED');
      return;
    }
    if (this.#state !== 'open') return;
    this.#closedBy ??= 'backend';
    this.#armLinger();
  }

  /** Ends the tunnel before it opened, answering the client with the code's status. */
  #fail(code: ProxyErrorCode, cause?: Error): void {
    if (this.#state === 'closed' || this.#state === 'failed') return;
    this.#state = 'failed';
    this.#closedBy ??= 'proxy';
    this.#code ??= code;
    clearTimeout(this.#handshakeTimer);
    if (cause) {
      this.#options.logger.debug('upstream error before the 101', {
        tunnelId: this.id,
        backend: this.backend?.id,
        cause: errorCode(cause),
      });
    }
    this.#decide(code, statusOf(code));
    this.#upstream?.destroy();
    this.#proxyReq?.destroy();
    this.#abort.abort();
    // Nothing is written to the client before the 101, so the answer is a whole response.
    if (this.client.bytesWritten === 0) {
      endSocket(this.client, rawErrorResponse(code, this.id));
    } else {
      this.client.destroy();
    }
  }

  #decide(code: ProxyErrorCode | undefined, status: number | undefined): void {
    if (this.#isDecided) return;
    this.#isDecided = true;
    this.#options.hooks.decided(this, code, status);
  }

  #armLinger(): void {
    this.#lingerTimer ??= setTimeout(() => this.#teardown(), CLOSE_LINGER_MS);
  }

  /** Destroys both sides now; the client's `close` finishes the job in #finalize(). */
  #teardown(): void {
    clearTimeout(this.#handshakeTimer);
    this.#abort.abort();
    this.#proxyReq?.destroy();
    this.#upstream?.destroy();
    this.client.destroy();
  }

  #finalize(): void {
    if (this.#state === 'closed') return;
    this.#closedBy ??= 'client';
    if (this.#state === 'connecting' || this.#state === 'handshaking') {
      this.#code ??= 'PROXY_ERR_CLIENT_GONE';
    }
    this.#decide('PROXY_ERR_CLIENT_GONE', undefined);
    this.#state = 'closed';
    this.#closedAt = performance.now();
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#lingerTimer);
    this.#abort.abort();
    this.#proxyReq?.destroy();
    this.#upstream?.destroy();
    this.#lease?.release();
    this.#options.hooks.closed(this);
  }
}
