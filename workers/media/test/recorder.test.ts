import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readWav, tone } from '@callgate/audio';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { CallRecorder, recordingBaseName } from '../src/index.js';
import { TONE_FRAME, startTwilioCall, startWorker, twilio } from './helpers.js';

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'media-rec-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Left (caller) and right (agent) channels of an interleaved stereo buffer. */
function split(samples: Int16Array): { left: Int16Array; right: Int16Array } {
  const n = samples.length / 2;
  const left = new Int16Array(n);
  const right = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    left[i] = samples[2 * i]!;
    right[i] = samples[2 * i + 1]!;
  }
  return { left, right };
}

const nonZero = (a: Int16Array): number => a.reduce((n, s) => n + (s !== 0 ? 1 : 0), 0);

describe('CallRecorder', () => {
  it('puts caller frames by timestamp and agent frames by send time on one stereo timeline', async () => {
    const dir = await tempDir();
    let now = 1000;
    const rec = CallRecorder.start({
      dir,
      callSid: 'CA1',
      streamSid: 'MZ1',
      sampleRate: 8000,
      clock: () => now,
      lookbackMs: 200,
      chunkMs: 100,
    });
    const frame = tone([440], 20, 8000, 0.25); // 160 samples, never zero throughout
    // Caller: 0–100 ms, then a hole, then 200–300 ms (frames sent out of order at the end).
    for (let ts = 0; ts < 100; ts += 20) rec.writeCaller(frame, ts);
    now += 300;
    for (let ts = 220; ts < 300; ts += 20) rec.writeCaller(frame, ts);
    rec.writeCaller(frame, 200);
    // Agent: five paced frames from 400 ms, one of them late, still contiguous.
    now = 1400;
    for (let i = 0; i < 5; i++) {
      now += i === 2 ? 30 : 20;
      rec.writeAgent(frame);
    }
    now = 2000;
    await rec.close({ callSid: 'CA1', reason: 'caller-hangup' });

    const wav = readWav(await readFile(rec.wavPath));
    expect(wav).toMatchObject({ sampleRate: 8000, channels: 2 });
    const { left, right } = split(wav.samples);
    expect(left.length).toBe(8000); // 1 s: from start to close
    expect(nonZero(left.subarray(0, 800))).toBeGreaterThan(780); // 0–100 ms
    expect(nonZero(left.subarray(800, 1600))).toBe(0); // the hole is silence
    expect(nonZero(left.subarray(1600, 2400))).toBeGreaterThan(780); // 200–300 ms
    expect(nonZero(left.subarray(2400))).toBe(0);
    const agentStart = 3360; // 420 ms: the first frame's send time
    expect(nonZero(right.subarray(0, agentStart))).toBe(0);
    expect(nonZero(right.subarray(agentStart, agentStart + 800))).toBeGreaterThan(780);
    expect(nonZero(right.subarray(agentStart + 800))).toBe(0);
    expect(rec.lateSamples).toBe(0);

    const summary = JSON.parse(await readFile(rec.jsonPath, 'utf8')) as Record<string, unknown>;
    expect(summary).toMatchObject({
      callSid: 'CA1',
      reason: 'caller-hangup',
      recording: {
        wav: rec.wavPath,
        sampleRate: 8000,
        channels: ['caller', 'agent'],
        lateSamples: 0,
      },
    });
  });

  it('keeps agent audio sent ahead in place, and erases the part a clear dropped', async () => {
    const dir = await tempDir();
    let now = 1000;
    const rec = CallRecorder.start({
      dir,
      callSid: 'CA2',
      streamSid: 'MZ2',
      sampleRate: 8000,
      clock: () => now,
      lookbackMs: 200,
      chunkMs: 100,
    });
    const frame = tone([440], 20, 8000, 0.25);
    // At 100 ms the playback lead sends six frames at once (100–220 ms), then one per 20 ms.
    now = 1100;
    for (let i = 0; i < 6; i++) rec.writeAgent(frame);
    now = 1120;
    rec.writeAgent(frame); // 220–240 ms
    // Barge-in at 150 ms: the caller's side drops 150–240 ms, never heard.
    now = 1150;
    rec.agentCleared();
    // The next reply starts at 400 ms, at its own send time.
    now = 1400;
    rec.writeAgent(frame);
    now = 2000;
    await rec.close({ callSid: 'CA2', reason: 'caller-hangup' });

    const { right } = split(readWav(await readFile(rec.wavPath)).samples);
    expect(nonZero(right.subarray(0, 800))).toBe(0);
    expect(nonZero(right.subarray(800, 1200))).toBeGreaterThan(390); // 100–150 ms: heard
    expect(nonZero(right.subarray(1200, 3200))).toBe(0); // 150–400 ms: cleared, then silence
    expect(nonZero(right.subarray(3200, 3360))).toBeGreaterThan(150); // the next reply
    expect(nonZero(right.subarray(3360))).toBe(0);
  });

  it('leaves a valid stereo WAV on disk while the call is still going (never closed)', async () => {
    const dir = await tempDir();
    let now = 0;
    const rec = CallRecorder.start({
      dir,
      callSid: 'CA2',
      streamSid: 'MZ2',
      sampleRate: 8000,
      clock: () => now,
      lookbackMs: 100,
      chunkMs: 100,
      flushIntervalMs: 10,
    });
    onTestFinished(() => rec.close({}));
    const frame = tone([440], 20, 8000, 0.25);
    for (let ts = 0; ts < 3000; ts += 20) {
      now = ts;
      rec.writeCaller(frame, ts);
    }
    // Poll the file as a crash would leave it: never read past what the header claims (the data
    // lands before the header patch that covers it, so wait on the header, not the file size).
    await vi.waitFor(async () =>
      expect(readWav(await readFile(rec.wavPath)).samples.length / 2).toBeGreaterThanOrEqual(8000),
    );
    const wav = readWav(await readFile(rec.wavPath));
    expect(wav).toMatchObject({ sampleRate: 8000, channels: 2 });
    expect(wav.samples.length % 2).toBe(0);
    const { left } = split(wav.samples);
    expect(left.length).toBeGreaterThanOrEqual(8000);
    expect(nonZero(left)).toBeGreaterThan(left.length * 0.95);
  });

  it('keeps a forged far-future timestamp from growing the file faster than real time', async () => {
    const dir = await tempDir();
    let now = 0;
    const rec = CallRecorder.start({
      dir,
      callSid: 'CA3',
      streamSid: 'MZ3',
      sampleRate: 8000,
      clock: () => now,
    });
    rec.writeCaller(tone([440], 20, 8000, 0.25), 1e12);
    now = 100;
    await rec.close({});
    const wav = readWav(await readFile(rec.wavPath));
    expect(wav.samples.length / 2).toBeLessThanOrEqual(8000 * 2.2);
  });

  it('places a resumed segment by its first timestamp and names the file by the segment', async () => {
    const dir = await tempDir();
    let now = 0;
    const rec = CallRecorder.start({
      dir,
      callSid: 'CA5',
      streamSid: 'MZ5',
      segment: 'r1-20250102T030405678Z',
      rebaseTimestamps: true,
      sampleRate: 8000,
      clock: () => now,
    });
    expect(rec.wavPath).toBe(join(dir, 'CA5-MZ5-r1-20250102T030405678Z.wav'));
    expect(rec.callerTimestampOffsetMs).toBeUndefined();
    now = 100; // the call is 100 s old: its timestamps count from its first stream
    rec.writeCaller(tone([440], 20, 8000, 0.25), 100_000);
    now = 120;
    rec.writeCaller(tone([440], 20, 8000, 0.25), 100_020);
    now = 300;
    rec.writeCaller(tone([440], 20, 8000, 0.25), 100_200); // after a jump
    now = 400;
    await rec.close({});
    expect(rec.callerTimestampOffsetMs).toBe(99_900);
    const { left } = split(readWav(await readFile(rec.wavPath)).samples);
    expect(left.length).toBe(3200); // 400 ms, not 100 s
    expect(nonZero(left.subarray(0, 800))).toBe(0);
    expect(nonZero(left.subarray(800, 1120))).toBeGreaterThan(300);
    expect(nonZero(left.subarray(1120, 2400))).toBe(0);
    expect(nonZero(left.subarray(2400, 2560))).toBeGreaterThan(150);
    expect(JSON.parse(await readFile(rec.jsonPath, 'utf8'))).toMatchObject({
      recording: { wav: rec.wavPath },
    });
  });

  it.each([
    { callSid: 'CA1', streamSid: 'MZ1', base: 'CA1-MZ1' },
    { callSid: '../../etc/passwd', streamSid: 'MZ1', base: '______etc_passwd-MZ1' },
    { callSid: 'a b\u0000c', streamSid: '', base: 'a_b_c-unknown' },
    { callSid: 'x'.repeat(100), streamSid: 'MZ', base: `${'x'.repeat(64)}-MZ` },
  ])('names $callSid / $streamSid as $base', ({ callSid, streamSid, base }) => {
    expect(recordingBaseName(callSid, streamSid)).toBe(base);
  });

  it('adds a sanitized segment to the name of a resumed stream', () => {
    expect(recordingBaseName('CA1', 'MZ1', 'r2-20250102T030405678Z')).toBe(
      'CA1-MZ1-r2-20250102T030405678Z',
    );
    expect(recordingBaseName('CA1', 'MZ1', '../x')).toBe('CA1-MZ1-___x');
  });

  it('reports a recording it cannot write once, and still resolves close()', async () => {
    const dir = join(await tempDir(), 'missing', 'dir');
    const errors: Error[] = [];
    const rec = CallRecorder.start({
      dir,
      callSid: 'CA4',
      streamSid: 'MZ4',
      sampleRate: 8000,
      onError: (err) => errors.push(err),
    });
    rec.writeCaller(tone([440], 20, 8000, 0.25), 0);
    await rec.close({});
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'AUDIO_ERR_IO' });
  });
});

