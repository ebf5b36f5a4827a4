/**
 * Deterministic white noise at 8 kHz: speech-like for an energy VAD, and it correlates only with
 * itself, so a reply can be matched to the utterance it repeats. `amplitude` is the peak, as a
 * fraction of full scale.
 */
export function noise(ms: number, seed: number, amplitude = 0.3, rate = 8000): Int16Array {
  const out = new Int16Array((ms * rate) / 1000);
  let x = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = Math.round((x / 2 ** 32 - 0.5) * 2 * amplitude * 32767);
  }
  return out;
}
