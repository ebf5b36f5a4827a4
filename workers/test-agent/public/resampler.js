// Streaming sample-rate converter for the test-agent page, shared by both AudioWorklets.
//
// A polyphase windowed-sinc filter: the rate ratio is reduced to L/M (48000→16000 is 1/3,
// 44100→16000 is 160/441), and each output sample is a dot product of the input history with
// one of L precomputed phases of a Blackman-windowed sinc. The cut-off sits below the lower of the
// two Nyquist frequencies, so downsampling does not alias (picking every Nth sample would) and
// upsampling does not image. History is kept across calls, so block boundaries do not click.

const DEFAULT_ZERO_CROSSINGS = 16;
// Cut-off as a fraction of the lower Nyquist frequency: leaves room for the transition band.
const CUTOFF = 0.92;

function gcd(a, b) {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

function sinc(x) {
  if (x === 0) return 1;
  const px = Math.PI * x;
  return Math.sin(px) / px;
}

function blackman(x) {
  // x in [-1, 1]; zero at both ends.
  const t = (x + 1) / 2;
  return 0.42 - 0.5 * Math.cos(2 * Math.PI * t) + 0.08 * Math.cos(4 * Math.PI * t);
}

export class Resampler {
  /**
   * @param {number} fromRate input rate in Hz
   * @param {number} toRate output rate in Hz
   * @param {{ zeroCrossings?: number }} [options] filter length: zero crossings on each side
   */
  constructor(fromRate, toRate, options = {}) {
    if (!(Number.isInteger(fromRate) && fromRate > 0 && Number.isInteger(toRate) && toRate > 0)) {
      throw new TypeError(`rates must be positive integers, got ${fromRate} and ${toRate}`);
    }
    this.fromRate = fromRate;
    this.toRate = toRate;
    const g = gcd(fromRate, toRate);
    /** Output samples per `step` input samples: phases of the filter. */
    this.phases = toRate / g;
    this.step = fromRate / g;
    const zeroCrossings = options.zeroCrossings ?? DEFAULT_ZERO_CROSSINGS;
    // Cut-off relative to the input Nyquist; downsampling lowers it to the output's.
    const rho = CUTOFF * Math.min(1, toRate / fromRate);
    const reach = zeroCrossings / rho; // kernel half-width in input samples
    this.half = Math.ceil(reach);
    this.taps = 2 * this.half;
    // table[phase * taps + j] weighs input sample (n - half + 1 + j) for an output at n + phase/L.
    this.table = new Float32Array(this.phases * this.taps);
    for (let p = 0; p < this.phases; p++) {
      const frac = p / this.phases;
      let sum = 0;
      for (let j = 0; j < this.taps; j++) {
        const tau = frac - (j - this.half + 1); // distance from the output instant, input samples
        const w = Math.abs(tau) < reach ? blackman(tau / reach) : 0;
        const v = rho * sinc(rho * tau) * w;
        this.table[p * this.taps + j] = v;
        sum += v;
      }
      // Unity gain at DC for every phase, so a constant stays constant (no phase ripple).
      for (let j = 0; j < this.taps; j++) this.table[p * this.taps + j] /= sum;
    }
    this.reset();
  }

  /** Forgets the history (after `clear`): the next call starts from silence. */
  reset() {
    // history[i] is input sample (base + i); it starts with half-1 zeros before sample 0.
    this.history = new Float32Array(Math.max(1024, this.taps * 4));
    this.length = this.taps - 1;
    this.base = -(this.taps - 1);
    this.n = 0; // input index the next output sample sits after
    this.phase = 0;
    this.history.fill(0);
  }

  /** Input samples the filter holds back: the delay it adds, in input samples. */
  get latency() {
    return this.half;
  }

  /**
   * Converts one block. Returns the output samples that the input so far fully determines (a
   * block's last few samples come out with the next call).
   * @param {Float32Array} input samples at `fromRate`
   * @returns {Float32Array} samples at `toRate`
   */
  process(input) {
    this.#append(input);
    const { taps, half, table, phases, step } = this;
    const lastInput = this.base + this.length - 1;
    // Output k (at n + phase/L) needs inputs up to n + half.
    const estimate = Math.ceil(((lastInput - half - this.n + 1) * phases) / step) + 1;
    const out = new Float32Array(Math.max(0, estimate));
    let count = 0;
    const h = this.history;
    while (this.n + half <= lastInput && count < out.length) {
      const start = this.n - half + 1 - this.base;
      const row = this.phase * taps;
      let acc = 0;
      for (let j = 0; j < taps; j++) acc += h[start + j] * table[row + j];
      out[count++] = acc;
      this.phase += step;
      while (this.phase >= phases) {
        this.phase -= phases;
        this.n++;
      }
    }
    this.#trim();
    return count === out.length ? out : out.subarray(0, count);
  }

  /** Pushes the held-back tail out (the last input's output needs `half` samples after it), then resets. */
  flush() {
    const tail = this.process(new Float32Array(this.half));
    this.reset();
    return tail;
  }

  #append(input) {
    if (this.length + input.length > this.history.length) {
      const bigger = new Float32Array(
        Math.max(this.history.length * 2, this.length + input.length),
      );
      bigger.set(this.history.subarray(0, this.length));
      this.history = bigger;
    }
    this.history.set(input, this.length);
    this.length += input.length;
  }

  /** Drops history no future output needs: everything before n - half + 1. */
  #trim() {
    const keepFrom = this.n - this.half + 1 - this.base;
    if (keepFrom <= 0) return;
    this.history.copyWithin(0, keepFrom, this.length);
    this.length -= keepFrom;
    this.base += keepFrom;
  }
}
