import type { IncomingMessage, ServerResponse } from 'node:http';
import { RUNTIME_ERRORS, statusOf, type CodesWith } from './errors.js';
import type { Logger } from './logger.js';
import { answerProbe, sendJsonError } from './http-answers.js';
import { serveMetrics } from './metrics.js';
import { parseRequestTarget } from './request-target.js';
import type { StreamServerOptions } from './stream-server-options.js';

export interface HttpEndpointsOptions<Ctx> {
  log: Logger;
  /** The server's own options object, so `handleRequest` is still called as its method. */
  handlers: Pick<StreamServerOptions<Ctx>, 'registry' | 'handleRequest'>;
  /** /readyz answers 503 while this is true. */
  isDraining: () => boolean;
  countError: (code: string) => void;
}

/**
 * The StreamServer's plain HTTP side: /healthz, /readyz (503 while draining) and /metrics, then the
 * worker's `handleRequest`, then 404. Every error answers `{"error":{"code","message"}}`.
 */
export class HttpEndpoints<Ctx> {
  readonly #options: HttpEndpointsOptions<Ctx>;

  constructor(options: HttpEndpointsOptions<Ctx>) {
    this.#options = options;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { log, handlers, countError } = this.#options;
    const url = parseRequestTarget(req);
    if (!url) {
      countError('RUNTIME_ERR_BAD_REQUEST');
      refuseRequest(res, 'RUNTIME_ERR_BAD_REQUEST', 'invalid request target');
      return;
    }
    try {
      const path = url.pathname;
      if (path === '/healthz' || path === '/readyz' || path === '/metrics') {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          countError('RUNTIME_ERR_METHOD_NOT_ALLOWED');
          refuseRequest(res, 'RUNTIME_ERR_METHOD_NOT_ALLOWED', `${path} answers GET`, {
            Allow: 'GET, HEAD',
          });
          return;
        }
        if (path === '/metrics') await serveMetrics(handlers.registry, req, res);
        else
          answerProbe(res, path === '/healthz' ? 'healthz' : 'readyz', !this.#options.isDraining());
        return;
      }
      const handled = (await handlers.handleRequest?.(req, res, url)) ?? false;
      if (!handled && !res.headersSent) {
        countError('RUNTIME_ERR_NOT_FOUND');
        log.debug('no route', { code: 'RUNTIME_ERR_NOT_FOUND', method: req.method, path });
        refuseRequest(res, 'RUNTIME_ERR_NOT_FOUND', `no route for ${req.method} ${path}`);
      }
    } catch (err) {
      log.error('request handler failed', {
        code: 'RUNTIME_ERR_HANDLER',
        method: req.method,
        path: url.pathname,
        err,
      });
      countError('RUNTIME_ERR_HANDLER');
      if (!res.headersSent) refuseRequest(res, 'RUNTIME_ERR_HANDLER', 'internal error');
      else res.destroy();
    }
  }
}

/** Answers a plain HTTP request with a runtime code and the status of its `RUNTIME_ERRORS` entry. */
function refuseRequest(
  res: ServerResponse,
  code: CodesWith<typeof RUNTIME_ERRORS, 'status'>,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJsonError(res, statusOf(RUNTIME_ERRORS, code), code, message, headers);
}
