import { detectDtmf, normalizedCrossCorrelation, tone } from '@callgate/audio';
import { describe, expect, it } from 'vitest';
import { createParrotAgent } from '../src/parrot.js';
import { concat, feed, makeCall, noise, silence, speechLike } from './helpers.js';

async function parrotCall(transportRate = 8000) {
  const test = makeCall(createParrotAgent(), { transportRate, echoMarks: true });
  const says: Array<{ id: string; samples: Int16Array }> = [];
  test.call.on('say', (id, samples) => says.push({ id, samples }));
  await test.call.start();
  return { ...test, says };
}

/** Best normalized correlation of a reply with what the caller said. */
function similarity(input: Int16Array, reply: Int16Array, rate: number): number {
  return normalizedCrossCorrelation(input, reply, rate / 4).coefficient;
}

describe('createParrotAgent', () => {
  it.each([8000, 16000])('says one utterance back as it was heard (%i Hz)', async (rate) => {
    const { call, transport, pacer, says } = await parrotCall(rate);
    expect(call.agentSampleRate).toBe(rate);
    const utterance = speechLike(1000, rate, -20, 11);
    feed(call, concat([silence(300, rate), utterance, silence(1000, rate)]));
    expect(says).toHaveLength(1);
    pacer().drain();
    expect(transport.marks).toEqual([says[0]!.id]);
    expect(call.stats.marksPlayed).toBe(1);
    const reply = transport.audio();
    // About the utterance plus ~100 ms of pre-roll and tail, not the whole second of silence.
    expect(reply.length / rate).toBeGreaterThan(1.0);
    expect(reply.length / rate).toBeLessThan(1.4);
    expect(similarity(utterance, reply, rate)).toBeGreaterThan(0.9);
  });

  it('says back a tone burst that starts on the first frame', async () => {
    const { call, transport, pacer, says } = await parrotCall();
    const burst = tone([440], 1000, 8000, 0.4);
    feed(call, concat([burst, silence(1000, 8000)]));
    expect(says).toHaveLength(1);
    pacer().drain();
    expect(similarity(burst, transport.audio(), 8000)).toBeGreaterThan(0.9);
  });

  it('answers two utterances with two replies', async () => {
    const { call, transport, pacer, says } = await parrotCall();
    const first = speechLike(800, 8000, -20, 21);
    const second = tone([660], 600, 8000, 0.3);
    feed(call, concat([silence(200, 8000), first, silence(1000, 8000)]));
    pacer().drain();
    feed(call, concat([second, silence(1000, 8000)]));
    pacer().drain();
    expect(says.map((s) => s.id)).toEqual(['CA1-u1', 'CA1-u2']);
    expect(transport.marks).toEqual(['CA1-u1', 'CA1-u2']);
    expect(transport.count('clear')).toBe(0);
    expect(similarity(first, says[0]!.samples, 8000)).toBeGreaterThan(0.9);
    expect(similarity(second, says[1]!.samples, 8000)).toBeGreaterThan(0.9);
  });

  it('clears its reply at once when the caller talks over it, and answers the new utterance', async () => {
    const { call, transport, pacer, says } = await parrotCall();
    feed(call, concat([speechLike(1000, 8000, -20, 31), silence(1000, 8000)]));
    pacer().tick(10);
    expect(call.isSpeaking).toBe(true);
    const interruption = speechLike(800, 8000, -20, 32);
    feed(call, interruption.subarray(0, 800)); // the first 100 ms: speech has started
    expect(transport.count('clear')).toBe(1);
    expect(call.isSpeaking).toBe(false);
    expect(call.stats.clears).toBe(1);
    feed(call, concat([interruption.subarray(800), silence(1000, 8000)]));
    pacer().drain();
    expect(says).toHaveLength(2);
    // The first reply's mark never went out; the second one played.
    expect(transport.marks).toEqual([says[1]!.id]);
    expect(similarity(interruption, says[1]!.samples, 8000)).toBeGreaterThan(0.9);
  });

  it.each([
    ['digital silence', silence(5000, 8000)],
    ['comfort noise', noise(5000, 8000, -60, 41)],
  ])('does not take %s for speech', async (_label, pcm) => {
    const { call, says } = await parrotCall();
    feed(call, pcm);
    expect(says).toHaveLength(0);
  });

  it('keeps quiet while hearing silence during and after its own reply', async () => {
    const { call, pacer, says } = await parrotCall();
    feed(call, concat([speechLike(600, 8000, -20, 51), silence(1000, 8000)]));
    while (pacer().tick(1) === 1) feed(call, noise(20, 8000, -62, 52));
    feed(call, noise(3000, 8000, -62, 53));
    expect(says).toHaveLength(1);
    expect(call.stats.clears).toBe(0);
  });

  it('ignores an utterance shorter than 200 ms', async () => {
    const { call, says } = await parrotCall();
    feed(call, concat([silence(200, 8000), tone([500], 120, 8000, 0.4), silence(1000, 8000)]));
    expect(says).toHaveLength(0);
  });

  it('replies after 15 s of non-stop talking', async () => {
    const { call, says } = await parrotCall();
    feed(call, speechLike(15_500, 8000, -20, 61));
    expect(says).toHaveLength(1);
    expect(says[0]!.samples.length / 8000).toBeGreaterThan(14.5);
  });

  it.each(['5', '0', '*'])('answers DTMF %s with its tone', async (digit) => {
    const { call, transport, pacer, says } = await parrotCall();
    call.receiveDtmf(digit);
    expect(says).toHaveLength(1);
    pacer().drain();
    expect(detectDtmf(transport.audio(), 8000)).toBe(digit);
  });

  it('hangs up when the caller presses #', async () => {
    const { call, transport } = await parrotCall();
    call.receiveDtmf('#');
    expect(transport.log).toEqual([{ type: 'hangup', reason: 'caller-pressed-hash' }]);
    expect(call.endReason).toBe('caller-pressed-hash');
  });
});
