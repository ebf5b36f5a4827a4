import { connect, type Socket } from 'node:net';
import { errorCode, type Logger } from '@callgate/runtime';
import type { Backend, Lease } from './backend.js';
import type { ProxyMetrics } from './metrics.js';
import type { Pool } from './pool.js';

export interface ConnectorOptions {
  /** Per attempt: a backend that does not accept TCP in time is skipped. */
  timeoutMs: number;
  logger: Logger;
  metrics: ProxyMetrics;
}

export interface ConnectRequest {
  sessionId?: string | undefined;
  /** See `PickOptions.affinityKey`; held by the returned lease until it is released. */
  affinityKey?: string | undefined;
  /** Backends this request already tried (a worker that answered 503). */
  exclude?: ReadonlySet<Backend> | undefined;
  /** Aborted when the client leaves; the pending connect is destroyed. */
  signal: CancelSignal;
  /** For log lines. */
  requestId: string;
  /**
   * Read the socket into one buffer shared by every tunnel (`net.connect`'s `onread`): no Buffer
   * is allocated per read; the callback copies out what it keeps. `this` is the socket.
   */
  onread?: ((this: Socket, nread: number, buffer: Buffer) => boolean) | undefined;
}

/** What a connect needs of a cancel signal: an AbortSignal has it, and so has ConnectCancel. */
export interface CancelSignal {
  readonly aborted: boolean;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/**
 * A cancel signal for one connect: an AbortController costs a DOMException on every abort, and a
 * tunnel aborts (or used to) on every close. This one costs a field.
 */
export class ConnectCancel implements CancelSignal {
  aborted = false;
  #listener: (() => void) | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    this.#listener = listener;
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.#listener === listener) this.#listener = undefined;
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.();
  }
}

/** Every upstream read lands here first; one buffer for the process, reads are synchronous. */
const SHARED_READ_BUFFER = Buffer.allocUnsafe(65_536);

export type ConnectResult =
  | { ok: true; lease: Lease; socket: Socket; byAffinity: boolean }
  /** `tried`: backends this connect tried (and found unreachable). */
  | { ok: false; reason: 'no-backend' | 'aborted'; tried: number };

/** Called once with the outcome of `Connector.open`, never synchronously. */
export type ConnectDone = (result: ConnectResult) => void;

/**
 * Opens the TCP connection to a backend before any byte of the request is sent, so that a refusal
 * can be retried on the next backend without the caller noticing: http-proxy itself ends the
 * client socket on the first connect error. A backend that refuses or times out is marked down
 * (passive health) and excluded for this request.
 */
export class Connector {
  readonly #options: ConnectorOptions;

  constructor(options: ConnectorOptions) {
    this.#options = options;
  }

  connect(pool: Pool, request: ConnectRequest): Promise<ConnectResult> {
    return new Promise((resolve) => this.open(pool, request, resolve));
  }

  /**
   * `connect` without a promise, for the upgrade path: one attempt object per connect and
   * listeners shared by every socket. The promise, its closures and the async frame were about
   * a tenth of what an upgrade allocated.
   */
  open(pool: Pool, request: ConnectRequest, done: ConnectDone): void {
    new Attempt(this.#options, pool, request, done).next();
  }
}

const kAttempt = Symbol('callgate.connectAttempt');
type Connecting = Socket & { [kAttempt]?: Attempt | undefined };

/** One connect: backends tried in turn until one accepts, none is left, or the caller leaves. */
class Attempt {
  readonly #options: ConnectorOptions;
  readonly #pool: Pool;
  readonly #request: ConnectRequest;
  readonly #done: ConnectDone;
  /** Backends tried so far, with the request's own exclusions; made at the first failure. */
  #tried: Set<Backend> | undefined;
  #lease: Lease | undefined;
  #socket: Connecting | undefined;
  #timer: NodeJS.Timeout | undefined;
  #byAffinity = false;
  #triedCount = 0;

  constructor(options: ConnectorOptions, pool: Pool, request: ConnectRequest, done: ConnectDone) {
    this.#options = options;
    this.#pool = pool;
    this.#request = request;
    this.#done = done;
  }

