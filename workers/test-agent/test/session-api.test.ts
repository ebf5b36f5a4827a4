import { request } from 'node:http';
import { createParrotAgent } from '@callgate/agent';
import { createRegistry, silentLogger, type Registry } from '@callgate/runtime';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { SessionTokens } from '../src/session-token.js';
import {
  TestAgentWorker,
  type CreatedSession,
  type TestAgentWorkerConfig,
  type TestAgentWorkerOptions,
} from '../src/test-agent-worker.js';
import { SECRET, testConfig, audioModulesDir } from './helpers.js';

const API_KEY = 'key-for-tests-0123';

async function startWorker(
  config: Partial<TestAgentWorkerConfig> = {},
  options: Partial<Omit<TestAgentWorkerOptions, 'config'>> = {},
): Promise<{ worker: TestAgentWorker; registry: Registry }> {
  const registry = createRegistry();
  const worker = new TestAgentWorker({
    config: testConfig(config),
    logger: silentLogger,
    registry,
    agent: createParrotAgent(),
    audioDir: await audioModulesDir(),
    ...options,
  });
  onTestFinished(() => worker.destroy());
  await worker.start();
  return { worker, registry };
}

function post(worker: TestAgentWorker, init: RequestInit = {}): Promise<Response> {
  return fetch(`${worker.url}/test-agent/sessions`, { method: 'POST', ...init });
}

async function errorOf(res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code;
}

