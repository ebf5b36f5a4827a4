import { AudioError } from './errors.js';

/** Samples in one frame of `ms` milliseconds at `rate` (20 ms: 160 at 8 kHz, 320 at 16 kHz). */
export function frameSamples(rate: number, ms = 20): number {
  const samples = (rate * ms) / 1000;
  if (!Number.isInteger(samples) || samples <= 0) {
    throw new AudioError(
      'AUDIO_ERR_FRAME_SIZE',
      `${ms} ms at ${rate} Hz is not a whole positive number of samples`,
    );
  }
  return samples;
}

/**
 * Cuts a stream of PCM chunks of any length into frames of exactly `samplesPerFrame` samples.
 * Every returned frame is a fresh array the caller owns.
 */
export class Framer {
  readonly samplesPerFrame: number;
  readonly #pending: Int16Array;
  #pendingLength = 0;

  constructor(samplesPerFrame: number) {
    if (!Number.isInteger(samplesPerFrame) || samplesPerFrame <= 0) {
      throw new AudioError('AUDIO_ERR_FRAME_SIZE', `invalid frame size ${samplesPerFrame}`);
    }
    this.samplesPerFrame = samplesPerFrame;
    this.#pending = new Int16Array(samplesPerFrame);
  }

  /** Samples held back until the next frame is complete. */
  get pendingSamples(): number {
    return this.#pendingLength;
  }

  /** Adds samples and returns every frame completed by them, in order. */
  push(pcm: Int16Array): Int16Array[] {
    const size = this.samplesPerFrame;
    const frames: Int16Array[] = [];
    let offset = 0;
    if (this.#pendingLength > 0) {
      const take = Math.min(size - this.#pendingLength, pcm.length);
      this.#pending.set(pcm.subarray(0, take), this.#pendingLength);
      this.#pendingLength += take;
      offset = take;
      if (this.#pendingLength < size) return frames;
      frames.push(this.#pending.slice());
      this.#pendingLength = 0;
    }
    while (pcm.length - offset >= size) {
      frames.push(pcm.slice(offset, offset + size));
      offset += size;
    }
    if (offset < pcm.length) {
      this.#pending.set(pcm.subarray(offset), 0);
      this.#pendingLength = pcm.length - offset;
    }
    return frames;
  }

  /**
   * `push` for a chunk the caller hands over (a fresh array nobody else holds or writes): when
   * nothing is pending and the chunk is exactly one frame, it is returned as that frame, without
   * the copy `push` makes. Otherwise the same as `push`.
   */
  pushOwned(pcm: Int16Array): Int16Array[] {
    if (this.#pendingLength === 0 && pcm.length === this.samplesPerFrame) return [pcm];
    return this.push(pcm);
  }

  /** Returns the remainder zero-padded to a whole frame, or undefined when nothing is pending. */
  flush(): Int16Array | undefined {
    if (this.#pendingLength === 0) return undefined;
    const frame = new Int16Array(this.samplesPerFrame);
    frame.set(this.#pending.subarray(0, this.#pendingLength));
    this.#pendingLength = 0;
    return frame;
  }

  /** Drops the pending remainder (barge-in, `clear`). */
  reset(): void {
    this.#pendingLength = 0;
  }
}
