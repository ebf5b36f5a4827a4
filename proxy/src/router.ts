import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { answerProbe, checkHost, checkWebSocketHandshake, type Logger } from '@callgate/runtime';
import type { Backend } from './backend.js';
import type { ClientLimits } from './client-limits.js';
import type { PoolName } from './config.js';
import type { Connector } from './connector.js';
import { outcomeOf, type ProxyErrorCode } from './errors.js';
import { HttpForward } from './http-forward.js';
import type { ProxyMetrics } from './metrics.js';
import type { Pool } from './pool.js';
import { endSocket, rawErrorResponse, sendError, statusOf } from './responses.js';
import type { RouteName, RouteTable } from './route-table.js';
import type { SignatureCheck } from './signature.js';
import type { HttpProxyAdapter } from './http-proxy-adapter.js';
import {
  Tunnel,
  type Continuity,
  type MoveFailure,
  type MoveReport,
  type TunnelHooks,
} from './tunnel.js';
import { requestHead } from './upstream-handshake.js';
import { upstreamHeaders } from './upstream-headers.js';
import type { TunnelTracker } from './tunnel-tracker.js';
import type { UpgradeRequest } from './upgrade-head.js';

export interface RouterOptions {
  routes: RouteTable;
  pools: ReadonlyMap<PoolName, Pool>;
  tracker: TunnelTracker;
  connector: Connector;
  adapter: HttpProxyAdapter;
  /** Undefined when `TWILIO_SIGNATURE_MODE=off`. */
  signature: SignatureCheck | undefined;
  /** Its scheme gives X-Forwarded-Proto; without it, the listener's own (plain) scheme. */
  publicUrl: URL | undefined;
  maxTunnels: number;
  upstreamHandshakeTimeoutMs: number;
  /** Per-client-address limits; none in some tests. */
  clientLimits?: ClientLimits | undefined;
  /** Plain requests: per-worker first-byte deadline (retry elsewhere when safe). */
  firstByteTimeoutMs?: number | undefined;
  /** Plain requests: bodies up to this are read whole first, so they can be retried. */
  retryBodyBytes?: number | undefined;
  /** Plain requests: the client's whole body must arrive within this (else 408). */
  requestTimeoutMs?: number | undefined;
  /** Frame tracking and call moves on the media route; undefined turns them off. */
  continuity: Continuity | undefined;
  isDraining(): boolean;
  metrics: ProxyMetrics;
  logger: Logger;
}

/**
 * The decisions between the listener and the backends, in order: handshake gate, canonical route,
 * Twilio signature, capacity, then a backend (connect-first with retry) and the tunnel or the
 * forwarded request. Every decision is one log line with the route, backend, outcome and duration,
 * and every refusal is answered here, once, with the status of its code.
 */
export class Router {
  readonly #options: RouterOptions;
  readonly #hooks: TunnelHooks;
  readonly #wsProto: string;
  readonly #httpProto: string;