describe('POST /test-agent/sessions', () => {
  it('issues a session id, a token bound to it, the socket path, the expiry and the limit', async () => {
    const before = Date.now();
    const { worker } = await startWorker({
      sessionTokenTtlSeconds: 90,
      sessionMaxDurationSeconds: 240,
    });
    const res = await post(worker);
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const body = (await res.json()) as CreatedSession;
    expect(Object.keys(body).sort()).toEqual(
      ['expiresAt', 'maxDurationSeconds', 'sessionId', 'token', 'wsUrl'].sort(),
    );
    expect(body.sessionId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(body.wsUrl).toBe(
      `/test-agent/${body.sessionId}?token=${encodeURIComponent(body.token)}`,
    );
    expect(body.maxDurationSeconds).toBe(240);
    const expiresAt = Date.parse(body.expiresAt);
    expect(expiresAt).toBeGreaterThanOrEqual(before + 90_000);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 91_000);
    // The token verifies for this session with the shared secret, and only for it.
    const tokens = new SessionTokens({ secret: Buffer.from(SECRET), ttlSeconds: 90 });
    expect(tokens.verify(body.sessionId, body.token)).toEqual({ ok: true, expiresAtMs: expiresAt });
    expect(tokens.verify('ZZZZZZZZZZZZZZZZZZZZZZ', body.token).ok).toBe(false);
  });

  it('issues a different session each time', async () => {
    const { worker } = await startWorker();
    const a = (await (await post(worker)).json()) as CreatedSession;
    const b = (await (await post(worker)).json()) as CreatedSession;
    expect(a.sessionId).not.toBe(b.sessionId);
    expect(a.token).not.toBe(b.token);
  });

  describe('with TEST_AGENT_API_KEY', () => {
    it.each([
      ['no Authorization header', undefined],
      ['a wrong key', `Bearer wrong-key-0123456`],
      ['the key without the Bearer scheme', API_KEY],
      ['Basic auth', `Basic ${Buffer.from(`x:${API_KEY}`).toString('base64')}`],
      ['a key with a suffix', `Bearer ${API_KEY}x`],
    ])('answers 401 to %s', async (_name, authorization) => {
      const { worker, registry } = await startWorker({ apiKey: API_KEY });
      const res = await post(worker, authorization ? { headers: { authorization } } : {});
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await errorOf(res)).toBe('TEST_AGENT_ERR_UNAUTHORIZED');
      const errors = await registry.getSingleMetric('test_agent_errors_total')?.get();
      expect(
        errors?.values.find((v) => v.labels.code === 'TEST_AGENT_ERR_UNAUTHORIZED')?.value,
      ).toBe(1);
    });

    it.each([`Bearer ${API_KEY}`, `bearer ${API_KEY}`, `Bearer  ${API_KEY}`])(
      'issues a session for %j',
      async (authorization) => {
        const { worker } = await startWorker({ apiKey: API_KEY });
        expect((await post(worker, { headers: { authorization } })).status).toBe(201);
      },
    );

    it('does not ask for the key on the socket: the session token is enough', async () => {
      const { worker } = await startWorker({ apiKey: API_KEY });
      const res = await post(worker, { headers: { authorization: `Bearer ${API_KEY}` } });
      const { wsUrl } = (await res.json()) as CreatedSession;
      const ws = new WebSocket(`${worker.url.replace('http:', 'ws:')}${wsUrl}`);
      onTestFinished(() => ws.terminate());
      await new Promise<void>((resolve, reject) => {
        ws.once('message', () => resolve());
        ws.on('error', reject);
      });
    });
  });

  it.each(['GET', 'PUT', 'DELETE'])('answers %s with 405 and Allow: POST', async (method) => {
    const { worker } = await startWorker();
    const res = await fetch(`${worker.url}/test-agent/sessions`, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect(await errorOf(res)).toBe('TEST_AGENT_ERR_METHOD_NOT_ALLOWED');
  });

  it('accepts a small body and refuses a large one with 413', async () => {
    const { worker } = await startWorker();
    expect((await post(worker, { body: '{}' })).status).toBe(201);
    const res = await post(worker, { body: 'x'.repeat(4096) });
    expect(res.status).toBe(413);
    expect(await errorOf(res)).toBe('TEST_AGENT_ERR_BODY_TOO_LARGE');
  });

  it('refuses a large chunked body with 413 too', async () => {
    const { worker } = await startWorker();
    const { port } = worker.address();
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/test-agent/sessions',
      });
      req.on('error', reject);
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      // No Content-Length: Node sends it chunked.
      for (let i = 0; i < 4; i++) req.write('y'.repeat(1000));
      req.end();
    });
    expect(status).toBe(413);
  });

  it('limits the creation rate with 429 and Retry-After, and refills over time', async () => {
    const clock = { now: Date.now() };
    const { worker } = await startWorker(
      { sessionCreateRatePerMinute: 3 },
      { now: () => clock.now },
    );
    for (let i = 0; i < 3; i++) expect((await post(worker)).status).toBe(201);
    const limited = await post(worker);
    expect(limited.status).toBe(429);
    expect(await errorOf(limited)).toBe('TEST_AGENT_ERR_RATE_LIMITED');
    expect(Number(limited.headers.get('retry-after'))).toBe(20);
    clock.now += 20_000;
    expect((await post(worker)).status).toBe(201);
    expect((await post(worker)).status).toBe(429);
  });

  it('answers 503 when every session slot is taken', async () => {
    const { worker } = await startWorker({ maxSessions: 1 });
    const { wsUrl } = (await (await post(worker)).json()) as CreatedSession;
    const ws = new WebSocket(`${worker.url.replace('http:', 'ws:')}${wsUrl}`);
    onTestFinished(() => ws.terminate());
    await new Promise<void>((resolve, reject) => {
      ws.once('message', () => resolve());
      ws.on('error', reject);
    });
    const res = await post(worker);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await errorOf(res)).toBe('TEST_AGENT_ERR_AT_CAPACITY');
  });

  it('answers 503 while draining', async () => {
    const { worker, registry } = await startWorker();
    worker.beginDrain();
    const res = await post(worker);
    expect(res.status).toBe(503);
    expect(await errorOf(res)).toBe('TEST_AGENT_ERR_DRAINING');
    const requests = await registry.getSingleMetric('test_agent_session_requests_total')?.get();
    expect(requests?.values.find((v) => v.labels.status === '503')?.value).toBe(1);
  });
});
