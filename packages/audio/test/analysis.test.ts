import { describe, expect, it } from 'vitest';
import { dbfs, normalizedCrossCorrelation, rms, tone } from '../src/index.js';

describe('rms and dbfs', () => {
  it.each([
    ['empty', new Int16Array(0), 0, -Infinity],
    ['silence', new Int16Array(100), 0, -Infinity],
    ['constant full scale', new Int16Array(10).fill(-32768), 32768, 0],
    ['constant half scale', new Int16Array(10).fill(16384), 16384, -6.0206],
  ])('%s', (_name, pcm, expectedRms, expectedDb) => {
    expect(rms(pcm)).toBeCloseTo(expectedRms, 6);
    if (expectedDb === -Infinity) expect(dbfs(pcm)).toBe(-Infinity);
    else expect(dbfs(pcm)).toBeCloseTo(expectedDb, 3);
  });

  it('a full-scale sine is about -3 dBFS', () => {
    expect(dbfs(tone([1000], 100, 8000, 1))).toBeCloseTo(-3.01, 1);
  });
});

describe('normalizedCrossCorrelation', () => {
  // Noise-like signal so only one lag matches.
  const signal = Int16Array.from({ length: 800 }, (_, i) =>
    Math.round(
      Math.sin(i * 0.37) * 8000 + Math.sin(i * 1.91 + 1) * 6000 + ((i * 7919) % 2000) - 1000,
    ),
  );

  it.each([0, 5, 37, -12])('finds a delay of %i samples', (delay) => {
    const shifted = new Int16Array(signal.length);
    for (let i = 0; i < signal.length; i++) {
      const j = i - delay;
      shifted[i] = j >= 0 && j < signal.length ? signal[j]! : 0;
    }
    const result = normalizedCrossCorrelation(signal, shifted, 50);
    expect(result.lag).toBe(delay);
    expect(result.coefficient).toBeGreaterThan(0.99);
  });

  it('reports an inverted copy as a poor match', () => {
    const inverted = signal.map((s) => -s);
    expect(normalizedCrossCorrelation(signal, inverted, 0).coefficient).toBeCloseTo(-1, 6);
  });

  it('is 0 against silence', () => {
    expect(normalizedCrossCorrelation(signal, new Int16Array(800), 10).coefficient).toBe(0);
  });
});
