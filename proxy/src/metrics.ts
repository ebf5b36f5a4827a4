import { Counter, Gauge, Histogram, type Registry } from '@callgate/runtime';
import type { BackendState } from './backend.js';
import type { ProxyErrorCode } from './errors.js';

export const BACKEND_STATES: readonly BackendState[] = ['up', 'draining', 'down'];

/** Everything the proxy exports, registered on the service's own registry (never the global one). */
export class ProxyMetrics {
  readonly upgrades: Counter<'route' | 'outcome'>;
  readonly httpRequests: Counter<'route' | 'outcome'>;
  readonly tunnelsOpen: Gauge<'pool' | 'backend'>;
  readonly tunnelDuration: Histogram<'pool' | 'closed_by'>;
  readonly handshakeDuration: Histogram<'pool'>;
  readonly tunnelBytes: Counter<'pool' | 'direction'>;
  readonly backendState: Gauge<'pool' | 'backend' | 'state'>;
  readonly signatureChecks: Counter<'outcome'>;
  readonly errors: Counter<'code'>;
  readonly draining: Gauge;
  readonly clientLimited: Counter<'at'>;
  readonly requestRetries: Counter<'pool' | 'reason'>;
  readonly callsMoved: Counter<'pool' | 'reason'>;
  readonly callMovesFailed: Counter<'pool' | 'reason'>;
  readonly callMoveGap: Histogram<'pool'>;
  readonly callMoveDroppedFrames: Counter<'pool'>;
  readonly tunnelFallbacks: Counter<'pool' | 'reason'>;
  readonly badFrames: Counter<'pool' | 'side' | 'reason'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.upgrades = new Counter({
      name: 'proxy_upgrades_total',
      help: 'WebSocket upgrade requests by route and outcome (ok, or the error code in snake case).',
      labelNames: ['route', 'outcome'],
      registers,
    });
    this.httpRequests = new Counter({
      name: 'proxy_http_requests_total',
      help: 'Plain HTTP requests by route and outcome.',
      labelNames: ['route', 'outcome'],
      registers,
    });
    this.tunnelsOpen = new Gauge({
      name: 'proxy_tunnels_open',
      help: 'Tunnels currently assigned to a backend (handshaking or open).',
      labelNames: ['pool', 'backend'],
      registers,
    });
    this.tunnelDuration = new Histogram({
      name: 'proxy_tunnel_duration_seconds',
      help: 'Lifetime of opened tunnels, from the 101 to the close, by who closed first.',
      labelNames: ['pool', 'closed_by'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
      registers,
    });
    this.handshakeDuration = new Histogram({
      name: 'proxy_handshake_duration_seconds',
      help: 'From the accepted upgrade to the worker answer (connect attempts included).',
      labelNames: ['pool'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.tunnelBytes = new Counter({
      name: 'proxy_tunnel_bytes_total',
      help: 'Bytes carried by tunnels after the 101.',
      labelNames: ['pool', 'direction'],
      registers,
    });
    this.backendState = new Gauge({
      name: 'proxy_backend_state',
      help: 'Backend state: 1 for the current state of each backend, 0 for the others.',
      labelNames: ['pool', 'backend', 'state'],
      registers,
    });
    this.signatureChecks = new Counter({
      name: 'proxy_signature_checks_total',
      help: 'X-Twilio-Signature checks on media-stream upgrades by outcome.',
      labelNames: ['outcome'],
      registers,
    });
    this.errors = new Counter({
      name: 'proxy_errors_total',
      help: 'Errors by code (see proxy/README.md).',
      labelNames: ['code'],
      registers,
    });
    this.clientLimited = new Counter({
      name: 'proxy_client_limited_total',
      help: 'Connections (at=accept) and requests or tunnels (at=request) refused by a per-client limit.',
      labelNames: ['at'],
      registers,
    });
    this.requestRetries = new Counter({
      name: 'proxy_request_retries_total',
      help: 'Plain requests sent again to another worker, by reason (first_byte_timeout).',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.draining = new Gauge({
      name: 'proxy_draining',
      help: '1 once the proxy is draining (SIGTERM), else 0.',
      registers,
    });
    this.callsMoved = new Counter({
      name: 'proxy_calls_moved_total',
      help: 'Live calls moved to another worker, by why their worker went.',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.callMovesFailed = new Counter({
      name: 'proxy_call_moves_failed_total',
      help: 'Calls that could not be moved before CALL_MOVE_TIMEOUT_MS (closed toward the caller with 1011).',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.callMoveGap = new Histogram({
      name: 'proxy_call_move_gap_seconds',
      help: 'From a worker going to the call resuming on another: the gap in the caller audio.',
      labelNames: ['pool'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
      registers,
    });
    this.callMoveDroppedFrames = new Counter({
      name: 'proxy_call_move_dropped_frames_total',
      help: 'Caller frames dropped while a call was moving (CALL_MOVE_BUFFER_BYTES full).',
      labelNames: ['pool'],
      registers,
    });
    this.tunnelFallbacks = new Counter({
      name: 'proxy_tunnel_fallbacks_total',
      help: 'Media tunnels that stopped tracking frames and became a plain relay (they cannot move).',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.badFrames = new Counter({
      name: 'proxy_bad_frames_total',
      help: 'Malformed WebSocket frames on tracked tunnels, by side (client, backend) and fault.',
      labelNames: ['pool', 'side', 'reason'],
      registers,
    });
  }

  // prom-client hashes the label object (its keys sorted and joined) on every inc/observe with
  // one; a child from `labels()` carries its hash. The label sets on the per-upgrade path are few
  // (routes × outcomes, pools × backends), so their children are kept here.
  readonly #children = new Map<string, { inc(v?: number): void; dec?(v?: number): void }>();
  readonly #observers = new Map<string, { observe(v: number): void }>();

  error(code: ProxyErrorCode): void {
    this.#counter(this.errors, 'e', code).inc();
  }

  upgrade(route: string, outcome: string): void {
    this.#counter(this.upgrades, 'u', route, outcome).inc();
  }

  signatureCheck(outcome: string): void {
    this.#counter(this.signatureChecks, 's', outcome).inc();
  }

  tunnelBytesCarried(pool: string, direction: string, bytes: number): void {
    this.#counter(this.tunnelBytes, 'b', pool, direction).inc(bytes);
  }

  tunnelAssigned(pool: string, backend: string, delta: 1 | -1): void {
    const child = this.#counter(this.tunnelsOpen, 'o', pool, backend);
    if (delta === 1) child.inc();
    else child.dec!();
  }

  handshakeObserved(pool: string, seconds: number): void {
    this.#observer(this.handshakeDuration, 'h', pool).observe(seconds);
  }

  tunnelClosed(pool: string, closedBy: string, seconds: number): void {
    this.#observer(this.tunnelDuration, 'd', pool, closedBy).observe(seconds);
  }

  #counter(
    metric: { labels(...values: string[]): { inc(v?: number): void; dec?(v?: number): void } },
    tag: string,
    a: string,
    b?: string,
  ): { inc(v?: number): void; dec?(v?: number): void } {
    const key = b === undefined ? `${tag}\0${a}` : `${tag}\0${a}\0${b}`;
    let child = this.#children.get(key);
    if (child === undefined) {
      child = b === undefined ? metric.labels(a) : metric.labels(a, b);
      this.#children.set(key, child);
    }
    return child;
  }

  #observer(
    metric: { labels(...values: string[]): { observe(v: number): void } },
    tag: string,
    a: string,
    b?: string,
  ): { observe(v: number): void } {
    const key = b === undefined ? `${tag}\0${a}` : `${tag}\0${a}\0${b}`;
    let child = this.#observers.get(key);
    if (child === undefined) {
      child = b === undefined ? metric.labels(a) : metric.labels(a, b);
      this.#observers.set(key, child);
    }
    return child;
  }

  setBackendState(pool: string, backend: string, state: BackendState): void {
    for (const s of BACKEND_STATES)
      this.backendState.set({ pool, backend, state: s }, s === state ? 1 : 0);
  }

  removeBackend(pool: string, backend: string): void {
    for (const state of BACKEND_STATES) this.backendState.remove({ pool, backend, state });
    this.tunnelsOpen.remove({ pool, backend });
    this.#children.delete(`o\0${pool}\0${backend}`);
  }
}