describe('recording a call through the worker', () => {
  it('writes <callSid>-<streamSid>.wav (stereo, playable) and a JSON summary at the end', async () => {
    const dir = await tempDir();
    const h = await startWorker({ recordingsDir: dir });
    const { client, sids } = await startTwilioCall(h);
    for (let i = 1; i <= 10; i++) client.send(twilio.media(sids.streamSid, i, TONE_FRAME));
    client.send(twilio.dtmf(sids.streamSid, '1'));
    await client.next((m) => m.event === 'mark');
    client.send(twilio.stop(sids));
    await client.closed;
    await h.worker.close(); // resolves once every session, recording included, is done
    expect((await readdir(dir)).sort()).toEqual([
      `${sids.callSid}-${sids.streamSid}.json`,
      `${sids.callSid}-${sids.streamSid}.wav`,
    ]);
    const wav = readWav(await readFile(join(dir, `${sids.callSid}-${sids.streamSid}.wav`)));
    expect(wav).toMatchObject({ sampleRate: 8000, channels: 2 });
    const { left, right } = split(wav.samples);
    expect(nonZero(left)).toBeGreaterThan(1500); // 200 ms of caller tone
    expect(nonZero(right)).toBeGreaterThan(700); // 100 ms of agent reply
    const summary = JSON.parse(
      await readFile(join(dir, `${sids.callSid}-${sids.streamSid}.json`), 'utf8'),
    ) as Record<string, unknown>;
    expect(summary).toMatchObject({
      callSid: sids.callSid,
      streamSid: sids.streamSid,
      provider: 'twilio',
      workerId: 'test-worker',
      reason: 'caller-hangup',
      stats: { audioMessagesIn: 10, framesOut: 5, marksSent: 1 },
    });
    expect(typeof summary.startedAt).toBe('string');
    expect(typeof summary.endedAt).toBe('string');
  });
});
