import { describe, expect, it } from 'vitest';
import {
  HALF_BAND_PASSBAND_EDGE,
  HALF_BAND_STOPBAND_EDGE,
  HalfBandResampler,
  Resampler,
  createResampler,
  mulawDecode,
  mulawEncode,
  tone,
} from '../src/index.js';

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

/** Skips the filter's start-up and end transients; a whole number of 10 ms keeps Goertzel exact. */
function steady(pcm: Int16Array, rate: number): Int16Array {
  return pcm.subarray(Math.round(rate * 0.05), Math.round(rate * 0.05) + Math.round(rate * 0.2));
}

const db = (ratio: number): number => 20 * Math.log10(ratio);

/** Signal-to-(noise + distortion) of a sine of frequency f: everything that is not the tone. */
function sinadDb(pcm: Int16Array, f: number, rate: number): number {
  // Least-squares fit of a sin + b cos at f, the residual is noise and distortion.
  let ss = 0;
  let sc = 0;
  let cc = 0;
  let xs = 0;
  let xc = 0;
  for (let i = 0; i < pcm.length; i++) {
    const s = Math.sin((2 * Math.PI * f * i) / rate);
    const c = Math.cos((2 * Math.PI * f * i) / rate);
    ss += s * s;
    sc += s * c;
    cc += c * c;
    xs += pcm[i]! * s;
    xc += pcm[i]! * c;
  }
  const det = ss * cc - sc * sc;
  const a = (xs * cc - xc * sc) / det;
  const b = (xc * ss - xs * sc) / det;
  let signal = 0;
  let noise = 0;
  for (let i = 0; i < pcm.length; i++) {
    const fit =
      a * Math.sin((2 * Math.PI * f * i) / rate) + b * Math.cos((2 * Math.PI * f * i) / rate);
    signal += fit * fit;
    noise += (pcm[i]! - fit) ** 2;
  }
  return 10 * Math.log10(signal / noise);
}

