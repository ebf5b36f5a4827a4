import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readWav } from '@callgate/audio';
import { simulateCall, type SimEvent } from '@callgate/simulator';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { entryPoints, noise, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

// Call recordings of a real media worker behind the real proxy: complete and playable after a
// normal end, still playable when the worker is SIGKILLed mid-call.

const RATE = 8000;
const spawned: SpawnedProcess[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.all(spawned.splice(0).map((p) => p.kill()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function stack(): Promise<{ worker: SpawnedProcess; proxy: SpawnedProcess; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'callgate-rec-'));
  dirs.push(dir);
  const worker = await spawnProcess('media', entryPoints.media, {
    env: { LOG_LEVEL: 'info', RECORDINGS_DIR: dir },
  });
  spawned.push(worker);
  const proxy = await spawnProcess('proxy', entryPoints.proxy, {
    env: { LOG_LEVEL: 'info', ADMIN_PORT: '0', MEDIA_BACKENDS: `127.0.0.1:${worker.port}` },
  });
  spawned.push(proxy);
  return { worker, proxy, dir };
}

function channelRms(samples: Int16Array, channel: 0 | 1): number {
  let sum = 0;
  for (let i = channel; i < samples.length; i += 2) sum += samples[i]! * samples[i]!;
  return Math.sqrt(sum / (samples.length / 2));
}

describe('call recordings', () => {
  it('are complete and playable after the call: stereo WAV of the call length plus a JSON summary', async () => {
    const { worker, proxy, dir } = await stack();
    const sid = 'CA0000000000000000000000000000e001';
    const summary = await simulateCall({
      url: `ws://127.0.0.1:${proxy.port}/media-stream/${sid}`,
      callSid: sid,
      audio: noise(800, 11),
      segments: [{ startMs: 0, endMs: 800 }],
      hangupAfterMs: 3000,
    });
    expect(summary.replies[0]?.firstReplyMs).toEqual(expect.any(Number));
    const ended = await worker.waitForLog((l) => l.msg === 'call ended' && l.callSid === sid);
    const streamSid = summary.streamSid;
    const base = join(dir, `${sid}-${streamSid}`);
    // The JSON summary is written last (after the WAV is closed), so once it is there both are.
    const json = await vi.waitFor(
      async () => JSON.parse(await readFile(`${base}.json`, 'utf8')) as Record<string, unknown>,
      {
        timeout: 5000,
        interval: 20,
      },
    );
    expect(json).toMatchObject({
      callSid: sid,
      streamSid,
      provider: 'twilio',
      reason: 'caller-hangup',
    });
    const wav = readWav(await readFile(`${base}.wav`));
    expect(wav).toMatchObject({ sampleRate: 8000, channels: 2 });
    const seconds = wav.samples.length / 2 / wav.sampleRate;
    expect(Math.abs(seconds * 1000 - Number(ended.durationMs))).toBeLessThan(250);
    expect(Math.abs(seconds * 1000 - summary.durationMs)).toBeLessThan(600);
    expect(channelRms(wav.samples, 0)).toBeGreaterThan(1000); // the caller spoke
    expect(channelRms(wav.samples, 1)).toBeGreaterThan(1000); // the parrot answered
    expect((await readdir(dir)).sort()).toEqual([
      `${sid}-${streamSid}.json`,
      `${sid}-${streamSid}.wav`,
    ]);
  });

  it('leave a WAV that a player accepts when the worker is SIGKILLed mid-call', async () => {
    const { worker, proxy, dir } = await stack();
    const sid = 'CA0000000000000000000000000000e002';
    let streamSid = '';
    const call = simulateCall({
      url: `ws://127.0.0.1:${proxy.port}/media-stream/${sid}`,
      callSid: sid,
      audio: noise(800, 12),
      segments: [{ startMs: 0, endMs: 800 }],
      hangupAfterMs: 20_000,
      onEvent: (e: SimEvent) => {
        if (e.type === 'open') streamSid = e.streamSid;
      },
    });
    await worker.waitForLog((l) => l.msg === 'call started' && l.callSid === sid);
    const path = join(dir, `${sid}-${streamSid}.wav`);
    // Wait until the header on disk covers at least a second of the call (the writer appends the
    // data first and patches the header after it, so the file's size runs ahead of what the
    // header claims), then kill without warning.
    await vi.waitFor(
      async () =>
        expect(readWav(await readFile(path)).samples.length / 2).toBeGreaterThanOrEqual(RATE),
      { timeout: 8000, interval: 50 },
    );
    worker.child.kill('SIGKILL');
    await worker.exited;
    const summary = await call;
    expect(summary.closedBy).toBe('server');
    const wav = readWav(await readFile(path));
    expect(wav).toMatchObject({ sampleRate: 8000, channels: 2 });
    expect(wav.samples.length / 2).toBeGreaterThanOrEqual(RATE);
    expect(channelRms(wav.samples, 0)).toBeGreaterThan(500);
    expect(await readdir(dir)).toEqual([`${sid}-${streamSid}.wav`]); // no summary: it never ended
  });
});
