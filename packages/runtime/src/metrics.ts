import type { IncomingMessage, ServerResponse } from 'node:http';
import { Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** A fresh registry per service (never prom-client's global one), so tests can run many. */
export function createRegistry(): Registry {
  return new Registry();
}

/** Answers a Prometheus scrape from `registry`. */
export async function serveMetrics(
  registry: Registry,
  _req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
    res.end(body);
  } catch (err) {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(`metrics unavailable: ${(err as Error).message}\n`);
  }
}
