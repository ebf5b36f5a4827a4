import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterEach, describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { entryPoints, repoRoot, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

// What the built workers write, as an operator greps it: one `service` value on every line of a
// process, the proxy's ids on the worker's lines, and every configuration problem at once.

const spawned: SpawnedProcess[] = [];

afterEach(async () => {
  await Promise.all(spawned.splice(0).map((p) => p.kill()));
});

/** Runs a worker that must fail its configuration; resolves with its exit code and log lines. */
async function runInvalid(
  entry: string,
  env: Record<string, string>,
): Promise<{ code: number; lines: Record<string, unknown>[] }> {
  const child = spawn(process.execPath, [entry], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  onTestFinished(() => {
    child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const [code] = (await once(child, 'exit')) as [number];
  const lines = out
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { code, lines };
}

describe('worker log lines', () => {
  it('test-agent worker: one service on every line, the proxy ids on session lines', async () => {
    const worker = await spawnProcess('test-agent', entryPoints.testAgent, {
      env: { LOG_LEVEL: 'info', WORKER_ID: 'ta-logs', ACCEPT_GRACE_MS: '100' },
    });
    spawned.push(worker);
    const requestId = '9a8b7c6d-1111-4222-8333-444455556666';
    const tunnelId = '1a2b3c4d-5555-4666-8777-888899990000';

    const res = await fetch(`http://127.0.0.1:${worker.port}/test-agent/sessions`, {
      method: 'POST',
      headers: { 'X-Request-Id': requestId },
    });
    expect(res.status).toBe(201);
    const { sessionId, wsUrl } = (await res.json()) as { sessionId: string; wsUrl: string };
    const ws = new WebSocket(`ws://127.0.0.1:${worker.port}${wsUrl}`, {
      headers: { 'X-Tunnel-Id': tunnelId },
    });
    ws.on('error', () => undefined);
    onTestFinished(() => {
      ws.terminate();
    });
    await once(ws, 'open');
    ws.send(JSON.stringify({ type: 'hangup' }));
    await once(ws, 'close');
    await worker.waitForLog((l) => l.msg === 'session ended');

    worker.signal('SIGTERM');
    expect(await worker.exited).toBe(0);

    expect(worker.logs.find((l) => l.msg === 'session created')).toMatchObject({
      sessionId,
      requestId,
    });
    for (const msg of ['session started', 'session ended']) {
      expect(worker.logs.find((l) => l.msg === msg)).toMatchObject({ sessionId, tunnelId });
    }
    // Start-up, the secret warning, sessions, drain and exit: all one process, one service.
    const msgs = worker.logs.map((l) => l.msg);
    for (const msg of ['listening', 'draining', 'stream server draining', 'drained']) {
      expect(msgs).toContain(msg);
    }
    expect(worker.logs.some((l) => l.code === 'TEST_AGENT_ERR_NO_SECRET')).toBe(true);
    expect(worker.logs.filter((l) => l.service !== 'test-agent-worker')).toEqual([]);
    expect(worker.logs.filter((l) => l.workerId !== 'ta-logs')).toEqual([]);
  });

  it.each([
    ['media worker', entryPoints.media, 'media-worker', { MAX_CALLS: '0', AGENT: 'robot' }],
    [
      'test-agent worker',
      entryPoints.testAgent,
      'test-agent-worker',
      { MAX_SESSIONS: '0', ACCEPT_GRACE_MS: '-1' },
    ],
  ])(
    '%s: one CONFIG_ERR_INVALID line with every problem, exit 1',
    async (_name, entry, service, env) => {
      const { code, lines } = await runInvalid(entry, env);
      expect(code).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        level: 'error',
        msg: 'invalid configuration',
        code: 'CONFIG_ERR_INVALID',
        service,
      });
      expect(lines[0]!.problems).toHaveLength(2);
    },
  );
});
