export type BackendState = 'up' | 'down' | 'draining';

/** What a probe of `/readyz` said: 200, 503, or anything else (error, timeout, other status). */
export type ProbeResult = 'ready' | 'draining' | 'failed';

export interface HealthThresholds {
  /** Consecutive failed probes that take an `up` backend `down`. */
  unhealthy: number;
  /** Consecutive good probes that bring a `down` backend back `up`. */
  healthy: number;
}

/** The last active probe of a backend, for the status page. */
export interface ProbeRecord {
  result: ProbeResult;
  /** `200`, `503`, `status 500`, `ECONNREFUSED`, `timeout after 1000 ms` … */
  detail: string;
  latencyMs: number;
  /** `Date.now()` when the probe finished. */
  at: number;
}

/** Told about every change; the pool implements it. */
export interface BackendObserver {
  backendStateChanged(backend: Backend, previous: BackendState, reason: string): void;
  /** `active` dropped to 0 on a backend that left the pool's membership. */
  backendReleased(backend: Backend): void;
}

/** Holds one unit of a backend's load; `release()` is idempotent. */
export interface Lease {
  readonly backend: Backend;
  release(): void;
}

/** `[v6]:port` or `host:port`: the backend's id, metric label and log field. */
export function backendId(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * One worker address in a pool. New backends start `up` (a refused connect marks them down at
 * once, invisibly to the caller); the health checker and the tunnels move them between states.
 * A backend removed from membership stays, `draining`, until its last tunnel ends.
 */
export class Backend {
  readonly id: string;
  readonly pool: string;
  readonly host: string;
  readonly port: number;
  readonly #observer: BackendObserver;
  #state: BackendState = 'up';
  #active = 0;
  #isRemoved = false;
  #goodProbes = 0;
  #badProbes = 0;
  #full = false;
  #drainedByOperator = false;
  #lastProbe: ProbeRecord | undefined;

  constructor(pool: string, host: string, port: number, observer: BackendObserver) {
    this.pool = pool;
    this.host = host;
    this.port = port;
    this.id = backendId(host, port);
    this.#observer = observer;
  }

  get state(): BackendState {
    return this.#state;
  }

  /** Open tunnels plus connects in progress and HTTP requests in flight: the balancer's load. */
  get active(): number {
    return this.#active;
  }

  /**
   * Answered an upgrade with 503 while `up`: full (or draining, until the next probe says so).
   * Still `up`: plain requests (webhooks) go on, and new tunnels go to it only when every other
   * `up` backend is full too. Cleared by the next ready probe (as `draining` was before).
   */
  get isFull(): boolean {
    return this.#full;
  }

  get isRemoved(): boolean {
    return this.#isRemoved;
  }

  /** Drained from the admin port: no new tunnels until undrained, whatever the probes say. */
  get isDrainedByOperator(): boolean {
    return this.#drainedByOperator;
  }

  get lastProbe(): ProbeRecord | undefined {
    return this.#lastProbe;
  }

  /** The health checker notes each probe here (the state change is `recordProbe`'s job). */
  rememberProbe(record: ProbeRecord): void {
    this.#lastProbe = record;
  }

  /**
   * Operator drain: no new tunnels (live ones continue), and no probe brings it back `up` until
   * `undrainByOperator()`; it can still go `down`. Returns false if it already was drained.
   */
  drainByOperator(): boolean {
    if (this.#drainedByOperator) return false;
    this.#drainedByOperator = true;
    if (this.#state === 'up') this.#setState('draining', 'drained by operator');
    return true;
  }

  /** Ends an operator drain: `up` again unless its last probe said the worker itself drains. */
  undrainByOperator(): boolean {
    if (!this.#drainedByOperator) return false;
    this.#drainedByOperator = false;
    if (this.#state === 'draining' && !this.#isRemoved && this.#lastProbe?.result !== 'draining') {
      this.#setState('up', 'undrained by operator');
    }
    return true;
  }

  /** Counts one unit of load until the lease is released. */
  acquire(): Lease {
    this.#active++;
    let held = true;
    return {
      backend: this,
      release: () => {
        if (!held) return;
        held = false;
        this.#active--;
        if (this.#active === 0 && this.#isRemoved) this.#observer.backendReleased(this);
      },
    };
  }

  /** Passive health: a refused or timed-out connect, or a handshake that never came back. */
  markDown(reason: string): void {
    this.#goodProbes = 0;
    if (!this.#isRemoved) this.#setState('down', reason);
  }

  /**
   * A worker's 503 on an upgrade: full, not draining (a draining worker says so on `/readyz`,
   * and the next probe marks it). Returns whether the flag was newly set on an `up` backend.
   */
  markFull(_reason: string): boolean {
    if (this.#isRemoved || this.#state !== 'up' || this.#full) return false;
    this.#full = true;
    return true;
  }

  /** Active health: applies one probe result with rise/fall thresholds (HAProxy `rise`/`fall`). */
  recordProbe(result: ProbeResult, thresholds: HealthThresholds): void {
    if (this.#isRemoved) return;
    switch (result) {
      case 'ready':
        this.#full = false;
        this.#badProbes = 0;
        this.#goodProbes++;
        // A worker that stopped draining is ready at once; one that was down must prove itself.
        if (this.#state === 'draining') this.#setState('up', 'probe ready');
        else if (this.#state === 'down' && this.#goodProbes >= thresholds.healthy) {
          this.#setState('up', `${this.#goodProbes} probes ready`);
        }
        return;
      case 'draining':
        this.#badProbes = 0;
        this.#goodProbes = 0;
        this.#setState('draining', 'probe 503');
        return;
      case 'failed':
        this.#goodProbes = 0;
        this.#badProbes++;
        if (this.#state !== 'down' && this.#badProbes >= thresholds.unhealthy) {
          this.#setState('down', `${this.#badProbes} probes failed`);
        }
        return;
    }
  }

  /** Left membership (DNS no longer lists it): no new tunnels, live ones continue. */
  markRemoved(): void {
    if (this.#isRemoved) return;
    this.#isRemoved = true;
    this.#setState('draining', 'removed from membership');
    if (this.#active === 0) this.#observer.backendReleased(this);
  }

  /** Listed again before its last tunnel ended; health checks decide from here. */
  restore(): void {
    if (!this.#isRemoved) return;
    this.#isRemoved = false;
    this.#goodProbes = 0;
    this.#badProbes = 0;
    this.#setState('up', 'listed again');
  }

  #setState(wanted: BackendState, reason: string): void {
    // An operator-drained backend never turns `up` by itself (probes, membership).
    const state = wanted === 'up' && this.#drainedByOperator ? 'draining' : wanted;
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.#observer.backendStateChanged(this, previous, reason);
  }
}
