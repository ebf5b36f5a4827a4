import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Lifecycle,
  NotStartedError,
  serveMetrics,
  type Registry,
  type Service,
} from '@callgate/runtime';

export interface AdminServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** Readiness: false once draining. */
  isReady(): boolean;
}

/** Answers `/healthz` (alive) or `/readyz` (200 ready, 503 draining) with a small JSON body. */
export function answerProbe(
  res: ServerResponse,
  probe: 'healthz' | 'readyz',
  isReady: boolean,
  closeConnection = false,
): void {
  const ok = probe === 'healthz' || isReady;
  const text = JSON.stringify({ status: probe === 'healthz' ? 'ok' : ok ? 'ready' : 'draining' });
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    'cache-control': 'no-store',
  };
  if (closeConnection) headers.connection = 'close';
  res.writeHead(ok ? 200 : 503, headers);
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/**
 * The admin listener (loopback by default): `/metrics` for Prometheus, `/healthz` for liveness and
 * `/readyz` for readiness. Separate from the public port so that scrapes and probes neither show
 * to callers nor compete with them.
 */
export class AdminServer implements Service {
  readonly #options: AdminServerOptions;
  readonly #server: Server;
  readonly #lifecycle = new Lifecycle('admin server');

  constructor(options: AdminServerOptions) {
    this.#options = options;
    this.#server = createServer({ headersTimeout: 5000, requestTimeout: 10_000 }, (req, res) =>
      this.#handle(req, res),
    );
    this.#server.on('clientError', (_err, socket) => socket.destroy());
  }

  start(): Promise<void> {
    return this.#lifecycle.start(
      () =>
        new Promise<void>((resolve, reject) => {
          this.#server.once('error', reject);
          this.#server.listen(this.#options.port, this.#options.host, () => {
            this.#server.off('error', reject);
            resolve();
          });
        }),
    );
  }

  address(): AddressInfo {
    const address = this.#server.address();
    if (address === null || typeof address === 'string') throw new NotStartedError('admin server');
    return address;
  }

  close(): Promise<void> {
    return this.#lifecycle.close(() => this.#stop());
  }

  destroy(): Promise<void> {
    return this.#lifecycle.destroy(() => this.#stop());
  }

  #stop(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (!this.#server.listening) {
        resolve();
        return;
      }
      this.#server.close(() => resolve());
      // Scrapes are short; nothing here is worth waiting for at shutdown.
      this.#server.closeAllConnections();
    });
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const isRead = req.method === 'GET' || req.method === 'HEAD';
    if (isRead && path === '/metrics') {
      void serveMetrics(this.#options.registry, req, res);
    } else if (isRead && (path === '/healthz' || path === '/readyz')) {
      answerProbe(res, path === '/healthz' ? 'healthz' : 'readyz', this.#options.isReady());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain', connection: 'close' });
      res.end('not found\n');
    }
  }
}
