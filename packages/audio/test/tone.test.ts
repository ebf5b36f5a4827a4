import { describe, expect, it } from 'vitest';
import {
  DTMF_COLUMNS,
  DTMF_ROWS,
  Resampler,
  detectDtmf,
  dtmfFrequencies,
  dtmfTone,
  mulawDecode,
  mulawEncode,
  tone,
} from '../src/index.js';

const DIGITS = '0123456789ABCD*#'.split('');
const RATES = [8000, 16000, 48000];

describe('tone', () => {
  it.each([
    [[1000], 20, 8000, 160],
    [[440, 880], 100, 48000, 4800],
    [[], 10, 16000, 160],
  ])('%j for %i ms at %i Hz has %i samples', (freqs, ms, rate, length) => {
    expect(tone(freqs, ms, rate).length).toBe(length);
  });

  it('keeps the peak of a sum within the requested amplitude', () => {
    const pcm = tone([697, 1209], 200, 8000, 0.8);
    let peak = 0;
    for (const v of pcm) peak = Math.max(peak, Math.abs(v));
    expect(peak).toBeLessThanOrEqual(Math.round(0.8 * 32767));
    expect(peak).toBeGreaterThan(0.7 * 32767);
  });
});

describe('DTMF', () => {
  it.each([
    ['1', 697, 1209],
    ['5', 770, 1336],
    ['9', 852, 1477],
    ['0', 941, 1336],
    ['*', 941, 1209],
    ['#', 941, 1477],
    ['A', 697, 1633],
    ['B', 770, 1633],
    ['C', 852, 1633],
    ['D', 941, 1633],
    ['d', 941, 1633],
  ])('%s is %i + %i Hz', (digit, row, column) => {
    expect(dtmfFrequencies(digit)).toEqual([row, column]);
  });

  it.each(['E', '', '12', 'x'])('%j is not a digit', (digit) => {
    expect(dtmfFrequencies(digit)).toBeUndefined();
    expect(() => dtmfTone(digit, 40, 8000)).toThrow(
      expect.objectContaining({ code: 'AUDIO_ERR_ARGUMENT' }),
    );
  });

  it('uses the standard frequency groups', () => {
    expect(DTMF_ROWS).toEqual([697, 770, 852, 941]);
    expect(DTMF_COLUMNS).toEqual([1209, 1336, 1477, 1633]);
  });

  const cases = RATES.flatMap((rate) => DIGITS.map((digit) => [digit, rate] as const));
  it.each(cases)('detects %s in 40 ms at %i Hz', (digit, rate) => {
    expect(detectDtmf(dtmfTone(digit, 40, rate), rate)).toBe(digit);
  });

  it.each(DIGITS)('detects %s after μ-law and 8 kHz → 16 kHz resampling', (digit) => {
    const phone = mulawDecode(mulawEncode(dtmfTone(digit, 80, 8000, 0.3)));
    const wide = new Resampler(8000, 16000).process(phone);
    expect(detectDtmf(wide.subarray(160), 16000)).toBe(digit);
  });

  it('detects a quiet digit with background noise', () => {
    const pcm = dtmfTone('7', 60, 8000, 0.1);
    let seed = 1;
    for (let i = 0; i < pcm.length; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      pcm[i] = pcm[i]! + ((seed % 400) - 200);
    }
    expect(detectDtmf(pcm, 8000)).toBe('7');
  });

  it.each([
    ['silence', new Int16Array(400), 8000],
    ['a single 1 kHz tone', tone([1000], 50, 8000, 0.5), 8000],
    ['a lone row tone', tone([770], 50, 8000, 0.5), 8000],
    ['a too short block', dtmfTone('5', 20, 8000), 8000],
    ['a very faint digit', dtmfTone('5', 50, 8000, 0.005), 8000],
    ['two row tones', tone([697, 852], 50, 8000, 0.5), 8000],
    ['a digit under loud speech-band noise', noisy(dtmfTone('3', 50, 8000, 0.1), 9000), 8000],
    ['a chord of music', tone([262, 330, 392, 523], 50, 16000, 0.8), 16000],
  ])('rejects %s', (_name, pcm, rate) => {
    expect(detectDtmf(pcm, rate)).toBeUndefined();
  });

  it('rejects excessive twist (one tone 20 dB weaker)', () => {
    const strong = tone([852], 50, 8000, 0.5);
    const weak = tone([1336], 50, 8000, 0.05);
    const pcm = strong.map((v, i) => v + weak[i]!);
    expect(detectDtmf(pcm, 8000)).toBeUndefined();
  });
});

function noisy(pcm: Int16Array, level: number): Int16Array {
  let seed = 7;
  return pcm.map((v) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return Math.max(-32768, Math.min(32767, v + ((seed % (2 * level)) - level)));
  });
}
