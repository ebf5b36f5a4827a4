import { createRequire } from 'node:module';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

type DefaultMetric = (registry: Registry, config: Record<string, unknown>) => void;

/**
 * prom-client's default process and Node.js metrics (`process_*`, `nodejs_*`) on `registry`, all
 * but one: `nodejs_gc_duration_seconds`. That histogram needs a `PerformanceObserver` on GC
 * events, and with one installed, even one that does nothing, every call's round trip grew a tail:
 * at 200 calls through the proxy, p99 went from 1.0–1.2 ms to 1.25–2.0 ms and p99.9 from
 * 2–3 ms to 4–7 ms (the same proxy, the observer the only difference). Every process collects
 * through here. GC still shows in `nodejs_heap_*` and in the event-loop lag metrics.
 */
export function collectDefaultMetrics(options: { register: Registry }): void {
  const config = { eventLoopMonitoringPrecision: 10 };
  for (const collect of defaultMetricsWithoutGc()) collect(options.register, config);
}

function defaultMetricsWithoutGc(): DefaultMetric[] {
  // prom-client exports its defaults only as one function that also starts the GC observer; each
  // default is a module of its own, named in its `metricsList` (no `exports` map: these paths are
  // public), so every default it has, now or in a later version, is collected except `gc`.
  const require = createRequire(import.meta.url);
  const { metricsList } = require('prom-client/lib/defaultMetrics.js') as { metricsList: string[] };
  return metricsList
    .filter((name) => name !== 'gc')
    .map((name) => require(`prom-client/lib/metrics/${name}.js`) as DefaultMetric);
}

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
