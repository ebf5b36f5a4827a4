import { createResampler, frameSamples, type PcmResampler } from '@callgate/audio';

export const FRAME_MS = 20;

/** One step of the outbound queue: a 20 ms frame at the transport rate, or an utterance's mark. */
export type PlaybackItem =
  | { readonly kind: 'frame'; readonly frame: Int16Array }
  | { readonly kind: 'mark'; readonly utteranceId: string };

/** What became of a mark echo. */
export type MarkOutcome = 'played' | 'cleared' | 'unknown';

export interface PlaybackOptions {
  callId: string;
  agentRate: number;
  transportRate: number;
  maxQueuedMs: number;
}

export interface SayResult {
  utteranceId: string;
  /** True when this piece opened a new utterance. */
  isNew: boolean;
  /** Audio of this piece that did not fit under `maxQueuedMs`. */
  droppedMs: number;
}

// Marks of cleared utterances whose echo never came (transports that do not echo on clear) are
// forgotten oldest-first past this many, so a long call cannot grow the set without bound.
const MAX_REMEMBERED_CLEARED = 1000;

/**
 * Whole frames of one `say()` piece at the transport rate, in one array; `next` is the sample
 * offset of the first frame not yet taken. One array per piece instead of one per frame: a
 * 20 ms array costs V8 about as much bookkeeping again as its 320 bytes of samples (an
 * ArrayBuffer, its backing store and their trackers), and a queued utterance lives long enough
 * to reach the old generation, where it waits for a full GC after playing.
 */
interface Run {
  readonly kind: 'run';
  readonly pcm: Int16Array;
  next: number;
}

type QueueEntry = Run | { readonly kind: 'mark'; readonly utteranceId: string };

/**
 * The outbound queue of one call: utterances at the agent's rate go in, 20 ms frames at the
 * transport's rate and marks come out, in order. It also tracks each utterance's mark from
 * "queued" through "sent" to "acked" (played) or "cleared". Pure bookkeeping: no timers and
 * no I/O; the Call paces it and talks to the transport.
 *
 * A frame handed out is a view into its piece's array (a piece said with `say()` is copied in
 * once, at the transport rate): do not write into it.
 */
export class Playback {
  readonly #callId: string;
  readonly #maxQueuedFrames: number;
  readonly #resampler: PcmResampler | undefined;
  readonly #samplesPerFrame: number;
  /** Samples of a frame not yet complete (the end of the last piece), `#pendingLength` of them. */
  #pending: Int16Array | undefined;
  #pendingLength = 0;
  #entries: (QueueEntry | undefined)[] = [];
  #head = 0;
  /** What `peek()` returned for the head entry, so a peek and a take agree. */
  #peeked: PlaybackItem | undefined;
  #queuedFrames = 0;
  #nextUtterance = 1;
  #open: string | undefined;
  /** Said, mark not yet sent (includes the open utterance). */
  readonly #unmarked = new Set<string>();
  /** Mark sent, echo not yet received: when it was sent (`performance.now()`), oldest first. */
  readonly #awaitingEcho = new Map<string, number>();
  /** Mark sent, then cleared; Twilio still echoes it. */
  readonly #cleared = new Set<string>();

  constructor(options: PlaybackOptions) {
    this.#callId = options.callId;
    this.#maxQueuedFrames = Math.max(0, Math.floor(options.maxQueuedMs / FRAME_MS));
    this.#resampler =
      options.agentRate === options.transportRate
        ? undefined
        : createResampler(options.agentRate, options.transportRate);
    this.#samplesPerFrame = frameSamples(options.transportRate, FRAME_MS);
  }

  /** True while an utterance is open, queued, or sent and not yet acked. */
  get isSpeaking(): boolean {
    return this.#unmarked.size > 0 || this.#awaitingEcho.size > 0;
  }

  /** True when nothing is waiting to be sent. */
  get isEmpty(): boolean {
    return this.#head >= this.#entries.length;
  }

  /** Whole frames waiting to be sent, in milliseconds. */
  get queuedMs(): number {
    return this.#queuedFrames * FRAME_MS;
  }

  /** Id the next new utterance will get (for `say` after the call ended). */
  nextUtteranceId(): string {
    return `${this.#callId}-u${this.#nextUtterance++}`;
  }

