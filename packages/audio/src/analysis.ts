/** Root mean square of the samples, in sample units (0 for an empty array). */
export function rms(pcm: Int16Array): number {
  if (pcm.length === 0) return 0;
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i]! * pcm[i]!;
  return Math.sqrt(sum / pcm.length);
}

/** Level relative to full scale (32768), in dB; -Infinity for digital silence. */
export function dbfs(pcm: Int16Array): number {
  const r = rms(pcm);
  return r === 0 ? -Infinity : 20 * Math.log10(r / 32768);
}

export interface CorrelationResult {
  /** Delay of `b` relative to `a` in samples: `b[i + lag]` lines up with `a[i]`. */
  lag: number;
  /** Normalized correlation in [-1, 1] at that lag, over the overlapping samples. */
  coefficient: number;
}

/**
 * Finds the lag in [-maxLag, maxLag] where `b` best matches `a`. Each lag is normalized over its own
 * overlap, so a partial overlap is not penalized for being short; overlaps shorter than a quarter of
 * the shorter input are skipped because a handful of samples can correlate perfectly by chance.
 */
export function normalizedCrossCorrelation(
  a: Int16Array,
  b: Int16Array,
  maxLag: number,
): CorrelationResult {
  let best: CorrelationResult = { lag: 0, coefficient: 0 };
  let bestFound = false;
  const minOverlap = Math.max(1, Math.floor(Math.min(a.length, b.length) / 4));
  const limit = Math.max(0, Math.floor(maxLag));
  for (let lag = -limit; lag <= limit; lag++) {
    const start = Math.max(0, -lag);
    const end = Math.min(a.length, b.length - lag);
    if (end - start < minOverlap) continue;
    let sab = 0;
    let saa = 0;
    let sbb = 0;
    for (let i = start; i < end; i++) {
      const x = a[i]!;
      const y = b[i + lag]!;
      sab += x * y;
      saa += x * x;
      sbb += y * y;
    }
    const denominator = Math.sqrt(saa * sbb);
    const coefficient = denominator === 0 ? 0 : sab / denominator;
    if (!bestFound || coefficient > best.coefficient) {
      best = { lag, coefficient };
      bestFound = true;
    }
  }
  return best;
}
