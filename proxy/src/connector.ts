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
  | { ok: false; reason: 'no-backend' | 'aborted'; tried: number };

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

  async connect(pool: Pool, request: ConnectRequest): Promise<ConnectResult> {
    const tried = new Set<Backend>(request.exclude);
    for (;;) {
      if (request.signal.aborted) return { ok: false, reason: 'aborted', tried: tried.size };
      const { sessionId, affinityKey } = request;
      const backend = pool.pick({ sessionId, affinityKey, exclude: tried });
      if (!backend) return { ok: false, reason: 'no-backend', tried: tried.size };
      const byAffinity = backend === pool.affinityHolder(affinityKey);
      tried.add(backend);
      // Counted while connecting, so a burst of new calls spreads over the pool.
      const lease = withAffinity(pool, affinityKey, backend.acquire());
      try {
        const socket = await connectSocket(
          backend,
          this.#options.timeoutMs,
          request.signal,
          request.onread,
        );
        return { ok: true, lease, socket, byAffinity };
      } catch (err) {
        lease.release();
        if (request.signal.aborted) return { ok: false, reason: 'aborted', tried: tried.size };
        const cause = errorCode(err);
        this.#options.metrics.error('PROXY_ERR_BACKEND_UNREACHABLE');
        this.#options.logger.warn('backend unreachable, trying the next one', {
          code: 'PROXY_ERR_BACKEND_UNREACHABLE',
          pool: pool.name,
          backend: backend.id,
          cause,
          requestId: request.requestId,
        });
        backend.markDown(`connect failed: ${cause}`);
      }
    }
  }
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

/** Resolves with a connected socket; on failure, timeout or abort the socket is destroyed. */
function connectSocket(
  backend: Backend,
  timeoutMs: number,
  signal: CancelSignal,
  onread: ConnectRequest['onread'],
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: backend.host,
      port: backend.port,
      noDelay: true,
      ...(onread ? { onread: { buffer: SHARED_READ_BUFFER, callback: onread } } : {}),
    });
    const fail = (err: Error): void => {
      cleanup();
      socket.destroy();
      reject(err);
    };
    const onError = (err: Error): void => fail(err);
    const onAbort = (): void =>
      fail(Object.assign(new Error('client left'), { code: 'ABORT_ERR' }));
    const timer = setTimeout(
      () =>
        fail(Object.assign(new Error(`no connect within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      timeoutMs,
    );
    const cleanup = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      socket.removeListener('connect', onConnect);
      socket.removeListener('error', onError);
    };
    const onConnect = (): void => {
      cleanup();
      // The new owner adds its own handler in the same tick; until then, never an unhandled error.
      socket.on('error', ignoreError);
      resolve(socket);
    };
    socket.on('error', onError);
    socket.once('connect', onConnect);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function ignoreError(): void {}
