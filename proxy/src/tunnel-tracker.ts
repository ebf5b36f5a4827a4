import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import type { Backend } from './backend.js';
import type { ProxyErrorCode } from './errors.js';
import type { ProxyMetrics } from './metrics.js';
import type { Tunnel } from './tunnel.js';

export interface TunnelTrackerOptions {
  /** No bytes either way for this long ends an open tunnel. */
  idleTimeoutMs: number;
  metrics: ProxyMetrics;
}

export interface TunnelTrackerEvents {
  added: [tunnel: Tunnel];
  removed: [tunnel: Tunnel];
  empty: [];
}

interface Activity {
  /** Bytes both ways at the last sweep that saw a change. */
  total: number;
  since: number;
  reportedFromClient: number;
  reportedFromBackend: number;
  /** A backend was assigned and counted in the `proxy_tunnels_open` gauge. */
  isCounted: boolean;
  /** The watchdog has seen it open; idle time counts from then, not from the upgrade. */
  isWatched: boolean;
}

/**
 * Every tunnel from upgrade to close (traefik's connectionTracker): the `proxy_tunnels_open` gauge,
 * the byte counters, the idle watchdog, `waitForEmpty()` for the drain and `destroyAll()` for the
 * deadline. The idle watchdog (a peer that vanished without a FIN or reset would otherwise hold
 * its tunnel forever) is one timer for all tunnels, running only while there are
 * some: the edge cannot see WebSocket pings, but a healthy call carries ~50 messages a second, so
 * silence in both directions means a dead peer.
 */
export class TunnelTracker extends EventEmitter<TunnelTrackerEvents> {
  readonly #options: TunnelTrackerOptions;
  readonly #tunnels = new Map<Tunnel, Activity>();
  readonly #sweepIntervalMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: TunnelTrackerOptions) {
    super();
    this.#options = options;
    this.#sweepIntervalMs = Math.min(5000, Math.max(20, Math.floor(options.idleTimeoutMs / 4)));
  }

  /** Tunnels from upgrade to close, handshaking ones included (what `MAX_TUNNELS` counts). */
  get size(): number {
    return this.#tunnels.size;
  }

  get tunnels(): Tunnel[] {
    return [...this.#tunnels.keys()];
  }

  add(tunnel: Tunnel): void {
    this.#tunnels.set(tunnel, {
      total: 0,
      since: performance.now(),
      reportedFromClient: 0,
      reportedFromBackend: 0,
      isCounted: false,
      isWatched: false,
    });
    this.#timer ??= setInterval(() => this.sweep(), this.#sweepIntervalMs);
    this.emit('added', tunnel);
  }

  /** The tunnel has a backend: it now shows in the per-backend gauge. */
  assigned(tunnel: Tunnel): void {
    const activity = this.#tunnels.get(tunnel);
    const backend = tunnel.backend;
    if (!activity || !backend || activity.isCounted) return;
    activity.isCounted = true;
    this.#options.metrics.tunnelAssigned(tunnel.pool, backend.id, 1);
  }

  /** The tunnel left `backend` before its 101 (a 503 retried elsewhere): out of its gauge. */
  unassigned(tunnel: Tunnel, backend: Backend): void {
    const activity = this.#tunnels.get(tunnel);
    if (!activity?.isCounted) return;
    activity.isCounted = false;
    this.#options.metrics.tunnelAssigned(tunnel.pool, backend.id, -1);
  }

  /** Called once the client socket has closed. */
  delete(tunnel: Tunnel): void {
    const activity = this.#tunnels.get(tunnel);
    if (!activity) return;
    this.#report(tunnel, activity);
    this.#tunnels.delete(tunnel);
    if (activity.isCounted && tunnel.backend) {
      this.#options.metrics.tunnelAssigned(tunnel.pool, tunnel.backend.id, -1);
    }
    this.emit('removed', tunnel);
    if (this.#tunnels.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      this.emit('empty');
    }
  }

  /** Resolves when no tunnel is left (at once if there is none). */
  waitForEmpty(): Promise<void> {
    if (this.#tunnels.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.once('empty', resolve));
  }

  /** Destroys every tunnel now (drain deadline, shutdown); they are removed as their sockets close. */
  destroyAll(code: ProxyErrorCode): void {
    for (const tunnel of this.#tunnels.keys()) tunnel.destroy(code);
  }

  /** One watchdog pass; also publishes byte counts of long tunnels as they go. */
  sweep(now = performance.now()): void {
    const { idleTimeoutMs } = this.#options;
    for (const [tunnel, activity] of this.#tunnels) {
      this.#report(tunnel, activity);
      if (tunnel.state !== 'open') continue;
      if (!activity.isWatched) {
        activity.isWatched = true;
        activity.since = now;
      }
      const total = tunnel.bytesFromClient + tunnel.bytesFromBackend;
      if (total !== activity.total) {
        activity.total = total;
        activity.since = now;
      } else if (now - activity.since >= idleTimeoutMs) {
        tunnel.destroy('PROXY_ERR_TUNNEL_IDLE');
      }
    }
  }

  #report(tunnel: Tunnel, activity: Activity): void {
    const { metrics } = this.#options;
    const fromClient = tunnel.bytesFromClient - activity.reportedFromClient;
    const fromBackend = tunnel.bytesFromBackend - activity.reportedFromBackend;
    if (fromClient > 0) {
      metrics.tunnelBytesCarried(tunnel.pool, 'client_to_backend', fromClient);
      activity.reportedFromClient += fromClient;
    }
    if (fromBackend > 0) {
      metrics.tunnelBytesCarried(tunnel.pool, 'backend_to_client', fromBackend);
      activity.reportedFromBackend += fromBackend;
    }
  }
}
