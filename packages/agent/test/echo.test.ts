import { describe, expect, it } from 'vitest';
import { createEchoAgent } from '../src/echo.js';
import { concat, feed, makeCall, silence, speechLike } from './helpers.js';

/** Marks interleaved with frames: how many frames went out before each mark. */
function framesBeforeMarks(log: ReturnType<typeof makeCall>['transport']['log']): number[] {
  const out: number[] = [];
  let frames = 0;
  for (const entry of log) {
    if (entry.type === 'audio') frames++;
    if (entry.type === 'mark') out.push(frames);
  }
  return out;
}

describe('createEchoAgent', () => {
  it('loops every caller frame straight back, unchanged', async () => {
    const { call, transport, pacer } = makeCall(createEchoAgent(), { echoMarks: true });
    await call.start();
    const input = concat([speechLike(2500, 8000, -20, 3), silence(500, 8000)]);
    // Like a live call: each 20 ms of caller audio, then one tick of the outbound pacer.
    for (let i = 0; i < input.length; i += 160) {
      call.receiveAudio(input.subarray(i, i + 160));
      pacer().tick();
    }
    pacer().drain();
    expect(Array.from(transport.audio())).toEqual(Array.from(input));
    expect(call.stats.framesOut).toBe(150);
    expect(call.stats.droppedMs).toBe(0);
  });

  it('closes an utterance every second of audio', async () => {
    const { call, transport, pacer } = makeCall(createEchoAgent(), { echoMarks: true });
    await call.start();
    feed(call, speechLike(3000, 8000, -20, 4));
    pacer().drain();
    expect(framesBeforeMarks(transport.log)).toEqual([50, 100, 150]);
    expect(transport.marks).toEqual(['CA1-u1', 'CA1-u2', 'CA1-u3']);
    expect(call.stats.marksPlayed).toBe(3);
  });

  it('closes the utterance early when the caller goes quiet', async () => {
    const { call, transport, pacer } = makeCall(createEchoAgent(), { echoMarks: true });
    await call.start();
    feed(call, concat([speechLike(500, 8000, -20, 5), silence(1500, 8000)]));
    pacer().drain();
    const marks = framesBeforeMarks(transport.log);
    // Speech for 25 frames, quiet for 300 ms: the first mark comes well before a full second.
    expect(marks[0]).toBeGreaterThan(25);
    expect(marks[0]).toBeLessThan(50);
    // Then it loops the silence back in whole seconds again.
    expect(marks[1]! - marks[0]!).toBe(50);
  });
});
