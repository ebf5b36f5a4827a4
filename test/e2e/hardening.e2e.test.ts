import { once } from 'node:events';
import { request } from 'node:http';
import { simulateCall } from '@callgate/simulator';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { entryPoints, noise, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

// Issue 9 over real processes: a proxy in front of two media workers, 127.0.0.2 playing the
// attacker and 127.0.0.1 the real callers (Twilio).
const ATTACKER = '127.0.0.2';
const SILENCE = Buffer.alloc(160, 0xff).toString('base64');

const spawned: SpawnedProcess[] = [];
let workers: SpawnedProcess[];
let proxy: SpawnedProcess;

async function spawn(
  name: string,
  entry: string,
  env: Record<string, string>,
): Promise<SpawnedProcess> {
  const p = await spawnProcess(name, entry, { env: { LOG_LEVEL: 'info', ...env } });
  spawned.push(p);
  return p;
}

beforeAll(async () => {
  workers = await Promise.all(
    ['media-1', 'media-2'].map((name) =>
      spawn(name, entryPoints.media, {
        WORKER_ID: name,
        AGENT: 'echo',
        MAX_CALLS: '3',
        MAX_UNSTARTED_STREAMS: '4',
        START_TIMEOUT_MS: '60000',
        NO_MEDIA_TIMEOUT_MS: '1000',
        STUCK_READER_MS: '1500',
        // Long: the bounds above must hold without the heartbeat.
        HEARTBEAT_INTERVAL_MS: '600000',
        MAX_WEBHOOK_BYTES: '1024',
        MAX_BAD_MESSAGES: '10000',
      }),
    ),
  );
  proxy = await spawn('proxy', entryPoints.proxy, {
    ADMIN_PORT: '0',
    MEDIA_BACKENDS: workers.map((w) => `127.0.0.1:${w.port}`).join(','),
    FIRST_BYTE_TIMEOUT_MS: '300',
    HEALTH_CHECK_INTERVAL_MS: '500',
  });
}, 60_000);

afterAll(async () => {
  for (const w of workers ?? []) w.signal('SIGCONT');
  await Promise.all(spawned.map((p) => p.kill()));
});

let sidCounter = 0;
function newSids(): { callSid: string; streamSid: string } {
  sidCounter++;
  const n = `${String(Date.now()).padStart(16, '0')}${String(sidCounter).padStart(16, '0')}`;
  return { callSid: `CA${n}`, streamSid: `MZ${n}` };
}

function post(
  path: string,
  body: string,
): Promise<{ status: number; body: string; worker?: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `http://127.0.0.1:${proxy.port}${path}`,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': String(Buffer.byteLength(body)),
        },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** A hand-driven Twilio stream through the proxy. */
async function stream(
  sids: { callSid: string; streamSid: string },
  options: { localAddress?: string; start?: boolean } = {},
): Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/media-stream/${sids.callSid}`, {
    perMessageDeflate: false,
    localAddress: options.localAddress,
  });
  ws.on('error', () => undefined);
  onTestFinished(() => ws.terminate());
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  await once(ws, 'open');
  if (options.start !== false) {
    ws.send(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }));
    ws.send(
      JSON.stringify({
        event: 'start',
        sequenceNumber: '1',
        streamSid: sids.streamSid,
        start: {
          accountSid: 'AC00000000000000000000000000000000',
          streamSid: sids.streamSid,
          callSid: sids.callSid,
          tracks: ['inbound'],
          customParameters: {},
          mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
        },
      }),
    );
  }
  return { ws, closed };
}

function media(ws: WebSocket, streamSid: string, chunk: number): void {
  ws.send(
    JSON.stringify({
      event: 'media',
      sequenceNumber: String(chunk + 2),
      streamSid,
      media: {
        track: 'inbound',
        chunk: String(chunk),
        timestamp: String(chunk * 20),
        payload: SILENCE,
      },
    }),
  );
}

function allLogs(): Array<Record<string, unknown>> {
  return workers.flatMap((w) => w.logs);
}

describe('hardening over real processes', () => {
  it('a squatter from one address does not keep real calls out', async () => {
    // 30 sockets that never start, from the attacker's address: far more than the 6 call slots.
    const squat = await Promise.all(
      Array.from({ length: 30 }, () => stream(newSids(), { localAddress: ATTACKER, start: false })),
    );
    // Real calls from another address still go through, with replies.
    const summaries = await Promise.all(
      [1, 2, 3].map(() => {
        const sids = newSids();
        return simulateCall({
          url: `ws://127.0.0.1:${proxy.port}/media-stream/${sids.callSid}`,
          twimlUrl: `http://127.0.0.1:${proxy.port}/media-stream/twiml`,
          callSid: sids.callSid,
          audio: noise(600, 3),
          hangupAfterMs: 1500,
        });
      }),
    );
    for (const s of summaries) {
      expect(s.closedBy).toBe('caller');
      expect(s.audioFramesReceived).toBeGreaterThan(0);
    }
    // The squatter holds at most MAX_UNSTARTED_STREAMS sockets per worker.
    const open = squat.filter((s) => s.ws.readyState === WebSocket.OPEN).length;
    expect(open).toBeLessThanOrEqual(8);
    for (const s of squat) s.ws.terminate();
  }, 30_000);

  it('ends a started call that sends no media, with 1008 MEDIA_ERR_NO_MEDIA', async () => {
    const sids = newSids();
    const { closed } = await stream(sids);
    const t0 = Date.now();
    expect(await closed).toEqual({ code: 1008, reason: 'MEDIA_ERR_NO_MEDIA' });
    expect(Date.now() - t0).toBeLessThan(4000);
  }, 15_000);

  it('sheds a caller that stops reading within STUCK_READER_MS, heartbeat or not', async () => {
    const sids = newSids();
    const { ws } = await stream(sids);
    // Stops reading (the echo agent keeps sending audio and marks), keeps sending audio.
    ws.pause();
    let chunk = 0;
    const feed = setInterval(() => media(ws, sids.streamSid, chunk++), 20);
    onTestFinished(() => clearInterval(feed));
    const t0 = Date.now();
    // The decision: within STUCK_READER_MS of the first unechoed mark (the echo agent speaks
    // 1 s utterances), long before any heartbeat.
    const shed = await Promise.any(
      workers.map((w) =>
        w.waitForLog((l) => l.code === 'RUNTIME_ERR_SLOW_READER' && l.callSid === sids.callSid),
      ),
    );
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(shed).toMatchObject({ msg: 'slow reader, shedding session', stuckReaderMs: 1500 });
    // The call ends as `shed` (1013) once the close handshake is given up on (the caller does
    // not read it either): at most the worker's close timeout later.
    const ended = await Promise.any(
      workers.map((w) =>
        w.waitForLog((l) => l.msg === 'call ended' && l.callSid === sids.callSid, 15_000),
      ),
    );
    clearInterval(feed);
    expect(ended).toMatchObject({ reason: 'slow-reader', closeCode: 1013 });
    expect(Date.now() - t0).toBeLessThan(8000);
    const metrics = await Promise.all(
      workers.map(async (w) =>
        (await (await fetch(`http://127.0.0.1:${w.port}/metrics`)).text()).match(
          /^media_sessions_shed_total (\d+)/m,
        ),
      ),
    );
    expect(metrics.reduce((n, m) => n + Number(m?.[1] ?? 0), 0)).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it('a flood of unknown marks adds a bounded number of log lines', async () => {
    const sids = newSids();
    const { ws } = await stream(sids);
    let chunk = 0;
    const feed = setInterval(() => media(ws, sids.streamSid, chunk++), 20);
    onTestFinished(() => clearInterval(feed));
    await Promise.any(
      workers.map((w) =>
        w.waitForLog((l) => l.msg === 'call started' && l.callSid === sids.callSid),
      ),
    );
    for (let i = 0; i < 5000; i++) {
      ws.send(
        JSON.stringify({
          event: 'mark',
          sequenceNumber: '9',
          streamSid: sids.streamSid,
          mark: { name: `x${i}` },
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    clearInterval(feed);
    const lines = allLogs().filter(
      (l) => l.callSid === sids.callSid && l.code === 'MEDIA_ERR_UNKNOWN_MARK',
    );
    // 5000 bad messages: 5 lines per 10 s interval (the flood may straddle two), the rest counted
    // in a `log lines suppressed` line when the interval ends.
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.length).toBeLessThanOrEqual(10);
  }, 20_000);

  it('relays a worker’s own 413 to the caller unchanged', async () => {
    const res = await post('/media-stream/twiml', `CallSid=CA1&Pad=${'x'.repeat(40_000)}`);
    expect(res.status).toBe(413);
    expect(res.body).toContain('MEDIA_ERR_BODY_TOO_LARGE');
  });

  it('answers webhooks while a worker is SIGSTOPped', async () => {
    const frozen = workers[0]!;
    frozen.signal('SIGSTOP');
    try {
      const answers = await Promise.all(
        [1, 2, 3, 4].map(() => post('/media-stream/twiml', `CallSid=${newSids().callSid}`)),
      );
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
      expect(answers.every((a) => a.body.includes('<Stream'))).toBe(true);
    } finally {
      frozen.signal('SIGCONT');
    }
    await proxy.waitForLog(
      (l) => l.code === 'PROXY_ERR_FIRST_BYTE_TIMEOUT' || l.msg === 'health check failed',
      5000,
    );
  }, 20_000);
});
