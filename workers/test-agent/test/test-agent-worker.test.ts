import { EventEmitter } from 'node:events';
import {
  createParrotAgent,
  type Agent,
  type CallPacer,
  type PacerFactory,
  type PacerTick,
} from '@callgate/agent';
import { detectDtmf, pcm16FromBytes, pcm16ToBytes } from '@callgate/audio';
import {
  TestAgentCloseCode,
  parseTestAgentServerMessage,
  serializeTestAgentClientMessage,
  type TestAgentClientMessage,
  type TestAgentServerMessage,
} from '@callgate/protocol';
import { createLogger, createRegistry, type Registry } from '@callgate/runtime';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  TestAgentWorker,
  type CreatedSession,
  type TestAgentWorkerConfig,
  type TestAgentWorkerOptions,
} from '../src/test-agent-worker.js';
import { testConfig, audioModulesDir } from './helpers.js';

const RATE = 16000;
const FRAME_SAMPLES = 320;

interface Started {
  worker: TestAgentWorker;
  registry: Registry;
  logs: Record<string, unknown>[];
}

async function startWorker(
  config: Partial<TestAgentWorkerConfig> = {},
  options: Partial<Omit<TestAgentWorkerOptions, 'config'>> = {},
): Promise<Started> {
  const registry = createRegistry();
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'debug',
    stream: { write: (line: string) => logs.push(JSON.parse(line) as Record<string, unknown>) },
  });
  const worker = new TestAgentWorker({
    config: testConfig(config),
    logger,
    registry,
    agent: createParrotAgent(),
    closeTimeoutMs: 1000,
    audioDir: await audioModulesDir(),
    ...options,
  });
  onTestFinished(() => worker.destroy());
  await worker.start();
  return { worker, registry, logs };
}

async function createSession(
  worker: TestAgentWorker,
  headers: Record<string, string> = {},
): Promise<CreatedSession> {
  const res = await fetch(`${worker.url}/test-agent/sessions`, { method: 'POST', headers });
  expect(res.status).toBe(201);
  return (await res.json()) as CreatedSession;
}

function wsUrl(worker: TestAgentWorker, path: string): string {
  return `${worker.url.replace('http:', 'ws:')}${path}`;
}

/** Upgrades expected to be refused: the HTTP status and the error code of the JSON body. */
function refusedUpgrade(url: string): Promise<{ status: number; code: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('error', reject);
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('upgrade was accepted'));
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const parsed = JSON.parse(body) as { error: { code: string } };
        resolve({ status: res.statusCode ?? 0, code: parsed.error.code });
      });
    });
  });
}

/** A browser stand-in speaking the protocol over a real ws client. */
class Client extends EventEmitter {
  readonly ws: WebSocket;
  readonly messages: TestAgentServerMessage[] = [];
  readonly frames: Int16Array[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(url: string, headers: Record<string, string> = {}) {
    super();
    this.ws = new WebSocket(url, { headers });
    this.ws.on('error', (err) => this.emit('problem', err));
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        this.frames.push(pcm16FromBytes(new Uint8Array(data)).slice());
        this.emit('frame');
      } else {
        const msg = parseTestAgentServerMessage(data.toString('utf8'));
        this.messages.push(msg);
        this.emit('text', msg);
      }
    });
    this.closed = new Promise((resolve) => {
      this.ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    onTestFinished(() => {
      this.ws.terminate();
    });
  }

  static async connect(url: string, headers: Record<string, string> = {}): Promise<Client> {
    const client = new Client(url, headers);
    await client.next((m) => m.type === 'hello');
    return client;
  }

  send(msg: TestAgentClientMessage): void {
    this.ws.send(serializeTestAgentClientMessage(msg));
  }

  sendRaw(data: string | Buffer): void {
    this.ws.send(data);
  }

  /** The first message (already received or future) matching `pred`. */
  next(
    pred: (m: TestAgentServerMessage) => boolean,
    timeoutMs = 8000,
  ): Promise<TestAgentServerMessage> {
    const seen = this.messages.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('text', onText);
        reject(
          new Error(`no matching message in ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`),
        );
      }, timeoutMs);
      const onText = (m: TestAgentServerMessage): void => {
        if (!pred(m)) return;
        clearTimeout(timer);
        this.off('text', onText);
        resolve(m);
      };
      this.on('text', onText);
    });
  }
}

