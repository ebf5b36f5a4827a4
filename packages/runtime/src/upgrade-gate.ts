import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { RUNTIME_ERRORS, statusOf, type CodesWith } from './errors.js';
import { checkWebSocketHandshake } from './handshake.js';
import { clientOf } from './session-table.js';
import type { Logger } from './logger.js';
import { parseRequestTarget } from './request-target.js';
import type { StreamServerOptions, UpgradeVerdict } from './stream-server-options.js';
import type { StreamServerMetrics, UpgradeOutcome } from './stream-server-metrics.js';
import { traceFields } from './trace.js';
import { RETRY_AFTER_SECONDS, writeHttpError } from './http-answers.js';

export interface UpgradeGateOptions<Ctx> {
  log: Logger;
  metrics: StreamServerMetrics;
  /** The server's own options object, so `routeUpgrade` is still called as its method. */
  handlers: Pick<StreamServerOptions<Ctx>, 'maxSessions' | 'routeUpgrade' | 'maxUnstartedSessions'>;
  /** Whether new sessions are taken (not draining past the accept grace, not destroyed). */
  isAccepting: () => boolean;
  /**
   * Sessions holding a slot (all of them, or with `maxUnstartedSessions` the started ones); with
   * the upgrades still being decided, counted against `maxSessions`.
   */
  sessionCount: () => number;
  /** With `maxUnstartedSessions`: sockets open that have not started. */
  unstartedCount?: (client?: string) => number;
  /**
   * With `maxUnstartedSessions`: closes the oldest unstarted socket of `client` (or, without it,
   * of the client holding the most); false if there is none.
   */
  evictUnstarted?: (client?: string) => boolean;
  /** Completes the handshake of an accepted upgrade; the socket's 'error' listener is removed. */
  accept: (req: IncomingMessage, socket: Duplex, head: Buffer, context: Ctx) => void;
  /** Called each time an upgrade stops being pending, so the server can notice it went idle. */
  onSettled: () => void;
}

/** All clients together may hold this many times `maxUnstartedSessions` idle sockets. */
export const UNSTARTED_CLIENTS_FACTOR = 4;

/**
 * Decides each upgrade before the handshake: a valid WebSocket handshake, drain, capacity, then the
 * worker's `routeUpgrade`. Refusals answer a JSON HTTP error on the raw socket, are logged, and
 * counted in `<prefix>_upgrades_total{outcome}` and `<prefix>_errors_total{code}`.
 */
export class UpgradeGate<Ctx> {
  readonly #options: UpgradeGateOptions<Ctx>;
  /** Sockets between the 'upgrade' event and handleUpgrade (awaiting routeUpgrade). */
  readonly #pending = new Set<Duplex>();

