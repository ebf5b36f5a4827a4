import { describe, expect, it } from 'vitest';

// The page's resampler is a plain browser module (public/resampler.js) shared by both
// AudioWorklets; it has no browser dependencies, so it is tested here directly.
interface PageResampler {
  process(input: Float32Array): Float32Array;
  flush(): Float32Array;
  reset(): void;
  readonly latency: number;
}
type PageResamplerClass = new (fromRate: number, toRate: number) => PageResampler;
const modulePath = new URL('../public/resampler.js', import.meta.url).href;
const { Resampler } = (await import(modulePath)) as { Resampler: PageResamplerClass };

function sine(freq: number, rate: number, seconds: number, amplitude = 0.5): Float32Array {
  const out = new Float32Array(Math.round(rate * seconds));
  for (let i = 0; i < out.length; i++)
    out[i] = amplitude * Math.sin((2 * Math.PI * freq * i) / rate);
  return out;
}

/** Runs `input` through in render-quantum blocks, as the capture worklet does. */
function run(resampler: PageResampler, input: Float32Array, block = 128): Float32Array {
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

describe('page Resampler (public/resampler.js)', () => {
  it.each([
    [48000, 16000],
    [44100, 16000],
    [16000, 48000],
    [16000, 44100],
    [48000, 8000],
    [24000, 16000],
    [16000, 16000],
  ])('converts %i Hz to %i Hz: a 1 kHz tone keeps its level and the length scales', (from, to) => {
    const out = run(new Resampler(from, to), sine(1000, from, 0.5));
    expect(Math.abs(out.length - to * 0.5)).toBeLessThanOrEqual(2 + Math.ceil(to / from));
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
    expect(() => new Resampler(0, 16000)).toThrow(TypeError);
    expect(() => new Resampler(44100.5, 16000)).toThrow(TypeError);
  });
});
