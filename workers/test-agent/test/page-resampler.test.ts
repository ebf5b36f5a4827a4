import { AudioError, createResampler, type PcmResampler } from '@callgate/audio';
import { describe, expect, it } from 'vitest';

// The page's worklets import @callgate/audio's `createResampler` (served by the worker as the
// built module `audio/halfband.js`) and feed it PCM16 converted from the AudioContext's floats;
// these tests run it the same way, on floats scaled to PCM16 and back.
class Resampler {
  readonly #inner: PcmResampler;
  constructor(fromRate: number, toRate: number) {
    this.#inner = createResampler(fromRate, toRate);
  }
  process(input: Float32Array): Float32Array {
    return toFloats(this.#inner.process(toPcm(input)));
  }
  flush(): Float32Array {
    return toFloats(this.#inner.flush());
  }
  reset(): void {
    this.#inner.reset();
  }
  get delaySamples(): number {
    return this.#inner.delaySamples;
  }
}

function toPcm(x: Float32Array): Int16Array {
  const out = new Int16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    out[i] = v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
  }
  return out;
}

function toFloats(pcm: Int16Array): Float32Array {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i]! / 32768;
  return out;
}

function sine(freq: number, rate: number, seconds: number, amplitude = 0.5): Float32Array {
  const out = new Float32Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i++)
    out[i] = amplitude * Math.sin((2 * Math.PI * freq * i) / rate);
  return out;
}

/** Runs `input` through in render-quantum blocks, as the capture worklet does. */
function run(resampler: Resampler, input: Float32Array, block = 128): Float32Array {
  const parts: Float32Array[] = [];
  for (let i = 0; i < input.length; i += block)
    parts.push(resampler.process(input.subarray(i, i + block)));
  parts.push(resampler.flush());
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Amplitude of the `freq` component of `x` (Goertzel over a Hann window). */
function amplitudeAt(x: Float32Array, freq: number, rate: number): number {
  const w = (2 * Math.PI * freq) / rate;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  let windowSum = 0;
  for (let i = 0; i < x.length; i++) {
    const hann = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (x.length - 1));
    windowSum += hann;
    const s0 = x[i]! * hann + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return (2 * Math.sqrt(Math.max(0, power))) / windowSum;
}

/** The steady part: without the filter's start-up and tail. */
function middle(x: Float32Array): Float32Array {
  return x.subarray(Math.floor(x.length * 0.2), Math.floor(x.length * 0.8));
}

describe("the page's resampler (@callgate/audio createResampler)", () => {
  it.each([
    [48000, 16000],
    [44100, 16000],
    [16000, 48000],
    [16000, 44100],
    [48000, 8000],
    [24000, 16000],
    [16000, 16000],
  ])('converts %i Hz to %i Hz: a 1 kHz tone keeps its level and the length scales', (from, to) => {
    const resampler = new Resampler(from, to);
    const out = run(resampler, sine(1000, from, 0.5));
    // flush() releases the filter's delay as well: the signal plus its group delay.
    expect(Math.abs(out.length - to * 0.5 - resampler.delaySamples)).toBeLessThanOrEqual(
      2 + Math.ceil(to / from),
    );
    expect(amplitudeAt(middle(out), 1000, to)).toBeCloseTo(0.5, 2);
  });

  it.each([
    ['12 kHz at 48 kHz → 16 kHz (would alias to 4 kHz)', 48000, 16000, 12000, 4000],
    ['10 kHz at 44.1 kHz → 16 kHz (would alias to 6 kHz)', 44100, 16000, 10000, 6000],
    ['5 kHz at 48 kHz → 8 kHz (would alias to 3 kHz)', 48000, 8000, 5000, 3000],
  ])('filters before decimating: %s', (_name, from, to, freq, alias) => {
    const out = run(new Resampler(from, to), sine(freq, from, 0.5));
    // Below -60 dB relative to the 0.5 input: nothing folds back into the speech band.
    expect(amplitudeAt(middle(out), alias, to)).toBeLessThan(0.5 * 1e-3);
  });

  it('does not image when upsampling: 6 kHz at 16 kHz → 48 kHz has no 10 kHz mirror', () => {
    const out = middle(run(new Resampler(16000, 48000), sine(6000, 16000, 0.5)));
    expect(amplitudeAt(out, 6000, 48000)).toBeCloseTo(0.5, 2);
    expect(amplitudeAt(out, 10000, 48000)).toBeLessThan(0.5 * 1e-3);
  });

  it.each([1, 37, 128, 1000])('gives the same samples whatever the block size (%i)', (block) => {
    const input = sine(440, 48000, 0.2);
    const whole = run(new Resampler(48000, 16000), input, input.length);
    const blocks = run(new Resampler(48000, 16000), input, block);
    expect(blocks.length).toBe(whole.length);
    let maxDiff = 0;
    for (let i = 0; i < whole.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(whole[i]! - blocks[i]!));
    expect(maxDiff).toBeLessThan(1e-6);
  });

  it('forgets its history on reset (after clear)', () => {
    const r = new Resampler(16000, 48000);
    r.process(sine(1000, 16000, 0.05, 0.9));
    r.reset();
    const out = r.process(new Float32Array(320));
    expect(out.length).toBeGreaterThan(0);
    expect(Math.max(...out.map(Math.abs))).toBe(0);
  });

  it('keeps a constant constant (unity gain at DC for every phase)', () => {
    const out = middle(run(new Resampler(44100, 16000), new Float32Array(44100).fill(0.25)));
    for (const v of out) expect(v).toBeCloseTo(0.25, 4);
  });

  it('rejects rates that are not positive integers', () => {
    expect(() => new Resampler(0, 16000)).toThrow(AudioError);
    expect(() => new Resampler(44100.5, 16000)).toThrow(AudioError);
  });
});
