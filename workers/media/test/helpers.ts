import { request } from 'node:http';
import type { Agent, AgentCall, AgentSession } from '@callgate/agent';
import { mulawEncode, tone } from '@callgate/audio';
import { encodeBase64 } from '@callgate/protocol';
import { createLogger } from '@callgate/runtime';
import { onTestFinished, vi } from 'vitest';
import { WebSocket, type RawData } from 'ws';
import { MediaWorker, type MediaWorkerConfig } from '../src/index.js';

export type LogLine = Record<string, unknown> & { msg: string; level: string };

export const BASE_CONFIG: MediaWorkerConfig = {
  host: '127.0.0.1',
  port: 0,
  workerId: 'test-worker',
  publicUrl: undefined,
  callTokenSecret: undefined,
  callTokenTtlSeconds: 600,
  twilioAuthToken: undefined,
  recordingsDir: undefined,
  maxCalls: 10,
  acceptGraceMs: 0,
  sansPbxEnabled: true,
  sansPbxSampleRate: 8000,
  heartbeatIntervalMs: 15_000,
  maxBufferedBytes: 1_048_576,
  startTimeoutMs: 5000,
  maxBadMessages: 3,
  playbackLeadMs: 100,
  maxWebhookBytes: 65_536,
  maxUnstartedStreams: 32,
  noMediaTimeoutMs: 5000,
  stuckReaderMs: 5000,
  sansPbxToken: undefined,
  streamReconnectLimit: 3,
  streamStableMs: 30_000,
};

export interface WorkerHarness {
  worker: MediaWorker;
  /** `http://127.0.0.1:port` */
  url: string;
  /** `ws://127.0.0.1:port` */
  wsUrl: string;
  logs: LogLine[];
  /** Value of one series (labels must match exactly those given); 0 when absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** A real MediaWorker on 127.0.0.1:0 with a capturing logger; destroyed at the end of the test. */
export async function startWorker(
  overrides: Partial<MediaWorkerConfig> = {},
  agent: Agent = scriptAgent().agent,
): Promise<WorkerHarness> {
  const logs: LogLine[] = [];
  const logger = createLogger({
    level: 'debug',
    stream: { write: (text: string) => logs.push(JSON.parse(text) as LogLine) },
  });
  const worker = new MediaWorker({ config: { ...BASE_CONFIG, ...overrides }, logger, agent });
  onTestFinished(() => worker.destroy());
  await worker.start();
  const url = worker.url;
  return {
    worker,
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    logs,
    metric: async (name, labels = {}) => {
      const metric = worker.registry.getSingleMetric(name);
      if (!metric) throw new Error(`no metric ${name}`);
      const { values } = await metric.get();
      const wanted = Object.entries(labels);
      const hit = values.find(
        (v) =>
          Object.keys(v.labels).length === wanted.length &&
          wanted.every(([k, val]) => String(v.labels[k]) === val),
      );
      return hit?.value ?? 0;
    },
  };
}

/** A ws client that queues every message, so none is missed between awaits. */
export class TestClient {
  readonly ws: WebSocket;
  readonly messages: Array<Record<string, unknown>> = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<{
    pred: (m: Record<string, unknown>) => boolean;
    resolve: (m: Record<string, unknown>) => void;
  }> = [];

  private constructor(ws: WebSocket) {
    this.ws = ws;
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });
    ws.on('message', (data: RawData) => {
      const msg = JSON.parse(String(data)) as Record<string, unknown>;
      this.messages.push(msg);
      for (const w of [...this.#waiters]) {
        if (w.pred(msg)) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(msg);
        }
      }
    });
  }

  /** Connects; rejects with `upgrade refused with <status>` when the handshake is refused. */
  static async connect(url: string, headers: Record<string, string> = {}): Promise<TestClient> {
    const ws = new WebSocket(url, { perMessageDeflate: false, headers });
    ws.on('error', () => undefined);
    onTestFinished(() => {
      ws.terminate();
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        reject(new Error(`upgrade refused with ${res.statusCode}`));
        res.resume();
      });
      ws.once('error', reject);
    });
    return new TestClient(ws);
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  /** The first message (already received or future) matching `pred`. */
  next(pred: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    const seen = this.messages.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.#waiters.push({ pred, resolve }));
  }

  count(event: string): number {
    return this.messages.filter((m) => m.event === event).length;
  }
}

let sidCounter = 0;
export function newSids(): { callSid: string; streamSid: string } {
  sidCounter++;
  const n = String(sidCounter).padStart(32, '0');
  return { callSid: `CA${n}`, streamSid: `MZ${n}` };
}

