import { once } from 'node:events';
import { createLogger, createRegistry } from '@callgate/runtime';
import { describe, expect, it, onTestFinished } from 'vitest';
import { HealthChecker } from '../src/health-check.js';
import { ProxyMetrics } from '../src/metrics.js';
import { Pool } from '../src/pool.js';
import { closedPort, eventually, startRawBackend, startWsBackend } from './helpers/index.js';

const logs: Record<string, unknown>[] = [];
const logger = createLogger({
  level: 'debug',
  stream: { write: (l: string) => logs.push(JSON.parse(l) as Record<string, unknown>) },
});

function checker(pool: Pool, intervalMs = 3_600_000): HealthChecker {
  const health = new HealthChecker({
    pools: [pool],
    intervalMs,
    timeoutMs: 300,
    thresholds: { unhealthy: 2, healthy: 2 },
    logger,
    metrics: new ProxyMetrics(createRegistry()),
  });
  onTestFinished(() => health.destroy());
  return health;
}

function poolWith(...ports: number[]): Pool {
  const pool = new Pool('media');
  pool.setMembers(
    'test',
    ports.map((port) => ({ host: '127.0.0.1', port })),
  );
  return pool;
}

describe('HealthChecker', () => {
  it('marks a backend answering 503 draining, and up again on 200', async () => {
    const backend = await startWsBackend({ readyStatus: 503 });
    const pool = poolWith(backend.port);
    const health = checker(pool);
    await health.checkNow();
    expect(pool.backends[0]!.state).toBe('draining');
    backend.setReady(200);
    await health.checkNow();
    expect(pool.backends[0]!.state).toBe('up');
  });

  it('marks a failing backend down after N failures and up after M successes', async () => {
    const backend = await startWsBackend({ readyStatus: 500 });
    const pool = poolWith(backend.port);
    const health = checker(pool);
    await health.checkNow();
    expect(pool.backends[0]!.state).toBe('up');
    await health.checkNow();
    expect(pool.backends[0]!.state).toBe('down');
    expect(logs.some((l) => l.code === 'PROXY_ERR_HEALTH_CHECK' && l.detail === 'status 500')).toBe(
      true,
    );
    backend.setReady(200);
    await health.checkNow();
    expect(pool.backends[0]!.state).toBe('down');
    await health.checkNow();
    expect(pool.backends[0]!.state).toBe('up');
  });

  it('counts a refused connection as a failure', async () => {
    const pool = poolWith(await closedPort());
    const health = checker(pool);
    await health.checkNow();
    await health.checkNow();
    expect(pool.backends[0]!.state).toBe('down');
  });

  it('counts a probe that gets no answer in time as a failure, and leaves no socket open', async () => {
    const silent = await startRawBackend(() => {}, { answerHealthChecks: false });
    const pool = poolWith(silent.port);
    const health = checker(pool);
    await health.checkNow();
    await health.checkNow();
    expect(pool.backends[0]!.state).toBe('down');
    expect(
      logs.some(
        (l) => l.code === 'PROXY_ERR_HEALTH_CHECK' && String(l.detail).startsWith('timeout'),
      ),
    ).toBe(true);
    await eventually(() => silent.openSockets === 0, 5000, 'probe sockets closed');
  });

  it('probes on its own every interval once started, and stops on close', async () => {
    const backend = await startWsBackend({ readyStatus: 200 });
    const pool = poolWith(backend.port);
    const health = checker(pool, 50);
    await health.start();
    backend.setReady(503);
    const [changed] = await once(pool, 'state');
    expect(changed).toBe(pool.backends[0]);
    expect(pool.backends[0]!.state).toBe('draining');
    await health.close();
    await eventually(() => backend.openSockets === 0, 5000, 'probe sockets closed');
  });
});