describe('HalfBandResampler', () => {
  // Passband: the 8 kHz side's tones through 8k → 16k and 16k → 8k, within 0.1 dB up to 3.4 kHz
  // and 0.2 dB up to the passband edge (3.5 kHz).
  it.each([
    [8000, 16000, 300, 0.1],
    [8000, 16000, 1000, 0.1],
    [8000, 16000, 2000, 0.1],
    [8000, 16000, 3000, 0.1],
    [8000, 16000, 3400, 0.1],
    [8000, 16000, 3500, 0.2],
    [16000, 8000, 300, 0.1],
    [16000, 8000, 1000, 0.1],
    [16000, 8000, 2500, 0.1],
    [16000, 8000, 3400, 0.1],
    [16000, 8000, 3500, 0.2],
    [24000, 48000, 10000, 0.2],
  ])('%i → %i keeps a %i Hz tone within %f dB', (from, to, f, maxDb) => {
    const out = new HalfBandResampler(from, to).process(tone([f], 300, from, 0.5));
    expect(out.length).toBe(Math.ceil((0.3 * from * to) / from));
    expect(Math.abs(db(amplitudeAt(steady(out, to), f, to) / 0.5))).toBeLessThan(maxDb);
  });

  // Stopband: from 4.5 kHz (1.125 × the 8 kHz Nyquist) on, ≥ 60 dB. Downsampling: the tone folds
  // to 8000 − f. Upsampling: a tone f at 8 kHz has its image at 8000 − f... at 16 kHz, 16000 − f.
  it.each([4500, 5000, 6000, 7000, 7900])(
    '16000 → 8000 rejects %i Hz by ≥ 60 dB (no alias)',
    (f) => {
      const out = new HalfBandResampler(16000, 8000).process(tone([f], 300, 16000, 0.5));
      const alias = 8000 - f;
      expect(db(Math.max(amplitudeAt(steady(out, 8000), alias, 8000), 1e-9) / 0.5)).toBeLessThan(
        -60,
      );
    },
  );

  it.each([100, 1000, 2000, 3000, 3500])(
    '8000 → 16000 rejects the image of %i Hz by ≥ 60 dB',
    (f) => {
      const out = new HalfBandResampler(8000, 16000).process(tone([f], 300, 8000, 0.5));
      const image = 8000 - f;
      expect(db(Math.max(amplitudeAt(steady(out, 16000), image, 16000), 1e-9) / 0.5)).toBeLessThan(
        -60,
      );
    },
  );

  it('documents its edges as fractions of the lower Nyquist', () => {
    expect(HALF_BAND_PASSBAND_EDGE * 4000).toBe(3500);
    expect(HALF_BAND_STOPBAND_EDGE * 4000).toBe(4500);
  });

  // 8k → 16k → 8k of μ-law tones: the resampling adds nothing audible next to μ-law's own
  // ~38 dB, and does at least as well as the general Kaiser-sinc resampler.
  it.each([300, 440, 1000, 2000, 3000, 3400])(
    'μ-law %i Hz through 8k → 16k → 8k keeps the SINAD of the old resampler',
    (f) => {
      const line = mulawDecode(mulawEncode(tone([f], 400, 8000, 0.5)));
      const viaHalfBand = new HalfBandResampler(16000, 8000).process(
        new HalfBandResampler(8000, 16000).process(line),
      );
      const viaKaiser = new Resampler(16000, 8000).process(
        new Resampler(8000, 16000).process(line),
      );
      const ref = sinadDb(steady(line, 8000), f, 8000);
      const half = sinadDb(steady(viaHalfBand, 8000), f, 8000);
      const kaiser = sinadDb(steady(viaKaiser, 8000), f, 8000);
      expect(ref).toBeGreaterThan(30);
      expect(half).toBeGreaterThan(ref - 1);
      expect(half).toBeGreaterThan(kaiser - 1);
    },
  );

  it.each([
    [8000, 16000],
    [16000, 8000],
    [24000, 48000],
    [48000, 24000],
  ])('%i → %i gives the same samples in chunks as in one call', (from, to) => {
    const input = tone([440, 1250], 200, from, 0.6);
    const oneShot = new HalfBandResampler(from, to).process(input);
    const chunked = new HalfBandResampler(from, to);
    const parts: number[] = [];
    const sizes = [1, 7, 160, 3, 441, 2, 999];
    for (let offset = 0, i = 0; offset < input.length; i++) {
      const size = sizes[i % sizes.length]!;
      parts.push(...chunked.process(input.subarray(offset, offset + size)));
      offset += size;
    }
    expect(parts).toEqual(Array.from(oneShot));
  });

  it('reset() forgets history, flush() releases the tail', () => {
    const r = new HalfBandResampler(16000, 8000);
    const first = r.process(tone([500], 20, 16000, 0.5));
    r.process(tone([1500], 21, 16000, 0.9));
    r.reset();
    expect(Array.from(r.process(tone([500], 20, 16000, 0.5)))).toEqual(Array.from(first));
    const up = new HalfBandResampler(8000, 16000);
    const input = tone([1000], 100, 8000, 0.5);
    const body = up.process(input);
    const tail = up.flush();
    expect(tail.length).toBeGreaterThanOrEqual(up.delaySamples);
    expect(body.length + tail.length).toBe(2 * input.length + up.delaySamples);
  });

  it('keeps DC exactly and clamps full-scale squares', () => {
    for (const [from, to] of [
      [8000, 16000],
      [16000, 8000],
    ] as const) {
      const out = new HalfBandResampler(from, to).process(new Int16Array(800).fill(10000));
      for (const v of out.subarray(100, out.length - 100))
        expect(Math.abs(v - 10000)).toBeLessThanOrEqual(1);
    }
    const square = Int16Array.from({ length: 800 }, (_, i) =>
      Math.floor(i / 20) % 2 ? 32767 : -32768,
    );
    const out = new HalfBandResampler(8000, 16000).process(square);
    let flips = 0;
    for (let i = 1; i < out.length; i++) if (Math.abs(out[i]! - out[i - 1]!) > 60000) flips++;
    expect(flips).toBe(0);
  });

  it('createResampler picks the half-band for exactly 2:1 only', () => {
    expect(createResampler(8000, 16000)).toBeInstanceOf(HalfBandResampler);
    expect(createResampler(16000, 8000)).toBeInstanceOf(HalfBandResampler);
    expect(createResampler(8000, 24000)).toBeInstanceOf(Resampler);
    expect(createResampler(8000, 8000)).toBeInstanceOf(Resampler);
    expect(() => new HalfBandResampler(8000, 24000)).toThrow(
      expect.objectContaining({ code: 'AUDIO_ERR_RATE' }),
    );
  });
});
