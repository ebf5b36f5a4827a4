import { describe, expect, it } from 'vitest';
import {
  MULAW_SILENCE,
  mulawDecode,
  mulawDecodeSample,
  mulawEncode,
  mulawEncodeSample,
} from '../src/index.js';

describe('mulaw', () => {
  // Values of the ITU-T G.711 μ-law table in its usual 16-bit form (bias 0x84, clip at 32635, as
  // in Sun's reference g711.c), which is what Twilio's audio/x-mulaw carries.
  it.each([
    [0, 0xff],
    [-1, 0x7f],
    [100, 0xf2],
    [-100, 0x72],
    [1000, 0xce],
    [-1000, 0x4e],
    [32767, 0x80],
    [-32768, 0x00],
  ])('encodes %i to 0x%s', (sample, byte) => {
    expect(mulawEncodeSample(sample)).toBe(byte);
    expect(mulawEncode(Int16Array.of(sample))[0]).toBe(byte);
  });

  it.each([
    [0xff, 0],
    [0x7f, 0],
    [0x80, 32124],
    [0x00, -32124],
    [0x8f, 16764],
    [0xfe, 8],
  ])('decodes 0x%s to %i', (byte, sample) => {
    expect(mulawDecodeSample(byte)).toBe(sample);
    expect(mulawDecode(Uint8Array.of(byte))[0]).toBe(sample);
  });

  it('has 0xff as the silence byte', () => {
    expect(MULAW_SILENCE).toBe(0xff);
    expect(mulawDecodeSample(MULAW_SILENCE)).toBe(0);
  });

  // The G.711 values above fix enc(32767) = 0x80 and dec(0x80) = 32124, so samples beyond the clip level
  // (|s| > 32635) necessarily come back up to 644 off; inside it the error is at most 512.
  it.each([
    ['the clamped range', -32635, 32635, 512],
    ['the whole int16 range', -32768, 32767, 644],
  ])('round-trips %s within its bound', (_name, from, to, bound) => {
    const all = Int16Array.from({ length: to - from + 1 }, (_, i) => from + i);
    const back = mulawDecode(mulawEncode(all));
    let maxError = 0;
    for (let i = 0; i < all.length; i++)
      maxError = Math.max(maxError, Math.abs(back[i]! - all[i]!));
    expect(maxError).toBeLessThanOrEqual(bound);
    expect(maxError).toBeGreaterThan(bound - 2);
  });

  it('is monotonic: larger samples never decode smaller', () => {
    let previous = -Infinity;
    const violations: number[] = [];
    for (let s = -32768; s <= 32767; s++) {
      const decoded = mulawDecodeSample(mulawEncodeSample(s));
      if (decoded < previous) violations.push(s);
      previous = decoded;
    }
    expect(violations).toEqual([]);
  });

  it('decodes every byte to a value that encodes back to the same byte (except -0)', () => {
    for (let b = 0; b < 256; b++) {
      const back = mulawEncodeSample(mulawDecodeSample(b));
      expect(b === 0x7f ? back === 0xff : back === b).toBe(true);
    }
  });

  it.each([
    [40000, 0x80],
    [-40000, 0x00],
    [Number.NaN, 0xff],
    [99.6, mulawEncodeSample(100)],
  ])('clamps and rounds out-of-range input %s', (sample, byte) => {
    expect(mulawEncodeSample(sample)).toBe(byte);
  });

  it('only uses the low 8 bits of a byte', () => {
    expect(mulawDecodeSample(0x1ff)).toBe(mulawDecodeSample(0xff));
  });
});
