import { createParrotAgent } from '@callgate/agent';
import { pcm16ToBytes } from '@callgate/audio';
import { createLogger, createRegistry, type Registry } from '@callgate/runtime';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import {
  TestAgentWorker,
  type CreatedSession,
  type TestAgentWorkerConfig,
} from '../src/test-agent-worker.js';
import { testConfig, audioModulesDir } from './helpers.js';

async function startWorker(
  config: Partial<TestAgentWorkerConfig> = {},
): Promise<{ worker: TestAgentWorker; registry: Registry; logs: Record<string, unknown>[] }> {
  const registry = createRegistry();
  const logs: Record<string, unknown>[] = [];
  const worker = new TestAgentWorker({
    config: testConfig(config),
    logger: createLogger({
      level: 'debug',
      stream: { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) },
    }),
    registry,
    agent: createParrotAgent(),
    closeTimeoutMs: 1000,
    audioDir: await audioModulesDir(),
  });
  onTestFinished(() => worker.destroy());
  await worker.start();
  return { worker, registry, logs };
}

function create(worker: TestAgentWorker, client: string): Promise<Response> {
  // The proxy overwrites X-Forwarded-For with the one client address it resolved.
  return fetch(`${worker.url}/test-agent/sessions`, {
    method: 'POST',
    headers: { 'x-forwarded-for': client },
  });
}

describe('test-agent hardening', () => {
  it('rate-limits session creation per client address, not per worker', async () => {
    const { worker } = await startWorker({ sessionCreateRatePerMinute: 3 });
    for (let i = 0; i < 3; i++) expect((await create(worker, '127.0.0.2')).status).toBe(201);
    // The flooding client is limited…
    for (let i = 0; i < 5; i++) expect((await create(worker, '127.0.0.2')).status).toBe(429);
    // …everyone else is not.
    expect((await create(worker, '127.0.0.1')).status).toBe(201);
    expect((await create(worker, '198.51.100.7')).status).toBe(201);
  });

  it('closes a session that sends audio far faster than real time (1008)', async () => {
    const { worker, registry } = await startWorker({ maxBadMessages: 5 });
    const created = (await (await create(worker, '127.0.0.2')).json()) as CreatedSession;
    const ws = new WebSocket(`${worker.url.replace('http:', 'ws:')}${created.wsUrl}`);
    ws.on('error', () => undefined);
    onTestFinished(() => ws.terminate());
    await new Promise((resolve) => ws.once('open', resolve));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    // 20 s of audio at once: the first 5 s (the jitter allowance) pass, the rest are refused.
    const frame = pcm16ToBytes(new Int16Array(320));
    for (let i = 0; i < 1000 && ws.readyState === WebSocket.OPEN; i++) ws.send(frame);
    expect(await closed).toBe(1008);
    const metric = await registry.getSingleMetric('test_agent_errors_total')?.get();
    const tooFast = metric?.values.find((v) => v.labels.code === 'TEST_AGENT_ERR_TOO_FAST');
    expect(tooFast?.value).toBeGreaterThanOrEqual(5);
  });
});