  /**
   * Appends one piece of agent audio. `final` closes the utterance: the last partial frame is
   * zero-padded and the utterance's mark is queued behind it.
   */
  say(pcm: Int16Array, final: boolean): SayResult {
    let isNew = false;
    if (this.#open === undefined) {
      this.#open = this.nextUtteranceId();
      this.#unmarked.add(this.#open);
      isNew = true;
    }
    const utteranceId = this.#open;
    let droppedFrames = 0;
    if (this.#resampler) {
      // The resampler's output is a fresh array nobody else holds: it may become a run as is.
      droppedFrames += this.#append(this.#resampler.process(pcm), true);
      // The filter holds the last few milliseconds (its group delay); release them with the
      // utterance instead of leaking them into the start of the next one.
      if (final) droppedFrames += this.#append(this.#resampler.flush(), true);
    } else {
      droppedFrames += this.#append(pcm, false);
    }
    if (final) {
      if (this.#pendingLength > 0) {
        // The last partial frame, zero-padded.
        const last = new Int16Array(this.#samplesPerFrame);
        last.set(this.#pending!.subarray(0, this.#pendingLength));
        this.#pendingLength = 0;
        droppedFrames += this.#enqueue(last, 1);
      }
      this.#entries.push({ kind: 'mark', utteranceId });
      this.#open = undefined;
    }
    return { utteranceId, isNew, droppedMs: droppedFrames * FRAME_MS };
  }

  /**
   * Adds samples after the pending ones: every frame they complete is queued (while under
   * `maxQueuedMs`, the rest dropped), the remainder is kept pending. Returns the frames dropped.
   */
  #append(pcm: Int16Array, owned: boolean): number {
    const size = this.#samplesPerFrame;
    const pendingLength = this.#pendingLength;
    const total = pendingLength + pcm.length;
    const frames = Math.floor(total / size);
    const used = frames * size - pendingLength; // samples of `pcm` in those frames
    const room = Math.max(0, this.#maxQueuedFrames - this.#queuedFrames);
    const kept = Math.min(frames, room);
    if (kept > 0) {
      let run: Int16Array;
      if (owned && pendingLength === 0 && kept === frames && used === pcm.length) {
        run = pcm;
      } else {
        run = new Int16Array(kept * size);
        if (pendingLength > 0) run.set(this.#pending!.subarray(0, pendingLength));
        run.set(pcm.subarray(0, kept * size - pendingLength), pendingLength);
      }
      this.#enqueue(run, kept);
    }
    if (frames > 0) this.#pendingLength = 0;
    const rest = pcm.length - (frames > 0 ? used : 0);
    if (rest > 0) {
      this.#pending ??= new Int16Array(size);
      this.#pending.set(pcm.subarray(pcm.length - rest), this.#pendingLength);
      this.#pendingLength += rest;
    }
    return frames - kept;
  }

  /** Queues `frames` whole frames (all of `pcm`), or drops them when the queue is full. */
  #enqueue(pcm: Int16Array, frames: number): number {
    if (this.#queuedFrames + frames > this.#maxQueuedFrames) return frames;
    this.#entries.push({ kind: 'run', pcm, next: 0 });
    this.#queuedFrames += frames;
    return 0;
  }

  /** The next item without taking it. */
  peek(): PlaybackItem | undefined {
    if (this.#peeked) return this.#peeked;
    const entry = this.#entries[this.#head];
    if (!entry) return undefined;
    if (entry.kind === 'mark') {
      this.#peeked = entry;
    } else {
      const { pcm, next } = entry;
      const size = this.#samplesPerFrame;
      const frame = pcm.length === size ? pcm : pcm.subarray(next, next + size);
      this.#peeked = { kind: 'frame', frame };
    }
    return this.#peeked;
  }

  /** Takes the next item; a mark moves its utterance to "sent, awaiting echo". */
  take(): PlaybackItem | undefined {
    const item = this.peek();
    if (!item) return undefined;
    this.#peeked = undefined;
    const entry = this.#entries[this.#head]!;
    if (entry.kind === 'run') {
      this.#queuedFrames--;
      entry.next += this.#samplesPerFrame;
      if (entry.next >= entry.pcm.length) this.#advance();
    } else {
      this.#advance();
      this.#unmarked.delete(entry.utteranceId);
      this.#awaitingEcho.set(entry.utteranceId, performance.now());
    }
    return item;
  }

  /** Drops the head entry: nothing keeps what was sent alive. */
  #advance(): void {
    const entries = this.#entries;
    entries[this.#head++] = undefined;
    if (this.#head >= entries.length) {
      entries.length = 0;
      this.#head = 0;
    } else if (this.#head > 64 && this.#head * 2 > entries.length) {
      this.#entries = entries.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * How long the oldest sent mark has waited for its echo (ms), or undefined when none waits.
   * Marks go out right behind their audio, a moment ahead of real time, so a caller that reads
   * and plays its audio echoes each within a fraction of a second: a long wait is a stuck reader.
   */
  oldestAckWaitMs(now: number = performance.now()): number | undefined {
    for (const sentAt of this.#awaitingEcho.values()) return now - sentAt;
    return undefined;
  }

  /** Classifies a mark echo and forgets the utterance. */
  markAcked(name: string): MarkOutcome {
    if (this.#awaitingEcho.delete(name)) return 'played';
    if (this.#cleared.delete(name)) return 'cleared';
    return 'unknown';
  }

  /**
   * Barge-in: drops every queued frame and mark and the open utterance, and resets the
   * resampler (stale filter history would click into the next utterance). Utterances whose mark
   * already went out are remembered as cleared, so their echo is not mistaken for "played".
   * Returns how many sent marks were cleared.
   */
  clear(): number {
    this.#entries = [];
    this.#head = 0;
    this.#peeked = undefined;
    this.#queuedFrames = 0;
    this.#open = undefined;
    this.#unmarked.clear();
    this.#pendingLength = 0;
    this.#resampler?.reset();
    const cleared = this.#awaitingEcho.size;
    for (const id of this.#awaitingEcho.keys()) this.#cleared.add(id);
    this.#awaitingEcho.clear();
    while (this.#cleared.size > MAX_REMEMBERED_CLEARED) {
      const oldest = this.#cleared.values().next().value as string;
      this.#cleared.delete(oldest);
    }
    return cleared;
  }

  /** Samples at the transport rate held back until the next frame completes. */
  get pendingSamples(): number {
    return this.#pendingLength;
  }
}
