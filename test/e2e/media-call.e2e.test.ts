import { detectDtmf, normalizedCrossCorrelation } from '@callgate/audio';
import {
  firstSoundAfter,
  simulateCall,
  type CallSummary,
  type SimEvent,
} from '@callgate/simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryPoints, noise, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

// Calls through the real built stack: a proxy in front of two media workers (parrot agent),
// driven by the simulator exactly as Twilio and SansPBX would.

const RATE = 8000;
const CALL_TOKEN_SECRET = 'e2e-call-token-secret-0123456789';
const AUTH_TOKEN = 'e2e_auth_token_123';
const PUBLIC_URL = 'https://edge.example.com';

const spawned: SpawnedProcess[] = [];
let workers: SpawnedProcess[];
let proxy: SpawnedProcess;
let signedProxy: SpawnedProcess;

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
      spawn(name, entryPoints.media, { WORKER_ID: name, CALL_TOKEN_SECRET }),
    ),
  );
  const backends = workers.map((w) => `127.0.0.1:${w.port}`).join(',');
  [proxy, signedProxy] = await Promise.all([
    spawn('proxy', entryPoints.proxy, { ADMIN_PORT: '0', MEDIA_BACKENDS: backends }),
    spawn('signed-proxy', entryPoints.proxy, {
      ADMIN_PORT: '0',
      MEDIA_BACKENDS: backends,
      TWILIO_AUTH_TOKEN: AUTH_TOKEN,
      PUBLIC_URL,
      TWILIO_SIGNATURE_MODE: 'enforce',
    }),
  ]);
});

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
});

/** Utterances placed on a silent timeline. */
function timeline(totalMs: number, parts: Array<{ atMs: number; pcm: Int16Array }>): Int16Array {
  const out = new Int16Array((totalMs * RATE) / 1000);
  for (const p of parts) out.set(p.pcm, (p.atMs * RATE) / 1000);
  return out;
}

/** Correlation of a caller utterance with what the caller heard in its reply. */
function replyMatch(summary: CallSummary, index: number, utterance: Int16Array): number {
  const reply = summary.replies[index];
  expect(reply?.firstReplyMs, `reply ${index}`).toEqual(expect.any(Number));
  const from = Math.max(0, Math.round(((reply!.firstReplyMs! - 100) * RATE) / 1000));
  const heard = summary.replyAudio.subarray(from, from + utterance.length + 0.4 * RATE);
  return normalizedCrossCorrelation(utterance, heard, 0.3 * RATE).coefficient;
}

function twilioUrls(via: SpawnedProcess, callSid: string): { url: string; twimlUrl: string } {
  return {
    url: `ws://127.0.0.1:${via.port}/media-stream/${callSid}`,
    twimlUrl: `http://127.0.0.1:${via.port}/media-stream/twiml`,
  };
}

let sidCounter = 0;
function callSid(): string {
  sidCounter++;
  return `CA${String(Date.now()).padStart(16, '0')}${String(sidCounter).padStart(16, '0')}`;
}

