import { createLogger, type Logger } from '@callgate/runtime';
import { onTestFinished } from 'vitest';
import { ProxyServer } from '../../src/proxy-server.js';
import { loadProxyConfig } from '../../src/config.js';
import type { Resolver } from '../../src/membership.js';

export type LogLine = Record<string, unknown> & { msg: string; level: string };

export interface TestProxy {
  proxy: ProxyServer;
  port: number;
  adminPort: number;
  /** `ws://127.0.0.1:<port>` */
  wsUrl: string;
  /** `http://127.0.0.1:<port>` */
  httpUrl: string;
  adminUrl: string;
  logs: LogLine[];
  logger: Logger;
}

// Probes only when a test asks for them (the first round at start still runs).
const QUIET_HEALTH = String(3_600_000);

/**
 * A real ProxyServer on 127.0.0.1:0 built from environment strings through the real config loader,
 * destroyed when the test ends. Log lines are kept in `logs`.
 */
export async function startProxy(
  env: Record<string, string>,
  options: { resolve?: Resolver } = {},
): Promise<TestProxy> {
  const config = loadProxyConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: '0',
    HEALTH_CHECK_INTERVAL_MS: QUIET_HEALTH,
    ...env,
  });
  const logs: LogLine[] = [];
  const logger = createLogger({
    level: 'debug',
    stream: { write: (line: string) => logs.push(JSON.parse(line) as LogLine) },
  });
  const proxy = new ProxyServer({
    config,
    logger,
    ...(options.resolve ? { resolve: options.resolve } : {}),
  });
  onTestFinished(() => proxy.destroy());
  await proxy.start();
  const port = proxy.address().port;
  const adminPort = proxy.adminAddress().port;
  return {
    proxy,
    port,
    adminPort,
    wsUrl: `ws://127.0.0.1:${port}`,
    httpUrl: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    logs,
    logger,
  };
}

/** Reads one sample from the admin `/metrics` text, e.g. `proxy_tunnels_open{pool="media"...}`. */
export async function metricValue(
  adminUrl: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const found: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)) found[pair[1]!] = pair[2]!;
    if (Object.entries(labels).every(([k, v]) => found[k] === v)) return Number(m[3]);
  }
  return undefined;
}
