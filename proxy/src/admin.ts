import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  answerProbe,
  Lifecycle,
  NotStartedError,
  serveMetrics,
  type Registry,
  type Service,
} from '@callgate/runtime';
import { renderStatusHtml, type ProxyStatus } from './status.js';

export interface AdminServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** Readiness: false once draining. */
  isReady(): boolean;
  /** The status page's data; without it `/` and `/status` answer 404. */
  status?: () => Promise<ProxyStatus>;
  /** Per-backend actions; each answers undefined when the pool or backend does not exist. */
  actions?: BackendActions;
  /** `ADMIN_TOKEN`: actions need it (`Authorization: Bearer`) unless the listener is on loopback. */
  adminToken?: string | undefined;
}

export interface BackendActions {
  /** Operator drain; true if it changed anything. */
  drain(pool: string, backend: string): boolean | undefined;
  undrain(pool: string, backend: string): boolean | undefined;
  /** Moves the backend's live calls now; how many. */
  move(pool: string, backend: string): number | undefined;
}

const ACTIONS = ['drain', 'undrain', 'move'] as const;
type ActionName = (typeof ACTIONS)[number];
/** `/backends/<pool>/<host:port>/<action>`, the parts percent-encoded or not. */
const ACTION_PATH = /^\/backends\/([^/]+)\/([^/]+)\/([a-z]+)$/;

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string): boolean {
  const a = address.replace(/^::ffff:/i, '');
  return a === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a);
}

/** A Host header naming this machine by loopback address or `localhost` (DNS rebinding guard). */
function isLoopbackHost(host: string | undefined): boolean {
  if (host === undefined) return false;
  const name = host
    .replace(/:\d+$/, '')
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  return name === 'localhost' || isLoopback(name);
}

/** Constant-time comparison of a presented token with ADMIN_TOKEN (hashes first: equal lengths). */
export function tokenMatches(presented: string | undefined, expected: string | undefined): boolean {
  if (presented === undefined || expected === undefined || expected === '') return false;
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** The token of `Authorization: Bearer <t>`, or the password of `Basic` (any user name). */
function presentedToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  if (header === undefined) return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (bearer) return bearer[1];
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!basic) return undefined;
  const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}

function reply(res: ServerResponse, status: number, text: string): void {
  const body = `${text}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
    connection: 'close',
  });
  res.end(body);
}

function isFormPost(req: IncomingMessage): boolean {
  const type = req.headers['content-type'] ?? '';
  return (
    type.startsWith('application/x-www-form-urlencoded') || type.startsWith('multipart/form-data')
  );
}

/**
 * The admin listener (loopback by default): `/metrics` for Prometheus, `/healthz` for liveness,
 * `/readyz` for readiness, the status page at `/` (JSON at `/status`) and the per-backend
 * actions (POST `/backends/<pool>/<host:port>/drain|undrain|move`). Separate from the public port so that scrapes and probes neither show
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
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const isRead = req.method === 'GET' || req.method === 'HEAD';
    const { status, actions } = this.#options;
    if (isRead && path === '/metrics') {
      void serveMetrics(this.#options.registry, req, res);
    } else if (isRead && (path === '/healthz' || path === '/readyz')) {
      answerProbe(res, path === '/healthz' ? 'healthz' : 'readyz', this.#options.isReady());
    } else if (isRead && status && (path === '/' || path === '/status')) {
      void this.#serveStatus(req, res, path === '/' ? 'html' : 'json', status);
    } else if (actions && ACTION_PATH.test(path)) {
      this.#action(req, res, path, actions);
    } else {
      reply(res, 404, 'not found');
    }
  }

  async #serveStatus(
    req: IncomingMessage,
    res: ServerResponse,
    as: 'html' | 'json',
    status: () => Promise<ProxyStatus>,
  ): Promise<void> {
    try {
      const snapshot = await status();
      const body =
        as === 'json'
          ? `${JSON.stringify(snapshot, null, 2)}\n`
          : renderStatusHtml(snapshot, { actions: this.#mayAct(req) });
      res.writeHead(200, {
        'content-type': as === 'json' ? 'application/json' : 'text/html; charset=utf-8',
        'content-length': String(Buffer.byteLength(body)),
        'cache-control': 'no-store',
        // Nothing on the page runs or loads from elsewhere; forms post only to this origin.
        'content-security-policy':
          "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        'x-content-type-options': 'nosniff',
        // same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on the forms' POSTs.
        'referrer-policy': 'same-origin',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      if (!res.headersSent) reply(res, 500, 'status failed');
      else res.destroy();
    }
  }

  /** Loopback listener (and a loopback Host, against DNS rebinding), or the right token. */
  #mayAct(req: IncomingMessage): boolean {
    if (tokenMatches(presentedToken(req), this.#options.adminToken)) return true;
    return this.#isLoopbackListener() && isLoopbackHost(req.headers.host);
  }

  #isLoopbackListener(): boolean {
    const address = this.#server.address();
    return address !== null && typeof address !== 'string' && isLoopback(address.address);
  }

  /**
   * POST `/backends/<pool>/<host:port>/<drain|undrain|move>`. No GET side effects; a browser's
   * POST must come from this page (Origin, Sec-Fetch-Site), so another site cannot make an
   * operator's browser drain a worker (CSRF).
   */
  #action(req: IncomingMessage, res: ServerResponse, path: string, actions: BackendActions): void {
    const [, rawPool, rawBackend, rawAction] = ACTION_PATH.exec(path)!;
    if (!(ACTIONS as readonly string[]).includes(rawAction!)) {
      reply(res, 404, 'not found');
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      reply(res, 405, 'use POST');
      return;
    }
    if (!this.#sameOrigin(req)) {
      reply(res, 403, 'cross-site request refused');
      return;
    }
    if (!this.#mayAct(req)) {
      reply(res, 403, 'forbidden: send Authorization: Bearer <ADMIN_TOKEN>');
      return;
    }
    let pool: string;
    let backend: string;
    try {
      pool = decodeURIComponent(rawPool!);
      backend = decodeURIComponent(rawBackend!);
    } catch {
      reply(res, 400, 'bad path');
      return;
    }
    const action = rawAction as ActionName;
    const result = action === 'move' ? actions.move(pool, backend) : actions[action](pool, backend);
    // The form's body is not needed; drain it so the connection can be reused.
    req.resume();
    if (result === undefined) {
      reply(res, 404, `no backend ${backend} in pool ${pool}`);
      return;
    }
    const answer =
      action === 'move'
        ? { pool, backend, action, moved: result }
        : { pool, backend, action, changed: result };
    if (isFormPost(req)) {
      // A form on the status page: back to it (Post/Redirect/Get).
      res.writeHead(303, { location: '/', 'content-length': '0', 'cache-control': 'no-store' });
      res.end();
      return;
    }
    const body = `${JSON.stringify(answer)}\n`;
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'cache-control': 'no-store',
    });
    res.end(body);
  }

  /** No Origin and no Sec-Fetch-Site (curl, scripts), or both saying this very origin. */
  #sameOrigin(req: IncomingMessage): boolean {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    return origin !== 'null' && origin === `http://${req.headers.host ?? ''}`;
  }
}
