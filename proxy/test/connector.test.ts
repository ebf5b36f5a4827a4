import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { createLogger, createRegistry } from '@callgate/runtime';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConnectCancel, Connector, type ConnectResult } from '../src/connector.js';
import { ProxyMetrics } from '../src/metrics.js';
import { Pool } from '../src/pool.js';
import { closedPort, startWsBackend } from './helpers/index.js';

function connector(timeoutMs: number): { connector: Connector; logs: Record<string, unknown>[] } {
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    stream: { write: (l: string) => logs.push(JSON.parse(l) as Record<string, unknown>) },
  });
  const metrics = new ProxyMetrics(createRegistry());
  return { connector: new Connector({ timeoutMs, logger, metrics }), logs };
}

function poolWith(...ports: number[]): Pool {
  const pool = new Pool('media');
  pool.setMembers(
    'test',
    ports.map((port) => ({ host: '127.0.0.1', port })),
  );
  return pool;
}

function open(c: Connector, pool: Pool, signal = new ConnectCancel()): Promise<ConnectResult> {
  return new Promise((resolve) => {
    let returned = false;
    c.open(pool, { signal, requestId: 'req-1' }, (result) => {
      // The outcome never arrives before open() returns, even when it is known at once.
      expect(returned).toBe(true);
      resolve(result);
    });
    returned = true;
  });
}

/**
 * A port whose listener never accepts: a child process listens with a backlog of 1 and blocks its
 * event loop, and connections fill its accept queue until one stays pending: from then on the
 * kernel drops new SYNs and a connect hangs (the way a hung or overloaded worker looks).
 */
async function unacceptingPort(): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      `const s = require('node:net').createServer();
       s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
         console.log(s.address().port);
         Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
       });`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
  });
  const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  const port = Number(line);
  const fillers: Socket[] = [];
  onTestFinished(() => {
    for (const f of fillers) f.destroy();
  });
  for (let i = 0; i < 16; i++) {
    const filler = connect(port, '127.0.0.1');
    filler.on('error', () => undefined);
    fillers.push(filler);
    // Linux queues backlog + 1 connections: those connect for sure, however slow the machine.
    if (i < 2) {
      await once(filler, 'connect');
      continue;
    }
    let timer: NodeJS.Timeout | undefined;
    const connected = await Promise.race([
      once(filler, 'connect').then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(resolve, 500, false))),
    ]);
    clearTimeout(timer);
    if (!connected) return port;
  }
  throw new Error('the accept queue never filled');
}

describe('Connector', () => {
  it('skips a backend that refuses, marks it down and logs why, and hands over the next one', async () => {
    const dead = await closedPort();
    const live = await startWsBackend();
    const pool = poolWith(dead, live.port);
    const { connector: c, logs } = connector(2000);
    // Least tunnels picks the first listed on a tie: make sure the dead one is tried first.
    const deadBackend = pool.backends.find((b) => b.port === dead)!;
    const liveBackend = pool.backends.find((b) => b.port === live.port)!;
    const hold = liveBackend.acquire();

    const result = await open(c, pool);
    hold.release();
    if (!result.ok) throw new Error(`expected a socket, got ${result.reason}`);
    onTestFinished(() => {
      result.socket.destroy();
    });
    expect(result.lease.backend).toBe(liveBackend);
    expect(result.socket.remotePort).toBe(live.port);
    expect(liveBackend.active).toBe(1);
    expect(deadBackend.state).toBe('down');
    expect(deadBackend.active).toBe(0);
    expect(logs).toContainEqual(
      expect.objectContaining({
        code: 'PROXY_ERR_BACKEND_UNREACHABLE',
        backend: deadBackend.id,
        cause: 'ECONNREFUSED',
        requestId: 'req-1',
      }),
    );
    result.lease.release();
    expect(liveBackend.active).toBe(0);
  });

  it('gives up on a backend that does not accept in time, marks it down, and reports no backend', async () => {
    const port = await unacceptingPort();
    const pool = poolWith(port);
    const backend = pool.backends[0]!;
    const { connector: c, logs } = connector(150);

    const result = await open(c, pool);
    expect(result).toEqual({ ok: false, reason: 'no-backend', tried: 1 });
    expect(backend.state).toBe('down');
    expect(backend.active).toBe(0);
    expect(logs).toContainEqual(
      expect.objectContaining({ code: 'PROXY_ERR_BACKEND_UNREACHABLE', cause: 'ETIMEDOUT' }),
    );
  });

  it('stops a pending connect when the caller leaves: no socket, no lease, the backend not blamed', async () => {
    const port = await unacceptingPort();
    const pool = poolWith(port);
    const backend = pool.backends[0]!;
    const { connector: c, logs } = connector(60_000);
    const cancel = new ConnectCancel();

    const pending = open(c, pool, cancel);
    expect(backend.active).toBe(1); // counted while connecting
    cancel.abort();
    expect(await pending).toEqual({ ok: false, reason: 'aborted', tried: 1 });
    expect(backend.active).toBe(0);
    expect(backend.state).toBe('up');
    expect(logs.filter((l) => l.code === 'PROXY_ERR_BACKEND_UNREACHABLE')).toEqual([]);
  });

  it('answers at once, but not synchronously, when no backend is up or the caller already left', async () => {
    const { connector: c } = connector(1000);
    expect(await open(c, new Pool('media'))).toEqual({
      ok: false,
      reason: 'no-backend',
      tried: 0,
    });
    const gone = new ConnectCancel();
    gone.abort();
    const live = await startWsBackend();
    const pool = poolWith(live.port);
    expect(await open(c, pool, gone)).toEqual({ ok: false, reason: 'aborted', tried: 0 });
    expect(pool.backends[0]!.active).toBe(0);
  });
});