/**
 * Twilio's inbound messages, with every field a real bidirectional Media Stream sends (the worker's
 * parser is strict: a missing or extra field is a bad message).
 */
export const twilio = {
  connected: () => ({ event: 'connected', protocol: 'Call', version: '1.0.0' }),
  start: (
    sids: { callSid: string; streamSid: string },
    customParameters: Record<string, string> = {},
    mediaFormat = { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
  ) => ({
    event: 'start',
    sequenceNumber: '1',
    streamSid: sids.streamSid,
    start: {
      accountSid: 'AC00000000000000000000000000000000',
      streamSid: sids.streamSid,
      callSid: sids.callSid,
      tracks: ['inbound'],
      customParameters,
      mediaFormat,
    },
  }),
  media: (streamSid: string, chunk: number, payload = SILENCE_FRAME, timestampMs = chunk * 20) => ({
    event: 'media',
    sequenceNumber: String(chunk + 1),
    streamSid,
    media: { track: 'inbound', chunk: String(chunk), timestamp: String(timestampMs), payload },
  }),
  dtmf: (streamSid: string, digit: string) => ({
    event: 'dtmf',
    sequenceNumber: '99',
    streamSid,
    dtmf: { track: 'inbound_track', digit },
  }),
  mark: (streamSid: string, name: string) => ({
    event: 'mark',
    sequenceNumber: '98',
    streamSid,
    mark: { name },
  }),
  stop: (sids: { callSid: string; streamSid: string }) => ({
    event: 'stop',
    sequenceNumber: '100',
    streamSid: sids.streamSid,
    stop: { accountSid: 'AC00000000000000000000000000000000', callSid: sids.callSid },
  }),
};

/** 20 ms of μ-law silence, base64. */
export const SILENCE_FRAME = encodeBase64(new Uint8Array(160).fill(0xff));
/** 20 ms of a 440 Hz tone, μ-law base64. */
export const TONE_FRAME = encodeBase64(mulawEncode(tone([440], 20, 8000, 0.25)));

export interface ScriptAgent {
  agent: Agent;
  /** `start:<callId>` and `end:<callId>:<reason>` in the order they happened. */
  events: string[];
  calls: AgentCall[];
}

/**
 * A fake agent driven by DTMF: `1` says 100 ms of tone, `2` says 2 s, `*` clears, `#` hangs up,
 * `!` throws. Every caller frame is counted in `frames`.
 */
export function scriptAgent(): ScriptAgent & { frames: Map<string, number> } {
  const events: string[] = [];
  const calls: AgentCall[] = [];
  const frames = new Map<string, number>();
  const agent: Agent = {
    name: 'script',
    start(call: AgentCall): AgentSession {
      const id = call.info.callId;
      events.push(`start:${id}`);
      calls.push(call);
      return {
        onAudio() {
          frames.set(id, (frames.get(id) ?? 0) + 1);
        },
        onDtmf(digit) {
          if (digit === '1') call.say(tone([440], 100, call.sampleRate, 0.25));
          else if (digit === '2') call.say(tone([440], 2000, call.sampleRate, 0.25));
          else if (digit === '*') call.clear();
          else if (digit === '#') call.hangup('caller pressed #');
          else if (digit === '!') throw new Error('scripted failure');
        },
        onEnd(reason) {
          events.push(`end:${id}:${reason}`);
        },
      };
    },
  };
  return { agent, events, calls, frames };
}

export interface HttpReply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request on its own connection. */
export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<HttpReply> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A started Twilio call on `worker`: connected + start sent, the session is live when it resolves. */
export async function startTwilioCall(
  h: WorkerHarness,
  options: {
    customParameters?: Record<string, string>;
    path?: string;
    sids?: { callSid: string; streamSid: string };
  } = {},
): Promise<{ client: TestClient; sids: { callSid: string; streamSid: string } }> {
  const sids = options.sids ?? newSids();
  const client = await TestClient.connect(
    `${h.wsUrl}${options.path ?? `/media-stream/${sids.callSid}`}`,
  );
  client.send(twilio.connected());
  client.send(twilio.start(sids, options.customParameters ?? {}));
  await waitForLog(h, (l) => l.msg === 'call started' && l.callSid === sids.callSid);
  return { client, sids };
}

/** Resolves once a log line matching `pred` has been written (polls the captured lines). */
export function waitForLog(h: WorkerHarness, pred: (l: LogLine) => boolean): Promise<LogLine> {
  return vi.waitFor(
    () => {
      const line = h.logs.find(pred);
      if (!line) throw new Error('no matching log line yet');
      return line;
    },
    { timeout: 5000, interval: 5 },
  );
}
