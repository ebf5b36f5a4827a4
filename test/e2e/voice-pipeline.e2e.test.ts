import { firstSoundAfter, simulateCall, type SimEvent } from '@callgate/simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryPoints, noise, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

// examples/agents/voice-pipeline (streaming STT → model → TTS with scripted stand-ins) in a real
// media worker, called by the simulator: it greets, answers a sentence in pieces, stops at once
// when the caller talks over it (barge-in), answers again, and learns from marks what was heard.

const RATE = 8000;
let worker: SpawnedProcess;

beforeAll(async () => {
  worker = await spawnProcess('media', entryPoints.media, {
    env: { LOG_LEVEL: 'debug', AGENT_MODULE: 'examples/agents/voice-pipeline/agent.js' },
  });
});

afterAll(async () => {
  await worker?.kill();
});

function timeline(totalMs: number, parts: Array<{ atMs: number; pcm: Int16Array }>): Int16Array {
  const out = new Int16Array((totalMs * RATE) / 1000);
  for (const p of parts) out.set(p.pcm, (p.atMs * RATE) / 1000);
  return out;
}

describe('voice-pipeline example agent', () => {
  it('streams partial replies, stops on barge-in, and hears its marks', async () => {
    const sid = `CA${'0'.repeat(31)}9`;
    const events: SimEvent[] = [];
    // The greeting (~2 s) is heard in full; sentence 1 at 4.5 s; the caller talks over its long
    // answer at 7.5 s; sentence 2 (the barge-in) gets a short answer, heard in full.
    const summary = await simulateCall({
      url: `ws://127.0.0.1:${worker.port}/media-stream/${sid}`,
      callSid: sid,
      audio: timeline(8300, [
        { atMs: 4500, pcm: noise(800, 21) },
        { atMs: 7500, pcm: noise(800, 22) },
      ]),
      segments: [
        { startMs: 4500, endMs: 5300 },
        { startMs: 7500, endMs: 8300 },
      ],
      tailMs: 6000,
      onEvent: (e) => events.push(e),
    });
    expect(summary.protocolErrors).toEqual([]);
    const logs = worker.logs.filter((l) => l.callSid === sid);
    const byMsg = (msg: string) => logs.filter((l) => l.msg === msg);

    // Partial replies: every reply went out as several say(..., { final: false }) pieces of one
    // utterance (the model and TTS stream faster than real time, so the long answer was all
    // queued before the caller cut in), and the transcripts came as partials before each final.
    const spoken = byMsg('reply spoken');
    expect(spoken.map((l) => l.turn)).toEqual([1, 2, 3]);
    for (const l of spoken) expect(Number(l.pieces)).toBeGreaterThanOrEqual(3);
    expect(byMsg('partial transcript').length).toBeGreaterThanOrEqual(2);
    expect(byMsg('final transcript').map((l) => l.text)).toEqual([
      'hello who am I talking to',
      'what can you do for me',
    ]);

    // Barge-in: the caller's second sentence cleared the long answer within 300 ms of its start
    // (60 ms of voice make speech; the rest is a loaded machine's margin),
    // and the caller heard nothing more until the next answer.
    const clear = events.find((e) => e.type === 'clear');
    expect(clear?.atMs).toBeGreaterThan(7500);
    expect(clear!.atMs).toBeLessThan(7800);
    expect(summary.clears).toBe(1);
    expect(byMsg('barge-in')).toEqual([expect.objectContaining({ turn: 2 })]);
    expect(firstSoundAfter(summary.replyAudio, RATE, clear!.atMs + 100)).toBeGreaterThan(8300);

    // Marks: the greeting's and the last answer's were played, echoed and reported to the agent
    // (onPlayed); the cleared answer's mark was still queued behind its audio, so it never went
    // out and the agent never heard "played" for it.
    const [greeting, cut, last] = spoken.map((l) => l.utteranceId);
    const marks = events.filter((e) => e.type === 'mark');
    expect(marks.map((m) => [m.name, m.cleared])).toEqual([
      [greeting, false],
      [last, false],
    ]);
    const heard = byMsg('reply heard').map((l) => l.utteranceId);
    expect(heard).toEqual([greeting, last]);
    expect(heard).not.toContain(cut);
    await worker.waitForLog((l) => l.msg === 'voice-pipeline call ended' && l.repliesHeard === 2);
  });
});