/** A pacer the test ticks by hand (the Call's `createPacer`), with the lateness it chooses. */
function manualPacer(): { factory: PacerFactory; tick(lateMs: number): void } {
  const pacers: { running: boolean; onTick: (t: PacerTick) => void }[] = [];
  const factory: PacerFactory = ({ onTick }) => {
    const p = { running: false, onTick };
    pacers.push(p);
    const pacer: CallPacer = {
      start: () => (p.running = true),
      stop: () => (p.running = false),
      get running() {
        return p.running;
      },
    };
    return pacer;
  };
  let tick = 0;
  return {
    factory,
    tick(lateMs) {
      for (const p of pacers) if (p.running) p.onTick({ tick: tick++, lateMs });
    },
  };
}

/** A voiced, syllable-like signal: harmonics of 140 Hz, amplitude-modulated at 4 Hz. */
function speechLike(ms: number, rate = RATE): Int16Array {
  const out = new Int16Array(Math.round((ms * rate) / 1000));
  for (let i = 0; i < out.length; i++) {
    const t = i / rate;
    let v = 0;
    for (let k = 1; k <= 8; k++) v += Math.sin(2 * Math.PI * 140 * k * t) / k;
    const envelope = 0.6 + 0.4 * Math.sin(2 * Math.PI * 4 * t);
    out[i] = Math.round(v * envelope * 6000);
  }
  return out;
}

/** Sends `pcm` as 20 ms binary frames. */
function sendAudio(client: Client, pcm: Int16Array): void {
  for (let i = 0; i < pcm.length; i += FRAME_SAMPLES) {
    client.sendRaw(pcm16ToBytes(pcm.subarray(i, i + FRAME_SAMPLES)));
  }
}

async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const value = metric?.values.find((v) =>
    Object.entries(labels).every(
      ([k, l]) => String((v.labels as Record<string, unknown>)[k]) === l,
    ),
  );
  return value?.value ?? 0;
}

