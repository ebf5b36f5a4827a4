import { describe, expect, it } from 'vitest';
import { Resampler, SUPPORTED_RATES, resample, tone } from '../src/index.js';

/** Amplitude of frequency `f` in `pcm` (Goertzel), as a fraction of the full-scale sine. */
function amplitudeAt(pcm: Int16Array, f: number, rate: number): number {
  const w = 2 * Math.cos((2 * Math.PI * f) / rate);
  let s1 = 0;
  let s2 = 0;
  for (const x of pcm) {
    const s0 = x + w * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return (2 * Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - w * s1 * s2))) / pcm.length / 32767;
}

/** Frequency estimated from rising zero crossings. */
function zeroCrossingHz(pcm: Int16Array, rate: number): number {
  let first = -1;
  let last = -1;
  let count = 0;
  for (let i = 1; i < pcm.length; i++) {
    if (pcm[i - 1]! < 0 && pcm[i]! >= 0) {
      if (first < 0) first = i;
      else count++;
      last = i;
    }
  }
  return (count * rate) / (last - first);
}

/** The steady part of a resampled signal: skips the filter's start-up transient. */
function steady(pcm: Int16Array, rate: number): Int16Array {
  return pcm.subarray(Math.round(rate * 0.05), pcm.length - Math.round(rate * 0.05));
}

const db = (ratio: number): number => 20 * Math.log10(ratio);

describe('Resampler', () => {
  it('survives 8 kHz → 48 kHz → 8 kHz with frequency and level kept', () => {
    const input = tone([1000], 500, 8000, 0.5);
    const up = new Resampler(8000, 48000).process(input);
    const back = new Resampler(48000, 8000).process(up);
    expect(up.length).toBe(input.length * 6);
    expect(back.length).toBe(input.length);
    for (const [pcm, rate] of [
      [up, 48000],
      [back, 8000],
    ] as const) {
      const s = steady(pcm, rate);
      expect(zeroCrossingHz(s, rate)).toBeCloseTo(1000, -1);
      expect(Math.abs(db(amplitudeAt(s, 1000, rate) / 0.5))).toBeLessThan(1);
    }
  });

  it.each([
    [8000, 16000, 1000],
    [16000, 8000, 1000],
    [24000, 8000, 1000],
    [8000, 24000, 3000],
    [44100, 16000, 1000],
    [16000, 44100, 6000],
    [44100, 48000, 1000],
    [48000, 44100, 10000],
    [48000, 8000, 3400],
    [8000, 44100, 440],
  ])('%i → %i keeps a %i Hz tone within 1 dB', (from, to, f) => {
    const out = new Resampler(from, to).process(tone([f], 300, from, 0.5));
    expect(out.length).toBe(Math.ceil((0.3 * from * to) / from));
    const s = steady(out, to);
    expect(Math.abs(db(amplitudeAt(s, f, to) / 0.5))).toBeLessThan(1);
    expect(zeroCrossingHz(s, to)).toBeCloseTo(f, -1);
  });

  it.each([
    // [from, to, tone, minimum attenuation dB, frequency it would alias to in the output]
    [48000, 8000, 3950, 30, 3950],
    [48000, 8000, 5000, 40, 3000],
    [48000, 8000, 7000, 40, 1000],
    [16000, 8000, 3950, 30, 3950],
    [16000, 8000, 5000, 40, 3000],
    [24000, 8000, 6000, 40, 2000],
    [44100, 16000, 7950, 30, 7950],
    [44100, 16000, 10000, 40, 6000],
  ])('%i → %i attenuates %i Hz by ≥ %i dB', (from, to, f, minDb, alias) => {
    const out = new Resampler(from, to).process(tone([f], 300, from, 0.5));
    const s = steady(out, to);
    const level = Math.max(amplitudeAt(s, alias, to), 1e-9);
    expect(db(level / 0.5)).toBeLessThan(-minDb);
  });

  it('rejects images when upsampling 8 kHz → 48 kHz', () => {
    // A 1 kHz tone upsampled by zero-stuffing has images at 7 kHz, 9 kHz, …
    const s = steady(new Resampler(8000, 48000).process(tone([1000], 300, 8000, 0.5)), 48000);
    expect(db(amplitudeAt(s, 7000, 48000) / 0.5)).toBeLessThan(-40);
    expect(db(amplitudeAt(s, 9000, 48000) / 0.5)).toBeLessThan(-40);
  });

  const pairs = SUPPORTED_RATES.flatMap((from) =>
    SUPPORTED_RATES.filter((to) => to !== from).map((to) => [from, to] as const),
  );

  it.each(pairs)('%i → %i gives the same samples in chunks as in one call', (from, to) => {
    const input = tone([440, 1250], 200, from, 0.6);
    const oneShot = new Resampler(from, to).process(input);
    const chunked = new Resampler(from, to);
    const parts: number[] = [];
    const sizes = [1, 7, 160, 3, 441, 2, 999];
    for (let offset = 0, i = 0; offset < input.length; i++) {
      const size = sizes[i % sizes.length]!;
      parts.push(...chunked.process(input.subarray(offset, offset + size)));
      offset += size;
    }
    expect(parts.length).toBe(oneShot.length);
    expect(parts).toEqual(Array.from(oneShot));
  });

  it('reset() forgets history', () => {
    const r = new Resampler(16000, 8000);
    const first = r.process(tone([500], 20, 16000, 0.5));
    r.process(tone([1500], 20, 16000, 0.9));
    r.reset();
    expect(Array.from(r.process(tone([500], 20, 16000, 0.5)))).toEqual(Array.from(first));
  });

  it('flush() releases the delayed tail', () => {
    const input = tone([1000], 100, 8000, 0.5);
    const r = new Resampler(8000, 16000);
    const body = r.process(input);
    const tail = r.flush();
    expect(tail.length).toBeGreaterThanOrEqual(Math.floor(r.delaySamples));
    expect(resample(input, 8000, 16000).length).toBe(body.length + tail.length);
  });

  it('passes equal rates through as a copy', () => {
    const input = Int16Array.of(1, 2, 3);
    const out = new Resampler(8000, 8000).process(input);
    expect(Array.from(out)).toEqual([1, 2, 3]);
    expect(out).not.toBe(input);
  });

  it('keeps a constant (DC) input constant', () => {
    const out = new Resampler(8000, 44100).process(new Int16Array(800).fill(10000));
    for (const v of steady(out, 44100)) expect(Math.abs(v - 10000)).toBeLessThanOrEqual(1);
  });

  it('clamps instead of wrapping on full-scale square waves', () => {
    const square = Int16Array.from({ length: 800 }, (_, i) =>
      Math.floor(i / 20) % 2 ? 32767 : -32768,
    );
    const out = new Resampler(8000, 16000).process(square);
    // Gibbs overshoot would wrap around int16 without clamping; wrapped values flip sign mid-plateau.
    let flips = 0;
    for (let i = 1; i < out.length; i++) if (Math.abs(out[i]! - out[i - 1]!) > 60000) flips++;
    expect(flips).toBe(0);
  });

  it.each([
    [0, 8000],
    [8000, 12.5],
    [8000, 7919],
  ])('rejects %s → %s', (from, to) => {
    expect(() => new Resampler(from, to)).toThrow(
      expect.objectContaining({ code: 'AUDIO_ERR_RATE' }),
    );
  });
});