async function metricValue(worker: SpawnedProcess, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('media calls through the proxy', () => {
  it('answers two utterances with two replies that sound like what was said', async () => {
    const u1 = noise(800, 1);
    const u2 = noise(800, 2);
    const sid = callSid();
    const summary = await simulateCall({
      ...twilioUrls(proxy, sid),
      callSid: sid,
      audio: timeline(3800, [
        { atMs: 0, pcm: u1 },
        { atMs: 3000, pcm: u2 },
      ]),
      segments: [
        { startMs: 0, endMs: 800 },
        { startMs: 3000, endMs: 3800 },
      ],
      tailMs: 2000,
    });
    // The TwiML webhook gave the call its token; the worker accepted it.
    expect(summary.customParameters.callToken).toMatch(/^v1\./);
    expect(summary.protocolErrors).toEqual([]);
    expect(summary.closedBy).toBe('caller');
    expect(summary.replies).toHaveLength(2);
    expect(replyMatch(summary, 0, u1)).toBeGreaterThan(0.8);
    expect(replyMatch(summary, 1, u2)).toBeGreaterThan(0.8);
    // Each reply is its own sentence, not the other one.
    expect(replyMatch(summary, 0, u2)).toBeLessThan(0.3);
    expect(summary.marksReceived).toBe(2);
    expect(summary.marksAcked).toBe(2);
    const worker = workers.find((w) =>
      w.logs.some((l) => l.msg === 'call started' && l.callSid === sid),
    );
    expect(worker).toBeDefined();
    await worker!.waitForLog((l) => l.msg === 'call ended' && l.callSid === sid);
  });

  it('clears the reply when the caller talks over it (barge-in)', async () => {
    const events: SimEvent[] = [];
    const sid = callSid();
    const summary = await simulateCall({
      ...twilioUrls(proxy, sid),
      callSid: sid,
      audio: timeline(3200, [
        { atMs: 0, pcm: noise(1500, 3) },
        { atMs: 2600, pcm: noise(600, 4) },
      ]),
      segments: [
        { startMs: 0, endMs: 1500 },
        { startMs: 2600, endMs: 3200 },
      ],
      tailMs: 2000,
      onEvent: (e) => events.push(e),
    });
    expect(summary.protocolErrors).toEqual([]);
    expect(summary.clears).toBeGreaterThanOrEqual(1);
    const clear = events.find((e) => e.type === 'clear');
    expect(clear).toBeDefined();
    expect(clear!.atMs).toBeGreaterThan(2600);
    expect(summary.replies[1]?.firstReplyMs).toEqual(expect.any(Number));
  });

  it('answers a DTMF digit with its tone and hangs up on #', async () => {
    const sid = callSid();
    const summary = await simulateCall({
      ...twilioUrls(proxy, sid),
      callSid: sid,
      dtmf: [
        { atMs: 200, digit: '5' },
        { atMs: 1200, digit: '#' },
      ],
      hangupAfterMs: 6000,
    });
    const start = firstSoundAfter(summary.replyAudio, RATE, 0);
    expect(start).toEqual(expect.any(Number));
    const from = Math.round((start! * RATE) / 1000);
    expect(detectDtmf(summary.replyAudio.subarray(from, from + 0.15 * RATE), RATE)).toBe('5');
    expect(summary.closedBy).toBe('server');
    expect(summary.closeCode).toBe(1000);
    expect(summary.durationMs).toBeLessThan(5000);
  });

  it('runs a SansPBX call on the bare /media-stream path', async () => {
    const u1 = noise(800, 5);
    const summary = await simulateCall({
      url: `ws://127.0.0.1:${proxy.port}/media-stream`,
      provider: 'sanspbx',
      audio: u1,
      segments: [{ startMs: 0, endMs: 800 }],
      tailMs: 2000,
    });
    expect(summary.protocolErrors).toEqual([]);
    expect(summary.closedBy).toBe('caller');
    expect(replyMatch(summary, 0, u1)).toBeGreaterThan(0.8);
  });

  it('hands a call to its newer stream on the same worker, never two agents at once', async () => {
    const sid = callSid();
    // The first stream stays up; the second opens once the first call has started on its worker.
    const first = simulateCall({ ...twilioUrls(proxy, sid), callSid: sid, hangupAfterMs: 20_000 });
    const owner = await Promise.race(
      workers.map((w) =>
        w.waitForLog((l) => l.msg === 'call started' && l.callSid === sid).then(() => w),
      ),
    );
    const second = await simulateCall({
      ...twilioUrls(proxy, sid),
      callSid: sid,
      dtmf: [{ atMs: 200, digit: '#' }],
      hangupAfterMs: 5000,
    });
    const replaced = await first;
    expect(replaced.closedBy).toBe('server');
    expect(replaced.closeCode).toBe(4409);
    expect(second.closeCode).toBe(1000);
    // Both streams reached the worker that had the call (the other one was idle).
    const started = (w: SpawnedProcess): number =>
      w.logs.filter((l) => l.msg === 'call started' && l.callSid === sid).length;
    expect(started(owner)).toBe(2);
    expect(workers.filter((w) => w !== owner).map(started)).toEqual([0]);
    await proxy.waitForLog((l) => l.msg === 'upgrade' && l.callAffinity === true);
  });

  it('never lets an upgrade with a bad signature reach a worker', async () => {
    const before = await Promise.all(workers.map((w) => metricValue(w, 'media_sessions_total')));
    const sid = callSid();
    const signatureUrl = `wss://edge.example.com/media-stream/${sid}`;
    await expect(
      simulateCall({
        url: `ws://127.0.0.1:${signedProxy.port}/media-stream/${sid}`,
        callSid: sid,
        authToken: 'not-the-auth-token',
        signatureUrl,
        hangupAfterMs: 1000,
      }),
    ).rejects.toMatchObject({ code: 'SIM_ERR_HANDSHAKE', status: 403 });
    const after = await Promise.all(workers.map((w) => metricValue(w, 'media_sessions_total')));
    expect(after).toEqual(before);
    for (const w of workers) expect(w.logs.some((l) => l.callSid === sid)).toBe(false);

    // The same call, correctly signed, goes through (and the worker checks its call token).
    const summary = await simulateCall({
      ...twilioUrls(signedProxy, sid),
      callSid: sid,
      authToken: AUTH_TOKEN,
      signatureUrl,
      dtmf: [{ atMs: 100, digit: '#' }],
      hangupAfterMs: 5000,
    });
    expect(summary.closeCode).toBe(1000);
    expect(summary.closedBy).toBe('server');
  });
});
