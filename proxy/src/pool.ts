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
  /**
   * Call affinity (media streams: the CallSid): while a tunnel holds this key (`holdAffinity`),
   * new tunnels with it go to the same backend if it is still up or draining, so the worker that
   * has the call sees the second stream and hands over, instead of two agents talking at once.
   * Without a holder on this replica, the key is rendezvous-hashed over the `up` backends, so
   * another proxy replica that holds the call's first stream sent it to the same worker.
   */
  affinityKey?: string | undefined;
  /** Backends already tried for this request. */
  exclude?: ReadonlySet<Backend> | undefined;
}

export interface BackendAddress {
  host: string;
  port: number;
}

/**
 * A named set of backends for one worker kind, plus the pick policy: least active connections, or
 * a rendezvous hash of the session id, always among `up` backends only (draining and down ones
 * keep their tunnels and get no new ones). One exception: a new stream of a call that has a live
 * tunnel goes where that tunnel is, even if that backend is draining (`affinityKey`).
 */
export class Pool extends EventEmitter<PoolEvents> implements BackendObserver {
  readonly name: string;
  readonly #backends = new Map<string, Backend>();
  /** Backend id → the configured entries (`media:8080`, `10.0.0.5:8080`) that list it. */
  readonly #listedBy = new Map<string, Set<string>>();
  /** Affinity key → the backend holding it and how many tunnels hold it there. */
  readonly #affinity = new Map<string, { backend: Backend; holds: number }>();

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
    const holder = this.affinityHolder(options.affinityKey);
    if (holder && holder.state !== 'down' && !(options.exclude?.has(holder) ?? false)) {
      return holder;
    }
    const candidates = this.backends.filter(
      (b) => b.state === 'up' && !(options.exclude?.has(b) ?? false),
    );
    // A full worker still takes webhooks, and new work only when every other one is full too.
    const free = candidates.filter((b) => !b.isFull);
    const from = free.length > 0 ? free : candidates;
    // No live tunnel of the call here: every replica hashes the CallSid over the same `up`
    // (and not full) backends, so a call's streams meet on one worker whichever proxy they
    // come through.
    const key = options.sessionId ?? options.affinityKey;
    return key === undefined ? leastTunnels(from) : rendezvous(key, from);
  }

  /** The backend a live tunnel with this affinity key went to, if any. */
  affinityHolder(key: string | undefined): Backend | undefined {
    return key === undefined ? undefined : this.#affinity.get(key)?.backend;
  }

  /**
   * Records that a tunnel with `key` went to `backend`, until the returned release is called
   * (idempotent). A newer holder on another backend (the old one went down) replaces the entry;
   * the old holders' releases then leave it alone.
   */
  holdAffinity(key: string, backend: Backend): () => void {
    let entry = this.#affinity.get(key);
    if (entry?.backend !== backend) {
      entry = { backend, holds: 0 };
      this.#affinity.set(key, entry);
    }
    const held = entry;
    held.holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      held.holds--;
      if (held.holds === 0 && this.#affinity.get(key) === held) this.#affinity.delete(key);
    };
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
