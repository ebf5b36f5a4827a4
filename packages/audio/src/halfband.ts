import { AudioError } from './errors.js';
import { besselI0 } from './kaiser.js';
import { Resampler } from './resample.js';

/**
 * The part of a resampler the Call uses (both `Resampler` and `HalfBandResampler` have it):
 * streaming `process`, `flush` at the end of an utterance, `reset` on barge-in.
 */
export interface PcmResampler {
  readonly fromRate: number;
  readonly toRate: number;
  /** Group delay of the filter, in output samples. */
  readonly delaySamples: number;
  process(chunk: Int16Array): Int16Array;
  flush(): Int16Array;
  reset(): void;
}

// Half-band design, relative to the Nyquist frequency of the lower rate (4 kHz for 8k ⇄ 16k):
// passband to 0.875 (3.5 kHz, flat within 0.01 dB), stopband from 1.125 (4.5 kHz, ≥ 65 dB by
// design, ≥ 60 dB asserted by the tests). A half-band filter is symmetric about the lower rate's
// Nyquist (−6 dB there), which is what makes every other tap zero; the price is the band from
// 0.875 to 1.125 (3.5–4.5 kHz at 8k ⇄ 16k), where content at 16 kHz between 4 and 4.5 kHz folds,
// attenuated, into 3.5–4 kHz at 8 kHz: above the 3.4 kHz telephone band.
/** Nonzero taps on each side of the centre tap. */
export const HALF_BAND_SIDE_TAPS = 17;
const HALF_BAND_ATTENUATION_DB = 65;
/** Passband edge and stopband edge as fractions of the lower rate's Nyquist frequency. */
export const HALF_BAND_PASSBAND_EDGE = 0.875;
export const HALF_BAND_STOPBAND_EDGE = 1.125;

/**
 * The odd taps h[1], h[3], … h[2m−1] of a Kaiser-windowed half-band low-pass (cutoff at a quarter
 * of the higher rate; h[0] = 0.5, every other even tap 0), scaled so they sum to 0.25 per side:
 * DC gain exactly 1 for decimation and for both phases of interpolation.
 */
function designHalfBand(sideTaps: number, attenuationDb: number): Float64Array {
  const last = 2 * sideTaps - 1; // the outermost nonzero tap
  const beta = 0.1102 * (attenuationDb - 8.7);
  const i0Beta = besselI0(beta);
  const taps = new Float64Array(sideTaps);
  let sum = 0;
  for (let i = 0; i < sideTaps; i++) {
    const t = 2 * i + 1;
    const r = t / (last + 1);
    const window = besselI0(beta * Math.sqrt(Math.max(0, 1 - r * r))) / i0Beta;
    taps[i] = (Math.sin((Math.PI * t) / 2) / (Math.PI * t)) * window;
    sum += taps[i]!;
  }
  for (let i = 0; i < sideTaps; i++) taps[i] = (taps[i]! * 0.25) / sum;
  return taps;
}

const HALF_TAPS = designHalfBand(HALF_BAND_SIDE_TAPS, HALF_BAND_ATTENUATION_DB);
// Input samples filtered per pass (the work buffer's size beyond the history).
const BLOCK = 480;

/**
 * Exactly 2:1 resampling (8k ⇄ 16k, 24k ⇄ 48k, …) with a half-band FIR in polyphase form, using
 * only its nonzero taps and their symmetry: upsampling copies every input sample to the even
 * outputs and computes the odd ones from 2 × 17 inputs (17 multiplies); downsampling computes each
 * output from the centre sample and 2 × 17 odd neighbours. About a third of the work of the
 * general Kaiser-sinc `Resampler` at a similar quality for telephone audio (see the design
 * constants above). Same streaming contract as `Resampler`: history kept across `process()` calls
 * (chunked input gives exactly the one-shot output), output lags by `delaySamples`, `flush()`
 * drains, `reset()` forgets. Only the returned array is allocated (and, for a chunk longer than 480
 * samples, one per 480-sample block: the filter's own memory stays a few KiB).
 */
export class HalfBandResampler implements PcmResampler {
  readonly fromRate: number;
  readonly toRate: number;
  readonly #up: boolean;
  readonly #history: number;
  readonly #work: Float64Array;
  /** Downsampling: whether the next input sample is at an even position (an output is due). */
  #even = true;

  constructor(fromRate: number, toRate: number) {
    if (!(toRate === 2 * fromRate || fromRate === 2 * toRate) || !Number.isInteger(fromRate)) {
      throw new AudioError(
        'AUDIO_ERR_RATE',
        `half-band needs a 2:1 ratio, got ${fromRate}:${toRate}`,
      );
    }
    for (const rate of [fromRate, toRate]) {
      if (rate < 1000 || rate > 384000) {
        throw new AudioError('AUDIO_ERR_RATE', `unsupported sample rate ${rate}`);
      }
    }
    this.fromRate = fromRate;
    this.toRate = toRate;
    this.#up = toRate > fromRate;
    const m = HALF_BAND_SIDE_TAPS;
    // Up: the odd output between inputs n and n+1 uses n−m+1 … n+m. Down: the output centred on
    // input c uses c−(2m−1) … c+(2m−1).
    this.#history = this.#up ? 2 * m - 1 : 4 * m - 2;
    this.#work = new Float64Array(this.#history + BLOCK);
  }

