import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Agent } from '@callgate/agent';
import { parseTestAgentServerMessage, type TestAgentServerMessage } from '@callgate/protocol';
import { createLogger, createRegistry } from '@callgate/runtime';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { createTestAgentMetrics } from '../src/metrics.js';
import { TestAgentSession, type SessionServer } from '../src/test-agent-session.js';

// A TestAgentSession on a real loopback socket, with a fake of our own SessionServer so the
// transport can be made to fail the way only a worker bug would.

interface Harness {
  client: WebSocket;
  messages: TestAgentServerMessage[];
  closed: Promise<{ code: number; reason: string }>;
  session: TestAgentSession;
  errors: string[];
  logs: Record<string, unknown>[];
  finished(reason: string): Promise<number>;
}

/** An agent that speaks as soon as the call starts, so the transport gets a frame at once. */
const speaker: Agent = {
  name: 'speaker',
  start(call) {
    call.say(new Int16Array(call.sampleRate / 10).fill(2000));
    return {};
  },
};

async function startSession(send: SessionServer['send']): Promise<Harness> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  );
  const registry = createRegistry();
  const metrics = createTestAgentMetrics(registry);
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    stream: { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const errors: string[] = [];
  const opened = new Promise<TestAgentSession>((resolve) => {
    wss.once('connection', (ws) => {
      ws.on('error', () => undefined);
      const session = new TestAgentSession({
        sessionId: 'session-0123456789abcdef',
        ws,
        server: { send, countError: (code) => errors.push(code) },
        agent: speaker,
        sampleRate: 16000,
        maxDurationSeconds: 60,
        maxBadMessages: 3,
        logger,
        metrics,
        closeTimeoutMs: 1000,
      });
      session.start();
      resolve(session);
    });
  });
  const { port } = wss.address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  client.on('error', () => undefined);
  onTestFinished(() => {
    client.terminate();
  });
  const messages: TestAgentServerMessage[] = [];
  client.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary) messages.push(parseTestAgentServerMessage(data.toString('utf8')));
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    client.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
  });
  const session = await opened;
  return {
    client,
    messages,
    closed,
    session,
    errors,
    logs,
    async finished(reason) {
      const metric = await registry.getSingleMetric('test_agent_sessions_finished_total')?.get();
      return metric?.values.find((v) => v.labels.reason === reason)?.value ?? 0;
    },
  };
}

describe('TestAgentSession', () => {
  it('closes the socket with 1011 when the Call ends on its own (a transport throw)', async () => {
    const h = await startSession((ws, data, options) => {
      if (options?.binary) throw new Error('transport broke');
      ws.send(data);
      return true;
    });
    // Without this close the page would sit on an open socket with no agent behind it.
    expect(await h.closed).toEqual({ code: 1011, reason: 'internal error' });
    await h.session.closed;
    expect(h.messages.at(-1)).toEqual({ type: 'hangup', reason: 'transport-error' });
    expect(h.errors).toContain('AGENT_ERR_TRANSPORT');
    expect(await h.finished('transport-error')).toBe(1);
    expect(h.logs.find((l) => l.msg === 'session ended')).toMatchObject({
      reason: 'transport-error',
      closeCode: 1011,
    });
  });

  it('terminates the socket (TEST_AGENT_ERR_CLOSE_FAILED) when even the hangup cannot be sent', async () => {
    const h = await startSession((ws, data, options) => {
      // Audio breaks the Call; then the session's own hangup message fails the same way.
      if (options?.binary || String(data).includes('"hangup"')) throw new Error('transport broke');
      ws.send(data);
      return true;
    });
    expect((await h.closed).code).toBe(1006);
    await h.session.closed;
    expect(h.errors).toContain('TEST_AGENT_ERR_CLOSE_FAILED');
    expect(h.logs.find((l) => l.msg === 'close failed, terminating')).toMatchObject({
      level: 'error',
      code: 'TEST_AGENT_ERR_CLOSE_FAILED',
    });
    expect(await h.finished('transport-error')).toBe(1);
  });
});
