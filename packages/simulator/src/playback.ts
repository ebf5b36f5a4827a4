/**
 * The simulated phone's speaker. Worker audio and marks queue up in arrival order; the caller's
 * 20 ms clock calls `playFrame()` once per tick, so audio plays in real time no matter how fast
 * the worker sends it, like Twilio's playback buffer. A mark is echoed when the audio queued before
 * it has played; `clear()` drops the buffer and echoes every pending mark at once. Twilio does
 * both, so a worker that waits for its marks sees the same timing here as on a real call.
 */
export interface PlaybackOptions {
  /** Samples in one 20 ms tick at the line rate (160 at 8 kHz). */
  samplesPerFrame: number;
  /**
   * Called when a mark is reached (`cleared: false`) or dropped by `clear()` (`cleared: true`).
   * `samplesPlayed` already counts the audio before it.
   */
  onMark?: (name: string, cleared: boolean) => void;
}

type QueueEntry =
  { kind: 'audio'; pcm: Int16Array; offset: number } | { kind: 'mark'; name: string };

export class Playback {
  readonly samplesPerFrame: number;
  readonly #onMark: (name: string, cleared: boolean) => void;
  #queue: QueueEntry[] = [];
  #head = 0;
  #bufferedSamples = 0;
  #samplesPlayed = 0;
  #framesPlayed = 0;

  constructor(options: PlaybackOptions) {
    if (!Number.isInteger(options.samplesPerFrame) || options.samplesPerFrame <= 0) {
      throw new TypeError(`samplesPerFrame must be a positive integer`);
    }
    this.samplesPerFrame = options.samplesPerFrame;
    this.#onMark = options.onMark ?? (() => {});
  }

  /** Worker audio waiting to be played, in samples. */
  get bufferedSamples(): number {
    return this.#bufferedSamples;
  }

  /** Worker audio played so far, in samples (underrun silence not counted). */
  get samplesPlayed(): number {
    return this.#samplesPlayed;
  }

  /** Ticks played so far, including ticks of silence. */
  get framesPlayed(): number {
    return this.#framesPlayed;
  }

  /** Marks queued and not yet echoed. */
  get pendingMarks(): number {
    let n = 0;
    for (let i = this.#head; i < this.#queue.length; i++) if (this.#queue[i]?.kind === 'mark') n++;
    return n;
  }

  enqueueAudio(pcm: Int16Array): void {
    if (pcm.length === 0) return;
    this.#queue.push({ kind: 'audio', pcm, offset: 0 });
    this.#bufferedSamples += pcm.length;
  }

  /** Queues a mark behind the buffered audio; with nothing ahead of it, it is echoed at once. */
  enqueueMark(name: string): void {
    this.#queue.push({ kind: 'mark', name });
    this.#echoReachedMarks();
  }

  /**
   * Plays one tick: returns the `samplesPerFrame` samples the caller hears (zero-padded on
   * underrun) and echoes every mark reached during it.
   */
  playFrame(): Int16Array {
    const frame = new Int16Array(this.samplesPerFrame);
    let filled = 0;
    this.#echoReachedMarks();
    while (filled < frame.length && this.#head < this.#queue.length) {
      const entry = this.#queue[this.#head];
      if (entry === undefined) break;
      if (entry.kind === 'mark') {
        this.#head++;
        this.#onMark(entry.name, false);
        continue;
      }
      const take = Math.min(frame.length - filled, entry.pcm.length - entry.offset);
      frame.set(entry.pcm.subarray(entry.offset, entry.offset + take), filled);
      filled += take;
      entry.offset += take;
      this.#bufferedSamples -= take;
      this.#samplesPlayed += take;
      if (entry.offset === entry.pcm.length) this.#head++;
    }
    // Marks right behind the last played sample have been reached too.
    this.#echoReachedMarks();
    this.#framesPlayed++;
    this.#compact();
    return frame;
  }

  /** Drops all buffered audio and echoes every pending mark, in order. Returns what was dropped. */
  clear(): { droppedSamples: number; marks: string[] } {
    const droppedSamples = this.#bufferedSamples;
    const marks: string[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const entry = this.#queue[i];
      if (entry?.kind === 'mark') marks.push(entry.name);
    }
    this.#queue = [];
    this.#head = 0;
    this.#bufferedSamples = 0;
    for (const name of marks) this.#onMark(name, true);
    return { droppedSamples, marks };
  }

  /**
   * Drops all buffered audio and pending marks without echoing them: the stream they belong to has
   * ended (Twilio echoes marks on the stream that sent them, never on a later one).
   */
  reset(): { droppedSamples: number; droppedMarks: number } {
    const droppedSamples = this.#bufferedSamples;
    const droppedMarks = this.pendingMarks;
    this.#queue = [];
    this.#head = 0;
    this.#bufferedSamples = 0;
    return { droppedSamples, droppedMarks };
  }

  #echoReachedMarks(): void {
    for (;;) {
      const entry = this.#queue[this.#head];
      if (entry?.kind !== 'mark') return;
      this.#head++;
      this.#onMark(entry.name, false);
    }
  }

  // Amortized O(1) dequeue: drop consumed entries once they are half the array.
  #compact(): void {
    if (this.#head > 64 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}