  constructor(options: RouterOptions) {
    this.#options = options;
    const secure =
      options.publicUrl?.protocol === 'https:' || options.publicUrl?.protocol === 'wss:';
    this.#wsProto = secure ? 'wss' : 'ws';
    this.#httpProto = secure ? 'https' : 'http';
    this.#hooks = {
      assigned: (tunnel) => options.tracker.assigned(tunnel),
      released: (tunnel, backend) => options.tracker.unassigned(tunnel, backend),
      busy: (tunnel, backend) => this.#backendBusy(tunnel, backend, true),
      decided: (tunnel, code, status) => this.#tunnelDecided(tunnel, code, status),
      moved: (tunnel, report, failure) => this.#callMoved(tunnel, report, failure),
      fallback: (tunnel, reason) => {
        const { metrics, logger } = this.#options;
        metrics.tunnelFallbacks.inc({ pool: tunnel.pool, reason });
        metrics.error('PROXY_ERR_FRAME_FALLBACK');
        logger.warn('frame tracking off for this call: it cannot move if its worker goes', {
          code: 'PROXY_ERR_FRAME_FALLBACK',
          tunnelId: tunnel.id,
          path: tunnel.path,
          backend: tunnel.backend?.id,
          reason,
        });
      },
      badFrame: (tunnel, side, fault) => {
        const { metrics, logger } = this.#options;
        metrics.badFrames.inc({ pool: tunnel.pool, side, reason: fault });
        logger.warn(
          side === 'client'
            ? 'malformed frame from the caller, closing'
            : 'malformed frame from the worker, moving the call',
          {
            code: 'PROXY_ERR_BAD_FRAME',
            tunnelId: tunnel.id,
            path: tunnel.path,
            backend: tunnel.backend?.id,
            side,
            fault,
          },
        );
      },
      closed: (tunnel) => this.#tunnelClosed(tunnel),
    };
  }

  upgrade(req: UpgradeRequest, socket: Socket, head: Buffer): void {
    if (this.#options.clientLimits?.admitUpgrade(req, socket) === false) return;
    const { metrics, logger, routes, tracker } = this.#options;
    // Behind a trusted load balancer, the client its header names; else the socket peer.
    const client = this.#options.clientLimits?.clientOf(req) ?? socket.remoteAddress ?? '';
    const requestId = randomUUID();
    const startedAt = performance.now();
    const reject = (route: RouteName, code: ProxyErrorCode, reason: string): void => {
      metrics.upgrade(route, outcomeOf(code));
      metrics.error(code);
      logger.warn('upgrade', {
        requestId,
        route,
        outcome: outcomeOf(code),
        code,
        reason,
        status: statusOf(code),
        client,
        durationMs: elapsed(startedAt),
      });
      endSocket(socket, rawErrorResponse(code, requestId));
    };

    if (this.#options.isDraining()) {
      reject('none', 'PROXY_ERR_DRAINING', 'the proxy is draining');
      return;
    }
    const gate = checkWebSocketHandshake('PROXY', req, head.length);
    if (!gate.ok) {
      reject('none', gate.code, gate.reason);
      return;
    }
    const match = routes.match(req.method ?? '', req.url ?? '', true);
    if (match.kind === 'reject') {
      reject('none', match.code, match.reason);
      return;
    }
    if (match.kind !== 'pool') {
      reject('none', 'PROXY_ERR_NO_ROUTE', 'not a WebSocket route');
      return;
    }
    if (
      match.route === 'media-stream' &&
      !this.#signatureAccepted(req, match.pathname, requestId)
    ) {
      reject(match.route, 'PROXY_ERR_BAD_SIGNATURE', 'X-Twilio-Signature missing or invalid');
      return;
    }
    if (tracker.size >= this.#options.maxTunnels) {
      reject(match.route, 'PROXY_ERR_TOO_MANY_TUNNELS', `${tracker.size} tunnels open`);
      return;
    }
    const continuity = match.route === 'media-stream' ? this.#options.continuity : undefined;
    const headers = upstreamHeaders(
      req.headers,
      {
        clientAddress: client,
        proto: this.#wsProto,
        host: req.headers.host,
        requestId,
        tunnelId: requestId,
      },
      true,
    );
    // Compression state cannot move between workers: a tracked route negotiates no extension.
    if (continuity) delete headers['sec-websocket-extensions'];
    const tunnel = new Tunnel({
      id: requestId,
      pool: this.#pool(match.pool),
      route: match.route,
      pathname: match.pathname,
      forwardUrl: match.forwardUrl,
      // The worker gets exactly the path that was routed and a header set built here.
      requestHead: requestHead(match.forwardUrl, headers),
      key: (req.headers['sec-websocket-key'] as string).trim(),
      sessionId: match.sessionId,
      affinityKey: match.segment,
      client: socket,
      clientAddress: client,
      handshakeTimeoutMs: this.#options.upstreamHandshakeTimeoutMs,
      continuity,
      connector: this.#options.connector,
      hooks: this.#hooks,
      logger,
    });
    tracker.add(tunnel);
    tunnel.start();
  }

  request(req: IncomingMessage, res: ServerResponse): void {
    const { metrics, logger, routes, clientLimits } = this.#options;
    if (clientLimits?.admitRequest(req, res) === false) {
      metrics.httpRequests.inc({ route: 'none', outcome: outcomeOf('PROXY_ERR_CLIENT_LIMIT') });
      return;
    }
    const client = clientLimits?.clientOf(req) ?? req.socket.remoteAddress ?? '';
    const requestId = randomUUID();
    const startedAt = performance.now();
    const method = req.method ?? '';
    const match = routes.match(method, req.url ?? '', false);
    const draining = this.#options.isDraining();

    if (match.kind === 'local') {
      metrics.httpRequests.inc({ route: match.route, outcome: 'ok' });
      answerProbe(res, match.route, !draining, draining);
      return;
    }
    const reject = (route: RouteName, code: ProxyErrorCode, reason: string): void => {
      metrics.httpRequests.inc({ route, outcome: outcomeOf(code) });
      metrics.error(code);
      logger.warn('request', {
        requestId,
        route,
        method,
        outcome: outcomeOf(code),
        code,
        reason,
        status: statusOf(code),
        client,
        durationMs: elapsed(startedAt),
      });
      sendError(res, code, requestId);
    };
    if (match.kind === 'reject') {
      reject('none', match.code, match.reason);
      return;
    }
    const host = checkHost('PROXY', req);
    if (!host.ok) {
      reject(match.route, host.code, host.reason);
      return;
    }
    if (match.kind === 'redirect') {
      metrics.httpRequests.inc({ route: match.route, outcome: 'ok' });
      res.writeHead(308, { location: match.location, 'content-length': '0' });
      res.end();
      return;
    }
    const forward = new HttpForward({
      id: requestId,
      pool: this.#pool(match.pool),
      route: match.route,
      forwardUrl: match.forwardUrl,
      sessionId: match.sessionId,
      req,
      res,
      forwarded: {
        clientAddress: client,
        proto: this.#httpProto,
        host: req.headers.host,
      },
      responseTimeoutMs: this.#options.upstreamHandshakeTimeoutMs,
      firstByteTimeoutMs: this.#options.firstByteTimeoutMs,
      retryBodyBytes: this.#options.retryBodyBytes,
      bodyTimeoutMs: this.#options.requestTimeoutMs,
      slowBackend: (f, backend, retrying) => {
        metrics.error('PROXY_ERR_FIRST_BYTE_TIMEOUT');
        if (retrying) metrics.requestRetries.inc({ pool: f.pool, reason: 'first_byte_timeout' });
        logger.warn(
          retrying ? 'backend sent no response, trying the next one' : 'backend sent no response',
          {
            code: 'PROXY_ERR_FIRST_BYTE_TIMEOUT',
            requestId: f.id,
            route: f.route,
            pool: f.pool,
            backend: backend.id,
            client,
          },
        );
      },
      connector: this.#options.connector,
      adapter: this.#options.adapter,
      logger,
      isDraining: this.#options.isDraining,
      done: (f, code, status) => {
        const outcome = code === undefined ? 'ok' : outcomeOf(code);
        metrics.httpRequests.inc({ route: f.route, outcome });
        if (code !== undefined) metrics.error(code);
        const fields = {
          requestId: f.id,
          route: f.route,
          method,
          path: match.pathname,
          pool: f.pool,
          backend: f.backend?.id,
          outcome,
          code,
          status,
          attempts: f.attempts > 1 ? f.attempts : undefined,
          client,
          durationMs: elapsed(f.startedAt),
        };
        if (code === undefined) logger.info('request', fields);
        else logger.warn('request', fields);
      },
    });
    forward.start();
  }

  /** True when the upgrade may go on: valid, or invalid in `log` mode (logged and counted). */
  #signatureAccepted(req: UpgradeRequest, pathname: string, requestId: string): boolean {
    const { signature, metrics, logger } = this.#options;
    if (!signature) return true;
    const verdict = signature.verify(pathname, req.headers['x-twilio-signature']);
    metrics.signatureCheck(verdict);
    if (verdict === 'valid') return true;
    if (signature.mode === 'enforce') return false;
    metrics.error('PROXY_ERR_BAD_SIGNATURE');
    logger.warn('twilio signature check failed, forwarding (TWILIO_SIGNATURE_MODE=log)', {
      code: 'PROXY_ERR_BAD_SIGNATURE',
      requestId,
      verdict,
      signedUrl: signature.signedUrl(pathname),
    });
    return true;
  }

  #tunnelDecided(
    tunnel: Tunnel,
    code: ProxyErrorCode | undefined,
    status: number | undefined,
  ): void {
    const { metrics, logger } = this.#options;
    const outcome = code === undefined ? 'ok' : outcomeOf(code);
    metrics.upgrade(tunnel.route, outcome);
    if (code !== undefined) metrics.error(code);
    const durationMs = elapsed(tunnel.startedAt);
    // The worker answered (101 or not): that is the handshake time; failures say nothing about it.
    if (code === undefined || code === 'PROXY_ERR_UPSTREAM_REJECTED') {
      metrics.handshakeObserved(tunnel.pool, durationMs / 1000);
    }
    const fields = {
      requestId: tunnel.id,
      tunnelId: tunnel.id,
      route: tunnel.route,
      path: tunnel.path,
      pool: tunnel.pool,
      backend: tunnel.backend?.id,
      // Sent where the same call's live stream is (see PickOptions.affinityKey).
      callAffinity: tunnel.byAffinity || undefined,
      outcome,
      code,
      status,
      client: tunnel.clientAddress,
      durationMs,
    };
    if (code === undefined) logger.info('upgrade', fields);
    else logger.warn('upgrade', fields);
    if (code === 'PROXY_ERR_UPSTREAM_REJECTED' && status === 503 && tunnel.backend) {
      this.#backendBusy(tunnel, tunnel.backend, false);
    }
  }

  /**
   * Passive health: a worker's 503 on an upgrade means it is full (a draining worker says so on
   * `/readyz`), not that this request was wrong (unlike a 401/403/404/409), so it is marked full:
   * still `up` for webhooks, and new tunnels go elsewhere while any other `up` backend is not
   * full, until its next ready probe. Without this, every caller until that probe would be sent
   * there first. This runs
   * synchronously, before any later upgrade picks a backend. `retrying`: the tunnel goes on to
   * the next backend (the usual case); otherwise the 503 went to the caller (call affinity).
   */
  #backendBusy(tunnel: Tunnel, backend: Backend, retrying: boolean): void {
    const { metrics, logger } = this.#options;
    metrics.error('PROXY_ERR_BACKEND_BUSY');
    const marked = backend.markFull('upgrade answered 503');
    logger.warn(retrying ? 'backend answered 503, trying the next one' : 'backend answered 503', {
      code: 'PROXY_ERR_BACKEND_BUSY',
      pool: backend.pool,
      backend: backend.id,
      tunnelId: tunnel.id,
      // Full from now until its next ready probe: it still takes webhooks, and new tunnels only
      // when every other `up` backend is full too (false: it already was, or was not `up`).
      markedFull: marked,
    });
  }

  #callMoved(tunnel: Tunnel, report: MoveReport, failure: MoveFailure | undefined): void {
    const { metrics, logger } = this.#options;
    const pool = tunnel.pool;
    metrics.callMoveGap.observe({ pool }, report.gapMs / 1000);
    if (report.droppedFrames > 0) metrics.callMoveDroppedFrames.inc({ pool }, report.droppedFrames);
    const fields = {
      tunnelId: tunnel.id,
      path: tunnel.path,
      pool,
      from: report.from.id,
      to: report.to?.id,
      reason: report.reason,
      attempt: report.attempt,
      gapMs: Math.round(report.gapMs),
      droppedFrames: report.droppedFrames,
    };
    if (failure === undefined) {
      metrics.callsMoved.inc({ pool, reason: report.reason });
      logger.info('call moved', fields);
      return;
    }
    metrics.callMovesFailed.inc({ pool, reason: failure });
    metrics.error('PROXY_ERR_MOVE_FAILED');
    logger.warn('call could not be moved, closing it toward the caller (1011)', {
      code: 'PROXY_ERR_MOVE_FAILED',
      failure,
      ...fields,
    });
  }

  #tunnelClosed(tunnel: Tunnel): void {
    const { metrics, logger, tracker } = this.#options;
    tracker.delete(tunnel);
    const durationMs = tunnel.openDurationMs;
    if (durationMs === undefined) return;
    const closedBy = tunnel.closedBy ?? 'client';
    metrics.tunnelClosed(tunnel.pool, closedBy, durationMs / 1000);
    // Codes from before the 101 were counted with the upgrade decision.
    const code = tunnel.code;
    if (code !== undefined) metrics.error(code);
    const fields = {
      tunnelId: tunnel.id,
      route: tunnel.route,
      path: tunnel.path,
      pool: tunnel.pool,
      backend: tunnel.backend?.id,
      closedBy,
      code,
      bytesFromClient: tunnel.bytesFromClient,
      bytesFromBackend: tunnel.bytesFromBackend,
      moves: tunnel.moves || undefined,
      durationMs: Math.round(durationMs),
    };
    if (code === undefined) logger.info('tunnel closed', fields);
    else logger.warn('tunnel closed', fields);
  }

  #pool(name: PoolName): Pool {
    const pool = this.#options.pools.get(name);
    if (!pool) throw new Error(`no pool "${name}"`);
    return pool;
  }
}

function elapsed(since: number): number {
  return Math.round((performance.now() - since) * 10) / 10;
}