  next(): void {
    const request = this.#request;
    if (request.signal.aborted) {
      this.#finishSoon({ ok: false, reason: 'aborted', tried: this.#triedCount });
      return;
    }
    const pool = this.#pool;
    const { sessionId, affinityKey } = request;
    const backend = pool.pick({ sessionId, affinityKey, exclude: this.#tried ?? request.exclude });
    if (!backend) {
      this.#finishSoon({ ok: false, reason: 'no-backend', tried: this.#triedCount });
      return;
    }
    this.#byAffinity = backend === pool.affinityHolder(affinityKey);
    this.#triedCount++;
    this.#tried?.add(backend);
    // Counted while connecting, so a burst of new calls spreads over the pool.
    this.#lease = withAffinity(pool, affinityKey, backend.acquire());
    const socket: Connecting = connect({
      host: backend.host,
      port: backend.port,
      noDelay: true,
      ...(request.onread
        ? { onread: { buffer: SHARED_READ_BUFFER, callback: request.onread } }
        : {}),
    });
    socket[kAttempt] = this;
    this.#socket = socket;
    socket.on('error', onConnectError);
    socket.once('connect', onConnected);
    request.signal.addEventListener('abort', this.#onAbort, { once: true });
    this.#timer = setTimeout(onConnectTimeout, this.#options.timeoutMs, this);
  }

  /** The backend accepted: the socket is the caller's from here on. */
  static connected(socket: Connecting): void {
    const self = socket[kAttempt];
    if (self === undefined || self.#socket !== socket) return;
    self.#cleanup(socket);
    // The new owner adds its own handler in the same tick; until then, never an unhandled error.
    socket.on('error', ignoreError);
    const lease = self.#lease!;
    self.#lease = undefined;
    self.#done({ ok: true, lease, socket, byAffinity: self.#byAffinity });
  }

  static failed(socket: Connecting, err: Error): void {
    const self = socket[kAttempt];
    if (self === undefined || self.#socket !== socket) return;
    self.#failed(err);
  }

  static timedOut(self: Attempt): void {
    const err = new Error(`no connect within ${self.#options.timeoutMs} ms`);
    self.#failed(Object.assign(err, { code: 'ETIMEDOUT' }));
  }

  readonly #onAbort = (): void => {
    this.#failed(Object.assign(new Error('client left'), { code: 'ABORT_ERR' }));
  };

  #failed(err: Error): void {
    const socket = this.#socket!;
    this.#cleanup(socket);
    socket.destroy();
    const lease = this.#lease!;
    this.#lease = undefined;
    lease.release();
    const request = this.#request;
    if (request.signal.aborted) {
      this.#done({ ok: false, reason: 'aborted', tried: this.#triedCount });
      return;
    }
    const backend = lease.backend;
    const cause = errorCode(err);
    this.#options.metrics.error('PROXY_ERR_BACKEND_UNREACHABLE');
    this.#options.logger.warn('backend unreachable, trying the next one', {
      code: 'PROXY_ERR_BACKEND_UNREACHABLE',
      pool: this.#pool.name,
      backend: backend.id,
      cause,
      requestId: request.requestId,
    });
    backend.markDown(`connect failed: ${cause}`);
    this.#tried ??= new Set(request.exclude);
    this.#tried.add(backend);
    this.next();
  }

  #cleanup(socket: Connecting): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#request.signal.removeEventListener('abort', this.#onAbort);
    socket.removeListener('connect', onConnected);
    socket.removeListener('error', onConnectError);
    socket[kAttempt] = undefined;
    this.#socket = undefined;
  }

  /** An outcome known before any socket event: still delivered asynchronously, as a promise would. */
  #finishSoon(result: ConnectResult): void {
    process.nextTick(this.#done, result);
  }
}

function onConnected(this: Connecting): void {
  Attempt.connected(this);
}

function onConnectError(this: Connecting, err: Error): void {
  Attempt.failed(this, err);
}

function onConnectTimeout(attempt: Attempt): void {
  Attempt.timedOut(attempt);
}

/** The lease also holds the affinity key on its backend (from the connect on) until released. */
function withAffinity(pool: Pool, key: string | undefined, lease: Lease): Lease {
  if (key === undefined) return lease;
  const unhold = pool.holdAffinity(key, lease.backend);
  return {
    backend: lease.backend,
    release: () => {
      lease.release();
      unhold();
    },
  };
}

function ignoreError(): void {}
