import { AudioError } from './errors.js';

/**
 * A sum of sine waves. `amplitude` is the peak of the sum as a fraction of full scale (0..1); each
 * of the n components gets `amplitude / n`, so the result never clips.
 */
export function tone(
  freqsHz: readonly number[],
  durationMs: number,
  rate: number,
  amplitude = 0.5,
): Int16Array {
  if (!(rate > 0) || !(durationMs >= 0)) {
    throw new AudioError('AUDIO_ERR_ARGUMENT', `invalid tone ${durationMs} ms at ${rate} Hz`);
  }
  const length = Math.round((durationMs * rate) / 1000);
  const out = new Int16Array(length);
  if (freqsHz.length === 0) return out;
  const peak = (Math.min(Math.max(amplitude, 0), 1) * 32767) / freqsHz.length;
  for (let i = 0; i < length; i++) {
    let v = 0;
    for (const f of freqsHz) v += Math.sin((2 * Math.PI * f * i) / rate);
    out[i] = Math.round(v * peak);
  }
  return out;
}

/** DTMF row (low group) and column (high group) frequencies in Hz. */
export const DTMF_ROWS: readonly number[] = [697, 770, 852, 941];
export const DTMF_COLUMNS: readonly number[] = [1209, 1336, 1477, 1633];
const DTMF_KEYS = ['123A', '456B', '789C', '*0#D'];

/** The `[row, column]` frequencies of a DTMF digit (0-9, A-D, *, #), or undefined. */
export function dtmfFrequencies(digit: string): [number, number] | undefined {
  const key = digit.toUpperCase();
  if (key.length !== 1) return undefined;
  for (let r = 0; r < 4; r++) {
    const c = DTMF_KEYS[r]!.indexOf(key);
    if (c >= 0) return [DTMF_ROWS[r]!, DTMF_COLUMNS[c]!];
  }
  return undefined;
}

/** The dual tone of one DTMF digit. */
export function dtmfTone(
  digit: string,
  durationMs: number,
  rate: number,
  amplitude = 0.5,
): Int16Array {
  const freqs = dtmfFrequencies(digit);
  if (!freqs)
    throw new AudioError('AUDIO_ERR_ARGUMENT', `not a DTMF digit: ${JSON.stringify(digit)}`);
  return tone(freqs, durationMs, rate, amplitude);
}

/** DFT magnitude at frequency `f` of windowed `pcm`, in full-scale units (Goertzel). */
function goertzelMagnitude(pcm: Int16Array, window: Float64Array, f: number, rate: number): number {
  const coefficient = 2 * Math.cos((2 * Math.PI * f) / rate);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < pcm.length; i++) {
    const s0 = pcm[i]! * window[i]! + coefficient * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coefficient * s1 * s2;
  return Math.sqrt(Math.max(0, power)) / 32768;
}

const windowCache = new Map<number, { window: Float64Array; sum: number }>();

function hann(length: number): { window: Float64Array; sum: number } {
  let cached = windowCache.get(length);
  if (!cached) {
    const window = new Float64Array(length);
    let sum = 0;
    for (let i = 0; i < length; i++) {
      window[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (length - 1));
      sum += window[i]!;
    }
    cached = { window, sum };
    if (windowCache.size > 32) windowCache.clear();
    windowCache.set(length, cached);
  }
  return cached;
}

/** Shortest block that separates adjacent DTMF rows (73 Hz apart) with a Hann window. */
const MIN_DETECT_MS = 35;
/** Each tone at least -36 dBFS; below that it is line noise, not a key press. */
const MIN_TONE_AMPLITUDE = 0.016;
/** Twist: the two tones within 10 dB of each other (ITU allows 4 and 8 dB; a little slack for codecs). */
const MAX_TWIST = 10 ** (10 / 20);
/** The chosen tone at least 10 dB above the runner-up of its group. */
const MIN_GROUP_MARGIN = 10 ** (10 / 20);
/** The two tones carry at least 70 % of the block's energy (speech and noise do not). */
const MIN_TONE_ENERGY_SHARE = 0.7;

/**
 * Detects one DTMF digit in a block of at least ~40 ms (shorter blocks return undefined) at any rate
 * from 8 kHz up. Uses the Goertzel algorithm on a Hann-windowed block at the eight DTMF frequencies
 * and checks level, twist, per-group margin and that the tones dominate the block's energy.
 */
export function detectDtmf(pcm: Int16Array, rate: number): string | undefined {
  if (pcm.length < (MIN_DETECT_MS * rate) / 1000 || rate < 4000) return undefined;
  const { window, sum } = hann(pcm.length);
  // A sine of amplitude A gives a windowed DFT magnitude of A × Σw / 2.
  const amplitudeOf = (f: number): number => (2 * goertzelMagnitude(pcm, window, f, rate)) / sum;
  const rows = DTMF_ROWS.map(amplitudeOf);
  const columns = DTMF_COLUMNS.map(amplitudeOf);
  const pick = (amps: number[]): { index: number; margin: number } => {
    let index = 0;
    for (let i = 1; i < amps.length; i++) if (amps[i]! > amps[index]!) index = i;
    let runnerUp = 0;
    for (let i = 0; i < amps.length; i++) if (i !== index) runnerUp = Math.max(runnerUp, amps[i]!);
    return { index, margin: runnerUp === 0 ? Infinity : amps[index]! / runnerUp };
  };
  const row = pick(rows);
  const column = pick(columns);
  const rowAmp = rows[row.index]!;
  const columnAmp = columns[column.index]!;
  if (rowAmp < MIN_TONE_AMPLITUDE || columnAmp < MIN_TONE_AMPLITUDE) return undefined;
  if (rowAmp / columnAmp > MAX_TWIST || columnAmp / rowAmp > MAX_TWIST) return undefined;
  if (row.margin < MIN_GROUP_MARGIN || column.margin < MIN_GROUP_MARGIN) return undefined;
  // Mean power of the block (fraction of full scale squared) versus the two sines (A²/2 each).
  let energy = 0;
  for (let i = 0; i < pcm.length; i++) energy += (pcm[i]! / 32768) ** 2;
  const meanPower = energy / pcm.length;
  const tonePower = (rowAmp * rowAmp + columnAmp * columnAmp) / 2;
  if (tonePower < MIN_TONE_ENERGY_SHARE * meanPower) return undefined;
  return DTMF_KEYS[row.index]![column.index];
}