describe('TestAgentWorker', () => {
  describe('upgrade', () => {
    it('opens a session with a fresh token and says hello with the audio format', async () => {
      const { worker } = await startWorker({ sessionMaxDurationSeconds: 42 });
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      expect(client.messages[0]).toEqual({
        type: 'hello',
        protocol: 1,
        sessionId: created.sessionId,
        agent: 'parrot',
        sampleRate: 16000,
        channels: 1,
        encoding: 'pcm16le',
        frameMs: 20,
        maxDurationSeconds: 42,
      });
      expect(worker.sessionCount).toBe(1);
    });

    it.each([
      [
        'no token',
        (c: CreatedSession) => `/test-agent/${c.sessionId}`,
        401,
        'TEST_AGENT_ERR_TOKEN_MISSING',
      ],
      [
        'a garbled token',
        (c: CreatedSession) => `/test-agent/${c.sessionId}?token=abc`,
        401,
        'TEST_AGENT_ERR_TOKEN_MALFORMED',
      ],
      [
        'a tampered token',
        (c: CreatedSession) => `/test-agent/${c.sessionId}?token=${c.token.slice(0, -2)}AA`,
        401,
        'TEST_AGENT_ERR_TOKEN_INVALID',
      ],
      [
        'the token of another session',
        (c: CreatedSession) =>
          `/test-agent/ZZZZZZZZZZZZZZZZZZZZZZ?token=${encodeURIComponent(c.token)}`,
        401,
        'TEST_AGENT_ERR_TOKEN_INVALID',
      ],
      [
        'a malformed session id',
        () => '/test-agent/not-an-id?token=x',
        404,
        'TEST_AGENT_ERR_BAD_SESSION_ID',
      ],
      [
        'a nested path',
        (c: CreatedSession) => `/test-agent/${c.sessionId}/x`,
        404,
        'TEST_AGENT_ERR_NOT_FOUND',
      ],
      ['the media path', () => '/media-stream', 404, 'TEST_AGENT_ERR_NOT_FOUND'],
    ])('refuses %s before the handshake', async (_name, path, status, code) => {
      const { worker, registry } = await startWorker();
      const created = await createSession(worker);
      expect(await refusedUpgrade(wsUrl(worker, path(created)))).toEqual({ status, code });
      expect(await metricValue(registry, 'test_agent_errors_total', { code })).toBe(1);
      expect(worker.sessionCount).toBe(0);
    });

    it('refuses an expired token with 401', async () => {
      const clock = { now: Date.now() };
      const { worker } = await startWorker(
        { sessionTokenTtlSeconds: 60 },
        { now: () => clock.now },
      );
      const created = await createSession(worker);
      clock.now += 61_000;
      expect(await refusedUpgrade(wsUrl(worker, created.wsUrl))).toEqual({
        status: 401,
        code: 'TEST_AGENT_ERR_TOKEN_EXPIRED',
      });
    });

    it('accepts a token issued by another worker with the same secret', async () => {
      const { worker: issuer } = await startWorker();
      const { worker } = await startWorker();
      const created = await createSession(issuer);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      expect(client.messages[0]).toMatchObject({ type: 'hello', sessionId: created.sessionId });
    });

    it('refuses a token issued with another secret', async () => {
      const { worker: issuer } = await startWorker({ secret: 'another-secret-of-32-characters!' });
      const { worker } = await startWorker();
      const created = await createSession(issuer);
      expect(await refusedUpgrade(wsUrl(worker, created.wsUrl))).toEqual({
        status: 401,
        code: 'TEST_AGENT_ERR_TOKEN_INVALID',
      });
    });

    it('refuses a second socket for a live session with 409 and keeps the first', async () => {
      const { worker } = await startWorker();
      const created = await createSession(worker);
      const first = await Client.connect(wsUrl(worker, created.wsUrl));
      expect(await refusedUpgrade(wsUrl(worker, created.wsUrl))).toEqual({
        status: 409,
        code: 'TEST_AGENT_ERR_SESSION_BUSY',
      });
      first.send({ type: 'dtmf', digit: '1' });
      await first.next((m) => m.type === 'event' && m.event === 'dtmf');
    });

    it('refuses a token reused after its session ended with 410', async () => {
      const { worker } = await startWorker();
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      client.send({ type: 'hangup' });
      expect(await client.closed).toEqual({ code: 1000, reason: 'caller hung up' });
      await expect.poll(() => worker.sessionCount).toBe(0);
      expect(await refusedUpgrade(wsUrl(worker, created.wsUrl))).toEqual({
        status: 410,
        code: 'TEST_AGENT_ERR_SESSION_ENDED',
      });
    });

    it('refuses upgrades over MAX_SESSIONS with 503', async () => {
      const { worker } = await startWorker({ maxSessions: 1 });
      const a = await createSession(worker);
      const b = await createSession(worker);
      await Client.connect(wsUrl(worker, a.wsUrl));
      expect(await refusedUpgrade(wsUrl(worker, b.wsUrl))).toEqual({
        status: 503,
        code: 'RUNTIME_ERR_TOO_MANY_SESSIONS',
      });
    });
  });

  describe('session', () => {
    it('runs the parrot: caller speech comes back as 20 ms binary frames, then a mark', async () => {
      const { worker, registry } = await startWorker();
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      sendAudio(client, speechLike(600));
      sendAudio(client, new Int16Array((RATE * 900) / 1000));

      const say = await client.next((m) => m.type === 'event' && m.event === 'say');
      expect(say).toMatchObject({ type: 'event', event: 'say' });
      if (say.type !== 'event' || say.event !== 'say') throw new Error('unreachable');
      expect(say.durationMs).toBeGreaterThanOrEqual(500);
      expect(say.durationMs).toBeLessThanOrEqual(1000);
      expect(say.tone).toBeUndefined();
      const mark = await client.next((m) => m.type === 'mark');
      if (mark.type !== 'mark') throw new Error('unreachable');
      expect(mark.name).toBe(say.utteranceId);
      // Every frame is exactly 20 ms at the session rate, and together they carry the reply.
      expect(client.frames.length).toBe(Math.ceil((say.durationMs * RATE) / 1000 / FRAME_SAMPLES));
      for (const frame of client.frames) expect(frame.length).toBe(FRAME_SAMPLES);
      const loudFrames = client.frames.filter((f) => f.some((s) => Math.abs(s) > 1000));
      expect(loudFrames.length).toBeGreaterThan(15);

      // The page acknowledges the mark once played; the Call counts it as played.
      client.send({ type: 'mark', name: mark.name });
      await expect
        .poll(() => metricValue(registry, 'test_agent_marks_acked_total', { outcome: 'played' }))
        .toBe(1);
      expect(await metricValue(registry, 'test_agent_audio_messages_out_total')).toBe(
        client.frames.length,
      );
    });

    it('answers a keypad digit with its tone, and reports both as events', async () => {
      const { worker } = await startWorker();
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      client.send({ type: 'dtmf', digit: '7' });
      expect(await client.next((m) => m.type === 'event' && m.event === 'dtmf')).toEqual({
        type: 'event',
        event: 'dtmf',
        digit: '7',
      });
      const say = await client.next((m) => m.type === 'event' && m.event === 'say');
      expect(say).toMatchObject({ tone: '7', durationMs: 200 });
      await client.next((m) => m.type === 'mark');
      const audio = new Int16Array(client.frames.length * FRAME_SAMPLES);
      client.frames.forEach((f, i) => audio.set(f, i * FRAME_SAMPLES));
      expect(detectDtmf(audio.subarray(0, (RATE * 200) / 1000), RATE)).toBe('7');
    });

    it('sends clear when the caller barges in over a reply', async () => {
      const { worker } = await startWorker();
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      sendAudio(client, speechLike(2000));
      sendAudio(client, new Int16Array((RATE * 800) / 1000));
      await client.next((m) => m.type === 'event' && m.event === 'say');
      await new Promise<void>((resolve) => client.once('frame', resolve));
      // Talk over the two-second reply while it plays.
      sendAudio(client, speechLike(300));
      await client.next((m) => m.type === 'clear');
      expect(client.messages.some((m) => m.type === 'mark')).toBe(false);
    });

    it('ends the session when the caller hangs up', async () => {
      const { worker, registry } = await startWorker();
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      client.send({ type: 'hangup' });
      expect(await client.next((m) => m.type === 'hangup')).toEqual({
        type: 'hangup',
        reason: 'caller-hangup',
      });
      expect(await client.closed).toEqual({
        code: TestAgentCloseCode.normal,
        reason: 'caller hung up',
      });
      await expect
        .poll(() =>
          metricValue(registry, 'test_agent_sessions_finished_total', { reason: 'caller-hangup' }),
        )
        .toBe(1);
    });

    it('closes with 1000 when the agent hangs up (parrot: #)', async () => {
      const { worker } = await startWorker();
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      client.send({ type: 'dtmf', digit: '#' });
      expect(await client.next((m) => m.type === 'hangup')).toEqual({
        type: 'hangup',
        reason: 'caller-pressed-hash',
      });
      expect(await client.closed).toEqual({ code: 1000, reason: 'agent hung up' });
    });

    it('closes with 1011 when the agent fails to start', async () => {
      const failing: Agent = {
        name: 'failing',
        start() {
          throw new Error('no model');
        },
      };
      const { worker } = await startWorker({}, { agent: failing });
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      expect(await client.next((m) => m.type === 'hangup')).toEqual({
        type: 'hangup',
        reason: 'agent-error',
      });
      expect(await client.closed).toEqual({
        code: TestAgentCloseCode.internalError,
        reason: 'agent failed',
      });
    });

    it('closes a session that reaches its maximum duration with 4008', async () => {
      const { worker, logs } = await startWorker({ sessionMaxDurationSeconds: 1 });
      const created = await createSession(worker);
      expect(created.maxDurationSeconds).toBe(1);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      expect(await client.next((m) => m.type === 'hangup')).toEqual({
        type: 'hangup',
        reason: 'max-duration',
      });
      expect(await client.closed).toEqual({
        code: TestAgentCloseCode.maxDuration,
        reason: 'session reached its maximum duration',
      });
      expect(logs.some((l) => l.code === 'TEST_AGENT_ERR_MAX_DURATION')).toBe(true);
    });

    it.each<[string, string | Buffer, string]>([
      ['invalid JSON', '{"type":', 'PROTO_ERR_INVALID_JSON'],
      ['an unknown type', '{"type":"AUDIO","audio":"AAAA"}', 'PROTO_ERR_UNKNOWN_EVENT'],
      ['a bad digit', '{"type":"dtmf","digit":"x"}', 'PROTO_ERR_INVALID_MESSAGE'],
      ['an odd-length audio frame', Buffer.alloc(641), 'PROTO_ERR_INVALID_MESSAGE'],
      ['an empty audio frame', Buffer.alloc(0), 'PROTO_ERR_INVALID_MESSAGE'],
    ])('answers %s with an error message and keeps the session', async (_name, data, code) => {
      const { worker, registry } = await startWorker();
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      client.ws.send(data, { binary: Buffer.isBuffer(data) });
      expect(await client.next((m) => m.type === 'error')).toMatchObject({ type: 'error', code });
      expect(await metricValue(registry, 'test_agent_errors_total', { code })).toBe(1);
      client.send({ type: 'dtmf', digit: '2' });
      await client.next((m) => m.type === 'event' && m.event === 'dtmf');
    });

    it('closes with 1008 once malformed messages pass the limit', async () => {
      const { worker } = await startWorker({ maxBadMessages: 2 });
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      for (let i = 0; i < 3; i++) client.sendRaw('nope');
      expect(await client.closed).toEqual({
        code: TestAgentCloseCode.policyViolation,
        reason: 'too many malformed messages',
      });
      const errors = client.messages
        .filter((m) => m.type === 'error')
        .map((m) => m.type === 'error' && m.code);
      expect(errors).toEqual([
        'PROTO_ERR_INVALID_JSON',
        'PROTO_ERR_INVALID_JSON',
        'PROTO_ERR_INVALID_JSON',
        'TEST_AGENT_ERR_TOO_MANY_BAD_MESSAGES',
      ]);
      expect(client.messages.at(-1)).toEqual({ type: 'hangup', reason: 'too-many-bad-messages' });
    });

    it('closes live sessions with 1012 on destroy (drain deadline)', async () => {
      const { worker } = await startWorker();
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      await worker.destroy();
      expect(await client.closed).toEqual({ code: 1012, reason: 'service restart' });
      expect(client.messages.at(-1)).toEqual({ type: 'hangup', reason: 'service-restart' });
    });

    it('lets live sessions finish while draining, and close() waits for them', async () => {
      const { worker } = await startWorker();
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      worker.beginDrain();
      const ready = await fetch(`${worker.url}/readyz`);
      expect(ready.status).toBe(503);
      const closing = worker.close();
      client.send({ type: 'dtmf', digit: '3' });
      await client.next((m) => m.type === 'event' && m.event === 'dtmf');
      client.send({ type: 'hangup' });
      await client.closed;
      await closing;
    });

    it('counts late frames and cleared mark acks while the session is still open', async () => {
      const pacer = manualPacer();
      const agent: Agent = {
        name: 'scripted',
        start: (call) => ({
          onDtmf(digit) {
            if (digit === '1') call.say(new Int16Array(FRAME_SAMPLES).fill(3000));
            if (digit === '2') call.clear();
          },
        }),
      };
      const { worker, registry } = await startWorker({}, { agent, createPacer: pacer.factory });
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      client.send({ type: 'dtmf', digit: '1' });
      await client.next((m) => m.type === 'event' && m.event === 'say');
      // One frame, 50 ms after its slot, and the utterance's mark right behind it.
      pacer.tick(50);
      const mark = await client.next((m) => m.type === 'mark');
      if (mark.type !== 'mark') throw new Error('unreachable');
      expect(await metricValue(registry, 'test_agent_late_frames_total')).toBe(1);

      // The agent clears before the page acknowledged the mark; the late ack counts as cleared.
      client.send({ type: 'dtmf', digit: '2' });
      await client.next((m) => m.type === 'clear');
      client.send({ type: 'mark', name: mark.name });
      await expect
        .poll(() => metricValue(registry, 'test_agent_marks_acked_total', { outcome: 'cleared' }))
        .toBe(1);
      expect(client.ws.readyState).toBe(WebSocket.OPEN);
      expect(await metricValue(registry, 'test_agent_late_frames_total')).toBe(1);

      // Ending the session adds nothing twice.
      client.send({ type: 'hangup' });
      await client.closed;
      await expect
        .poll(() =>
          metricValue(registry, 'test_agent_sessions_finished_total', { reason: 'caller-hangup' }),
        )
        .toBe(1);
      expect(await metricValue(registry, 'test_agent_late_frames_total')).toBe(1);
      expect(
        await metricValue(registry, 'test_agent_marks_acked_total', { outcome: 'cleared' }),
      ).toBe(1);
    });

    it("counts an agent's own hang-up reason as agent-hangup; the raw reason is logged", async () => {
      const agent: Agent = {
        name: 'chatty',
        start: (call) => ({
          onDtmf(digit) {
            call.hangup(`customer ${digit} wants to leave`);
          },
        }),
      };
      const { worker, registry, logs } = await startWorker({}, { agent });
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      client.send({ type: 'dtmf', digit: '9' });
      expect(await client.next((m) => m.type === 'hangup')).toEqual({
        type: 'hangup',
        reason: 'customer 9 wants to leave',
      });
      expect(await client.closed).toEqual({ code: 1000, reason: 'agent hung up' });
      await expect
        .poll(() =>
          metricValue(registry, 'test_agent_sessions_finished_total', { reason: 'agent-hangup' }),
        )
        .toBe(1);
      const metric = await registry.getSingleMetric('test_agent_sessions_finished_total')?.get();
      expect(metric?.values.map((v) => v.labels.reason)).toEqual(['agent-hangup']);
      expect(logs.find((l) => l.msg === 'session ended')).toMatchObject({
        reason: 'customer 9 wants to leave',
      });
    });

    it('logs the tunnelId and requestId the proxy sent', async () => {
      const { worker, logs } = await startWorker();
      const requestId = '0b7c2a34-1d1e-4a4e-9a51-5f2c6f0e9d11';
      const tunnelId = 'f3c1e2d4-5b6a-4c7d-8e9f-0a1b2c3d4e5f';
      const created = await createSession(worker, { 'X-Request-Id': requestId });
      expect(logs.find((l) => l.msg === 'session created')).toMatchObject({
        sessionId: created.sessionId,
        requestId,
      });
      const client = await Client.connect(wsUrl(worker, created.wsUrl), {
        'X-Tunnel-Id': tunnelId,
      });
      client.send({ type: 'hangup' });
      await client.closed;
      await vi.waitFor(() => expect(logs.some((l) => l.msg === 'session ended')).toBe(true));
      for (const msg of ['session started', 'session ended']) {
        expect(logs.find((l) => l.msg === msg)).toMatchObject({
          sessionId: created.sessionId,
          tunnelId,
        });
      }
      // No `service` of its own: the process's logger (main.ts) sets one for every line.
      expect(logs.every((l) => !('service' in l))).toBe(true);
    });
  });

  describe('drain', () => {
    it('keeps creating sessions and accepting their sockets during the accept grace', async () => {
      const { worker } = await startWorker({ acceptGraceMs: 60_000 });
      worker.beginDrain();
      expect(worker.isDraining).toBe(true);
      expect(worker.isAccepting).toBe(true);
      expect((await fetch(`${worker.url}/readyz`)).status).toBe(503);
      const created = await createSession(worker);
      const client = await Client.connect(wsUrl(worker, created.wsUrl));
      client.send({ type: 'dtmf', digit: '3' });
      await client.next((m) => m.type === 'event' && m.event === 'dtmf');
    });

    it('refuses new sessions and upgrades with 503 once the accept grace is over', async () => {
      const { worker } = await startWorker({ acceptGraceMs: 50 });
      const early = await createSession(worker);
      worker.beginDrain();
      await vi.waitFor(() => expect(worker.isAccepting).toBe(false));
      const res = await fetch(`${worker.url}/test-agent/sessions`, { method: 'POST' });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: { code: 'TEST_AGENT_ERR_DRAINING' } });
      expect(await refusedUpgrade(wsUrl(worker, early.wsUrl))).toEqual({
        status: 503,
        code: 'RUNTIME_ERR_DRAINING',
      });
      await worker.close();
    });
  });
});