  get delaySamples(): number {
    const m = HALF_BAND_SIDE_TAPS;
    return this.#up ? 2 * m : (2 * m - 1) / 2;
  }

  process(chunk: Int16Array): Int16Array {
    const n = chunk.length;
    const out = new Int16Array(this.#up ? 2 * n : this.#outputsFor(n));
    // A long chunk (a whole utterance handed to `say`) goes through in blocks, so the work buffer
    // stays at history + BLOCK samples instead of growing to the longest utterance for the call.
    let o = 0;
    for (let at = 0; at < n; at += BLOCK)
      o = this.#processBlock(chunk, at, Math.min(n, at + BLOCK), out, o);
    return out;
  }

  /** Downsampling: outputs that `n` more inputs complete, from the current parity. */
  #outputsFor(n: number): number {
    const first = this.#even ? 0 : 1;
    return n > first ? Math.ceil((n - first) / 2) : 0;
  }

  /** Filters chunk[from … to) into out from `o`; returns where the next output goes. */
  #processBlock(chunk: Int16Array, from: number, to: number, out: Int16Array, o: number): number {
    const history = this.#history;
    const n = to - from;
    const work = this.#work;
    for (let i = 0; i < n; i++) work[history + i] = chunk[from + i]!;
    const next = this.#up ? this.#upsample(work, n, out, o) : this.#downsample(work, n, out, o);
    if (n > 0) work.copyWithin(0, n, n + history);
    return next;
  }

  /** Input sample k (at work[history + k]) completes the output pair centred m inputs back. */
  #upsample(work: Float64Array, n: number, out: Int16Array, o: number): number {
    const m = HALF_BAND_SIDE_TAPS;
    const h = HALF_TAPS;
    const history = this.#history;
    for (let k = 0; k < n; k++) {
      // Centre input (the even output) at c = p − m; the odd output sits between c and c+1.
      const c = history + k - m;
      let a0 = 0;
      let a1 = 0;
      let i = 0;
      for (; i + 1 < m; i += 2) {
        a0 += h[i]! * (work[c - i]! + work[c + 1 + i]!);
        a1 += h[i + 1]! * (work[c - i - 1]! + work[c + 2 + i]!);
      }
      for (; i < m; i++) a0 += h[i]! * (work[c - i]! + work[c + 1 + i]!);
      // Interpolation gain 2: the even output is the input itself, the odd one 2 × the sum.
      const v = Math.round(2 * (a0 + a1));
      out[o + 2 * k] = work[c]!;
      out[o + 2 * k + 1] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
    return o + 2 * n;
  }

  /** An output is due at every even input position; it is centred 2m−1 inputs back. */
  #downsample(work: Float64Array, n: number, out: Int16Array, o0: number): number {
    const m = HALF_BAND_SIDE_TAPS;
    const h = HALF_TAPS;
    const first = this.#even ? 0 : 1;
    const count = this.#outputsFor(n);
    const lag = 2 * m - 1;
    let p = this.#history + first;
    for (let o = 0; o < count; o++, p += 2) {
      const c = p - lag;
      let a0 = 0.5 * work[c]!;
      let a1 = 0;
      let i = 0;
      for (; i + 1 < m; i += 2) {
        a0 += h[i]! * (work[c - 2 * i - 1]! + work[c + 2 * i + 1]!);
        a1 += h[i + 1]! * (work[c - 2 * i - 3]! + work[c + 2 * i + 3]!);
      }
      for (; i < m; i++) a0 += h[i]! * (work[c - 2 * i - 1]! + work[c + 2 * i + 1]!);
      const v = Math.round(a0 + a1);
      out[o0 + o] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
    }
    if (n % 2 === 1) this.#even = !this.#even;
    return o0 + count;
  }

  flush(): Int16Array {
    const m = HALF_BAND_SIDE_TAPS;
    // Enough zeros that the last real input reaches the centre of the filter.
    const tail = this.process(new Int16Array(this.#up ? m : 2 * m));
    this.reset();
    return tail;
  }

  reset(): void {
    this.#work.fill(0, 0, this.#history);
    this.#even = true;
  }
}

/**
 * The resampler for a pair of rates: `HalfBandResampler` for exactly 2:1 either way, else the
 * general `Resampler` (which also passes equal rates through).
 */
export function createResampler(fromRate: number, toRate: number): PcmResampler {
  if (toRate === 2 * fromRate || fromRate === 2 * toRate) {
    return new HalfBandResampler(fromRate, toRate);
  }
  return new Resampler(fromRate, toRate);
}
