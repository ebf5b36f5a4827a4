import { EventEmitter } from 'node:events';
import { Backend, backendId, type BackendObserver, type BackendState } from './backend.js';
import { leastTunnels, rendezvous } from './balancer.js';

export interface PoolEvents {
  /** A backend changed state (health check, passive marking, membership). */
  state: [backend: Backend, previous: BackendState, reason: string];
  added: [backend: Backend];
  /** A backend left membership and its last tunnel ended. */
  removed: [backend: Backend];
}

export interface PickOptions {
  /** Pins the pick with a rendezvous hash (test-agent sessions). */
  sessionId?: string | undefined;
  /** Backends already tried for this request. */
  exclude?: ReadonlySet<Backend>;
}

export interface BackendAddress {
  host: string;
  port: number;
}

/**
 * A named set of backends for one worker kind, plus the pick policy: least active connections, or
 * a rendezvous hash of the session id, always among `up` backends only (draining and down ones
 * keep their tunnels and get no new ones).
 */
export class Pool extends EventEmitter<PoolEvents> implements BackendObserver {
  readonly name: string;
  readonly #backends = new Map<string, Backend>();
  /** Backend id → the configured entries (`media:8080`, `10.0.0.5:8080`) that list it. */
  readonly #listedBy = new Map<string, Set<string>>();

  constructor(name: string) {
    super();
    this.name = name;
  }

  get backends(): Backend[] {
    return [...this.#backends.values()];
  }

  get(id: string): Backend | undefined {
    return this.#backends.get(id);
  }

  pick(options: PickOptions = {}): Backend | undefined {
    const candidates = this.backends.filter(
      (b) => b.state === 'up' && !(options.exclude?.has(b) ?? false),
    );
    return options.sessionId === undefined
      ? leastTunnels(candidates)
      : rendezvous(options.sessionId, candidates);
  }

  /**
   * Sets the addresses one configured entry stands for (one for an IP, all of a name's records).
   * New addresses join `up`; addresses no entry lists any more are marked removed and leave once
   * their last tunnel has ended.
   */
  setMembers(source: string, addresses: readonly BackendAddress[]): void {
    const wanted = new Map<string, BackendAddress>();
    for (const a of addresses) wanted.set(backendId(a.host, a.port), a);

    for (const [id, sources] of this.#listedBy) {
      if (wanted.has(id) || !sources.delete(source) || sources.size > 0) continue;
      this.#listedBy.delete(id);
      this.#backends.get(id)?.markRemoved();
    }
    for (const [id, address] of wanted) {
      const sources = this.#listedBy.get(id) ?? new Set<string>();
      sources.add(source);
      this.#listedBy.set(id, sources);
      const existing = this.#backends.get(id);
      if (existing) {
        existing.restore();
        continue;
      }
      const backend = new Backend(this.name, address.host, address.port, this);
      this.#backends.set(id, backend);
      this.emit('added', backend);
    }
  }

  backendStateChanged(backend: Backend, previous: BackendState, reason: string): void {
    this.emit('state', backend, previous, reason);
  }

  backendReleased(backend: Backend): void {
    if (!backend.isRemoved || this.#backends.get(backend.id) !== backend) return;
    this.#backends.delete(backend.id);
    this.emit('removed', backend);
  }
}