  constructor(options: UpgradeGateOptions<Ctx>) {
    this.#options = options;
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Destroys the sockets of upgrades still being decided. */
  destroyPending(): void {
    for (const socket of this.#pending) socket.destroy();
  }

  /** The http.Server 'upgrade' listener. */
  handle(req: IncomingMessage, socket: Duplex, head: Buffer): void {
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
      this.refuse(socket, 'bad_handshake', 'RUNTIME_ERR_BAD_HANDSHAKE', 'invalid request target');
      return;
    }
    const handshake = checkWebSocketHandshake('RUNTIME', {
      method: req.method,
      httpVersion: req.httpVersion,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
      headLength: head.length,
    });
    if (!handshake.ok) {
      this.refuse(socket, 'bad_handshake', handshake.code, handshake.reason, {}, url, req);
      return;
    }
    if (!this.#options.isAccepting()) {
      this.#refuseDraining(socket, url, req);
      return;
    }
    const { handlers } = this.#options;
    const max = handlers.maxSessions;
    if (this.#options.sessionCount() + this.#pending.size >= max) {
      this.refuse(
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

    const maxUnstarted = handlers.maxUnstartedSessions;
    const { unstartedCount, evictUnstarted } = this.#options;
    if (maxUnstarted !== undefined && unstartedCount && evictUnstarted) {
      // Idle sockets never keep callers out: per client address, a new socket pushes out that
      // client's oldest idle one, so a squatter only ever evicts its own; all clients together
      // hold at most UNSTARTED_CLIENTS_FACTOR times as many, and past that the client holding the
      // most loses its oldest.
      const client = clientOf(req);
      let own = unstartedCount(client) - maxUnstarted + 1;
      while (own > 0 && evictUnstarted(client)) own--;
      let over =
        unstartedCount() + this.#pending.size - maxUnstarted * UNSTARTED_CLIENTS_FACTOR + 1;
      while (over > 0 && evictUnstarted()) over--;
    }

    // Holding a slot while routeUpgrade runs keeps a burst of upgrades from overshooting the limit.
    this.#pending.add(socket);
    try {
      let verdict: UpgradeVerdict<Ctx>;
      try {
        verdict = await handlers.routeUpgrade(req, url);
      } catch (err) {
        this.#options.log.error('routeUpgrade failed', {
          code: 'RUNTIME_ERR_HANDLER',
          path: url.pathname,
          err,
        });
        this.refuse(socket, 'error', 'RUNTIME_ERR_HANDLER', 'internal error');
        return;
      }
      if (socket.destroyed || !socket.writable) {
        // The client left while we decided; nothing to answer.
        socket.destroy();
        return;
      }
      if (!this.#options.isAccepting()) {
        this.#refuseDraining(socket, url, req);
        return;
      }
      if (!verdict.accept) {
        const status = isErrorStatus(verdict.status) ? verdict.status : 500;
        this.#answer(
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
      this.#options.accept(req, socket, head, context);
    } finally {
      this.#pending.delete(socket);
      this.#options.onSettled();
    }
  }

  #upgradeCrashed(socket: Duplex, err: unknown): void {
    this.#options.log.error('upgrade failed', { code: 'RUNTIME_ERR_HANDLER', err });
    this.#options.metrics.upgrades.inc({ outcome: 'error' });
    this.#options.metrics.errors.inc({ code: 'RUNTIME_ERR_HANDLER' });
    if (socket.listenerCount('error') === 0) socket.on('error', () => undefined);
    socket.destroy();
  }

  #refuseDraining(socket: Duplex, url: URL, req: IncomingMessage): void {
    this.refuse(
      socket,
      'draining',
      'RUNTIME_ERR_DRAINING',
      'server is draining',
      { 'Retry-After': String(RETRY_AFTER_SECONDS) },
      url,
      req,
    );
  }

  /** Refuses with a runtime code, answered with the status of its `RUNTIME_ERRORS` entry. */
  refuse(
    socket: Duplex,
    outcome: Exclude<UpgradeOutcome, 'accepted' | 'rejected'>,
    code: CodesWith<typeof RUNTIME_ERRORS, 'status'>,
    message: string,
    headers: Record<string, string> = {},
    url?: URL,
    req?: IncomingMessage,
  ): void {
    this.#answer(socket, outcome, statusOf(RUNTIME_ERRORS, code), code, message, headers, url, req);
  }

  /** Answers `status` with a JSON error on the raw socket, logs (unless 'error') and counts it. */
  #answer(
    socket: Duplex,
    outcome: Exclude<UpgradeOutcome, 'accepted'>,
    status: number,
    code: string,
    message: string,
    headers: Record<string, string> = {},
    url?: URL,
    req?: IncomingMessage,
  ): void {
    this.#options.metrics.upgrades.inc({ outcome });
    this.#options.metrics.errors.inc({ code });
    // outcome 'error' was logged where it happened, with its cause.
    if (outcome !== 'error') {
      const level = outcome === 'over_capacity' ? 'warn' : 'info';
      // The tunnel id joins this line with the proxy's PROXY_ERR_UPSTREAM_REJECTED line.
      const trace = req ? { tunnelId: traceFields(req).tunnelId } : {};
      this.#options.log[level]('upgrade refused', {
        code,
        status,
        outcome,
        path: url?.pathname,
        ...trace,
      });
    }
    writeHttpError(socket, status, code, message, headers);
  }
}

function isErrorStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 400 && status <= 599;
}
