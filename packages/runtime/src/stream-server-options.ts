import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { WebSocket } from 'ws';
import type { Logger } from './logger.js';

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

/** Throws a TypeError naming the first bad option, so a misconfigured server fails at construction. */
export function validateStreamServerOptions<Ctx>(o: StreamServerOptions<Ctx>): void {
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
