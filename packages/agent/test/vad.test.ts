import { tone } from '@callgate/audio';
import { describe, expect, it } from 'vitest';
import { EnergyVad, SILENCE_DBFS, frameDbfs } from '../src/vad.js';
import type { VadOptions } from '../src/vad.js';
import { chunks, concat, noise, silence, speechLike } from './helpers.js';

const RATE = 8000;
const FRAME = 160;

/** Runs a signal through a VAD in 20 ms frames; returns the events with the index of their frame. */
function run(pcm: Int16Array, options: Partial<VadOptions> = {}): string[] {
  const vad = new EnergyVad({ sampleRate: RATE, ...options });
  const events: string[] = [];
  chunks(pcm, FRAME).forEach((frame, i) => {
    const event = vad.process(frame);
    if (!event) return;
    if (event.type === 'start') events.push(`start@${i}`);
    else if (event.type === 'end') events.push(`end(${event.reason},${event.speechMs})@${i}`);
    else events.push(`discard(${event.speechMs})@${i}`);
  });
  return events;
}

const toneMs = (ms: number, dbfsLevel = -12): Int16Array =>
  tone([440], ms, RATE, Math.SQRT2 * 10 ** (dbfsLevel / 20));

describe('frameDbfs', () => {
  it.each([
    ['digital silence', new Int16Array(160), -100],
    ['full-scale square', new Int16Array(160).fill(-32768), 0],
    ['-20 dBFS sine', tone([1000], 20, RATE, 0.1 * Math.SQRT2), -20],
  ])('%s', (_label, frame, expected) => {
    expect(frameDbfs(frame)).toBeCloseTo(expected, 0);
  });
});

describe('EnergyVad', () => {
  it.each<[string, Int16Array, Partial<VadOptions>, string[]]>([
    ['silence', silence(3000, RATE), {}, []],
    ['comfort noise below -45 dBFS', noise(5000, RATE, -55), {}, []],
    [
      'a 1 s tone after silence',
      concat([silence(500, RATE), toneMs(1000), silence(1000, RATE)]),
      {},
      // Voiced from frame 25: start after 3 frames, end 35 frames after the last voiced one.
      ['start@27', 'end(silence,1000)@109'],
    ],
    [
      'a tone from the very first frame',
      concat([toneMs(1000), silence(1000, RATE)]),
      {},
      ['start@2', 'end(silence,1000)@84'],
    ],
    [
      'a 100 ms click',
      concat([silence(300, RATE), toneMs(100), silence(1000, RATE)]),
      {},
      ['start@17', 'discard(100)@54'],
    ],
    [
      'a tone too quiet for the absolute gate',
      concat([silence(300, RATE), toneMs(1000, -50), silence(1000, RATE)]),
      {},
      [],
    ],
    [
      'two bursts 1 s apart are two utterances',
      concat([toneMs(400), silence(1000, RATE), toneMs(400), silence(1000, RATE)]),
      {},
      ['start@2', 'end(silence,400)@54', 'start@72', 'end(silence,400)@124'],
    ],
    [
      'two bursts 300 ms apart are one utterance',
      concat([toneMs(400), silence(300, RATE), toneMs(400), silence(1000, RATE)]),
      {},
      ['start@2', 'end(silence,1100)@89'],
    ],
    [
      'a tone longer than maxSpeechMs is cut and goes on',
      concat([toneMs(1500), silence(1000, RATE)]),
      { maxSpeechMs: 1200 },
      ['start@2', 'end(max-length,1200)@59', 'start@62', 'end(silence,300)@109'],
    ],
    [
      'a shorter endSilenceMs ends sooner',
      concat([toneMs(500), silence(1000, RATE)]),
      { endSilenceMs: 300 },
      ['start@2', 'end(silence,500)@39'],
    ],
  ])('%s', (_label, pcm, options, expected) => {
    expect(run(pcm, options)).toEqual(expected);
  });

  it('ignores steady noise once its floor is learned', () => {
    const vad = new EnergyVad({ sampleRate: RATE });
    const background = noise(8000, RATE, -30, 3);
    const events: number[] = [];
    chunks(background, FRAME).forEach((frame, i) => {
      if (vad.process(frame)?.type === 'start') events.push(i);
    });
    // A noise that is there from the first frame counts as speech only until the 3 s floor
    // window has filled with it; after that it is background.
    expect(events.every((i) => i < 150)).toBe(true);
    expect(vad.isSpeech).toBe(false);
    expect(vad.noiseFloorDbfs).toBeGreaterThan(-33);
    expect(vad.noiseFloorDbfs).toBeLessThan(-29);
  });

  it.each([
    ['over digital silence', silence(500, RATE), -20],
    ['over -55 dBFS line noise', noise(500, RATE, -55, 5), -20],
    // A background there from the first frame is heard as speech until the floor window has
    // filled with it (see above), so only what follows the 4.5 s lead counts here.
    ['over a learned -40 dBFS background', noise(4500, RATE, -40, 5), -20],
  ])('hears speech-like modulated noise %s as one utterance', (_label, lead, level) => {
    const speech = speechLike(1500, RATE, level);
    const isNoisy = lead.length > 8000;
    const tailNoise = isNoisy ? noise(1500, RATE, -40, 6) : silence(1500, RATE);
    const leadFrames = lead.length / FRAME;
    const events = run(concat([lead, speech, tailNoise])).filter(
      (e) => Number(e.split('@')[1]) >= leadFrames,
    );
    const starts = events.filter((e) => e.startsWith('start'));
    const ends = events.filter((e) => e.startsWith('end(silence'));
    expect(starts).toHaveLength(1);
    expect(ends).toHaveLength(1);
    const startFrame = Number(starts[0]!.split('@')[1]);
    expect(startFrame).toBeGreaterThanOrEqual(leadFrames);
    expect(startFrame).toBeLessThan(leadFrames + 10);
    const speechMs = Number(/end\(silence,(\d+)\)/.exec(ends[0]!)![1]);
    expect(speechMs).toBeGreaterThan(1100);
    expect(speechMs).toBeLessThanOrEqual(1500);
  });
});

describe('EnergyVad noise floor (kept incrementally)', () => {
  it('equals the minimum over the window after every frame, on random levels', () => {
    let seed = 99;
    const random = (): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 2 ** 32;
    };
    const vad = new EnergyVad({ sampleRate: 8000, floorWindowMs: 200 });
    const window: number[] = Array.from({ length: 10 }, () => SILENCE_DBFS);
    for (let i = 0; i < 3000; i++) {
      // Runs of silence, repeated levels and random noise, so ties and evictions of the minimum occur.
      const kind = random();
      const amp = kind < 0.3 ? 0 : kind < 0.5 ? 1000 : Math.floor(random() * 20000);
      const frame = new Int16Array(160).fill(amp);
      vad.process(frame);
      window.shift();
      window.push(vad.levelDbfs);
      expect(vad.noiseFloorDbfs).toBe(Math.min(...window));
    }
  });
});
