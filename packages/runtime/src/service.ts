import { ClosedError } from './errors.js';

/**
 * The lifecycle contract of every object that owns a port, socket, timer or child. Constructors do
 * no I/O, so an object can be built (and its configuration checked) before anything is bound.
 */
export interface Service {
  /** Binds and starts; port 0 is allowed. */
  start(): Promise<void>;
  /** Graceful: stop accepting, drain, resolve when idle. Idempotent: returns the same promise. */
  close(): Promise<void>;
  /** Immediate: terminate every socket, clear every timer. Idempotent. */
  destroy(reason?: Error): Promise<void>;
}

/** A service that can be told to drain before `close()`: readiness turns 503 at once. */
export interface DrainableService extends Service {
  beginDrain(): void;
}

export type ServiceState = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

/**
 * Implements the state machine of `Service` once, so each service only writes what is its own:
 * `start()` after close throws RUNTIME_ERR_CLOSED, `close()` twice returns the same promise, and
 * `destroy()` during a `close()` cuts it short.
 */
export class Lifecycle {
  readonly #what: string;
  #state: ServiceState = 'idle';
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #destroying: Promise<void> | undefined;

  constructor(what: string) {
    this.#what = what;
  }

  get state(): ServiceState {
    return this.#state;
  }

  start(fn: () => Promise<void>): Promise<void> {
    if (this.#state === 'closing' || this.#state === 'closed') {
      return Promise.reject(new ClosedError(this.#what));
    }
    if (this.#starting) return this.#starting;
    this.#state = 'starting';
    this.#starting = fn().then(
      () => {
        if (this.#state === 'starting') this.#state = 'running';
      },
      (err: unknown) => {
        this.#state = 'closed';
        throw err;
      },
    );
    return this.#starting;
  }

  close(fn: () => Promise<void>): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#destroying) return this.#destroying;
    this.#state = 'closing';
    this.#closing = fn().finally(() => {
      this.#state = 'closed';
    });
    return this.#closing;
  }

  destroy(fn: () => Promise<void>): Promise<void> {
    if (this.#destroying) return this.#destroying;
    this.#state = 'closing';
    this.#destroying = fn().finally(() => {
      this.#state = 'closed';
    });
    return this.#destroying;
  }
}
