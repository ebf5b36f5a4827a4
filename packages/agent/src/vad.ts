export interface VadOptions {
  /** Rate of the frames given to `process` (their length gives their duration). */
  sampleRate: number;
  /** Voiced time in a row before speech starts. Default 60. */
  startMs?: number;
  /** Unvoiced time in a row that ends speech. Default 700. */
  endSilenceMs?: number;
  /** Shorter speech is reported as 'discard' instead of 'end'. Default 200. */
  minSpeechMs?: number;
  /** Speech is ended ('max-length') after this long even if the caller goes on. Default 15000. */
  maxSpeechMs?: number;
  /** A frame is voiced this far above the noise floor… Default 12. */
  aboveFloorDb?: number;
  /** …and above this absolute level (comfort noise and line hiss stay below it). Default -45. */
  minLevelDbfs?: number;
  /** The noise floor is the quietest frame of this window. Default 3000. */
  floorWindowMs?: number;
}

export type VadEvent =
  | { readonly type: 'start' }
  | {
      readonly type: 'end';
      readonly reason: 'silence' | 'max-length';
      /** From the first voiced frame to the end of the last voiced frame. */
      readonly speechMs: number;
      /** Unvoiced time after the last voiced frame, included in the frames seen since. */
      readonly trailingMs: number;
    }
  | { readonly type: 'discard'; readonly speechMs: number; readonly trailingMs: number };

/** Level given to digital silence, so the arithmetic stays finite. */
export const SILENCE_DBFS = -100;
const FLOOR_WINDOW_FRAME_MS = 20;

/** RMS level of a frame relative to full scale (32768), clamped at SILENCE_DBFS. */
export function frameDbfs(frame: Int16Array): number {
  if (frame.length === 0) return SILENCE_DBFS;
  let sum = 0;
  for (let i = 0; i < frame.length; i++) sum += frame[i]! * frame[i]!;
  if (sum === 0) return SILENCE_DBFS;
  return Math.max(SILENCE_DBFS, 10 * Math.log10(sum / frame.length / (32768 * 32768)));
}

/**
 * Energy voice-activity detector, one frame at a time. A frame is voiced when its RMS level is
 * above max(noiseFloor + aboveFloorDb, minLevelDbfs); speech starts after `startMs` voiced in a
 * row and ends after `endSilenceMs` unvoiced in a row.
 *
 * The noise floor is the minimum frame level over the last `floorWindowMs` (minimum statistics):
 * speech has pauses between syllables, so the minimum stays at the background, while a steady
 * noise becomes the floor within one window. The window starts filled with silence, so a caller
 * (or a test tone) speaking from the very first frame is heard; a loud steady noise from the first
 * frame counts as speech until the window has filled with it.
 */
export class EnergyVad {
  readonly #sampleRate: number;
  readonly #startMs: number;
  readonly #endSilenceMs: number;
  readonly #minSpeechMs: number;
  readonly #maxSpeechMs: number;
  readonly #aboveFloorDb: number;
  readonly #minLevelDbfs: number;
  readonly #levels: Float64Array;
  #levelIndex = 0;
  /**
   * min(#levels) and how many entries equal it, kept as levels come and go: the window is scanned
   * only when the last entry at the minimum leaves (every frame scanned it before).
   */
  #floor = SILENCE_DBFS;
  #floorCount = 0;
  #isSpeech = false;
  #voicedRunMs = 0;
  #sinceOnsetMs = 0;
  #speechMs = 0;
  #trailingMs = 0;
  #lastLevel = SILENCE_DBFS;

  constructor(options: VadOptions) {
    if (!(options.sampleRate > 0)) throw new TypeError(`invalid sampleRate ${options.sampleRate}`);
    this.#sampleRate = options.sampleRate;
    this.#startMs = options.startMs ?? 60;
    this.#endSilenceMs = options.endSilenceMs ?? 700;
    this.#minSpeechMs = options.minSpeechMs ?? 200;
    this.#maxSpeechMs = options.maxSpeechMs ?? 15_000;
    this.#aboveFloorDb = options.aboveFloorDb ?? 12;
    this.#minLevelDbfs = options.minLevelDbfs ?? -45;
    const windowFrames = Math.max(
      1,
      Math.round((options.floorWindowMs ?? 3000) / FLOOR_WINDOW_FRAME_MS),
    );
    this.#levels = new Float64Array(windowFrames).fill(SILENCE_DBFS);
    this.#floorCount = windowFrames;
  }

  get isSpeech(): boolean {
    return this.#isSpeech;
  }

  /** Current estimate of the background level, in dBFS. */
  get noiseFloorDbfs(): number {
    return this.#floor;
  }

  /** A frame must be louder than this to count as voiced. */
  get thresholdDbfs(): number {
    return Math.max(this.noiseFloorDbfs + this.#aboveFloorDb, this.#minLevelDbfs);
  }

  /** Level of the last frame, in dBFS. */
  get levelDbfs(): number {
    return this.#lastLevel;
  }

  /** Feeds one frame; returns the event it caused, if any. */
  process(frame: Int16Array): VadEvent | undefined {
    const ms = (frame.length * 1000) / this.#sampleRate;
    const level = frameDbfs(frame);
    const isVoiced = level > this.thresholdDbfs;
    this.#lastLevel = level;
    const levels = this.#levels;
    const leaving = levels[this.#levelIndex]!;
    levels[this.#levelIndex] = level;
    this.#levelIndex = (this.#levelIndex + 1) % levels.length;
    if (leaving === this.#floor) this.#floorCount--;
    if (level < this.#floor) {
      this.#floor = level;
      this.#floorCount = 1;
    } else if (level === this.#floor) {
      this.#floorCount++;
    } else if (this.#floorCount === 0) {
      let min = Infinity;
      let count = 0;
      for (let i = 0; i < levels.length; i++) {
        const v = levels[i]!;
        if (v < min) {
          min = v;
          count = 1;
        } else if (v === min) {
          count++;
        }
      }
      this.#floor = min;
      this.#floorCount = count;
    }

    if (!this.#isSpeech) {
      this.#voicedRunMs = isVoiced ? this.#voicedRunMs + ms : 0;
      if (this.#voicedRunMs < this.#startMs) return undefined;
      this.#isSpeech = true;
      this.#sinceOnsetMs = this.#voicedRunMs;
      this.#speechMs = this.#voicedRunMs;
      this.#trailingMs = 0;
      this.#voicedRunMs = 0;
      return { type: 'start' };
    }

    this.#sinceOnsetMs += ms;
    if (isVoiced) {
      this.#speechMs = this.#sinceOnsetMs;
      this.#trailingMs = 0;
    } else {
      this.#trailingMs += ms;
    }
    if (this.#trailingMs >= this.#endSilenceMs) {
      this.#isSpeech = false;
      const speechMs = this.#speechMs;
      const trailingMs = this.#trailingMs;
      if (speechMs < this.#minSpeechMs) return { type: 'discard', speechMs, trailingMs };
      return { type: 'end', reason: 'silence', speechMs, trailingMs };
    }
    if (this.#sinceOnsetMs >= this.#maxSpeechMs) {
      this.#isSpeech = false;
      return {
        type: 'end',
        reason: 'max-length',
        speechMs: this.#speechMs,
        trailingMs: this.#trailingMs,
      };
    }
    return undefined;
  }

  /** Back to "not speaking"; the noise floor is kept. */
  reset(): void {
    this.#isSpeech = false;
    this.#voicedRunMs = 0;
    this.#sinceOnsetMs = 0;
    this.#speechMs = 0;
    this.#trailingMs = 0;
  }
}
