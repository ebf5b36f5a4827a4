import { Framer, createResampler, frameSamples, type PcmResampler } from '@callgate/audio';

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
 * The outbound queue of one call: utterances at the agent's rate go in, 20 ms frames at the
 * transport's rate and marks come out, in order. It also tracks each utterance's mark from
 * "queued" through "sent" to "echoed" (played) or "cleared". Pure bookkeeping: no timers and
 * no I/O; the Call paces it and talks to the transport.
 */
export class Playback {
  readonly #callId: string;
  readonly #maxQueuedFrames: number;
  readonly #resampler: PcmResampler | undefined;
  readonly #framer: Framer;
  #items: PlaybackItem[] = [];
  #head = 0;
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
    this.#framer = new Framer(frameSamples(options.transportRate, FRAME_MS));
  }

  /** True while an utterance is open, queued, or sent and not yet echoed. */
  get isSpeaking(): boolean {
    return this.#unmarked.size > 0 || this.#awaitingEcho.size > 0;
  }

  /** True when nothing is waiting to be sent. */
  get isEmpty(): boolean {
    return this.#head >= this.#items.length;
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
    const enqueue = (frames: Iterable<Int16Array>): void => {
      for (const frame of frames) {
        if (this.#queuedFrames >= this.#maxQueuedFrames) {
          droppedFrames++;
          continue;
        }
        this.#items.push({ kind: 'frame', frame });
        this.#queuedFrames++;
      }
    };
    const atTransportRate = this.#resampler ? this.#resampler.process(pcm) : pcm;
    enqueue(this.#framer.push(atTransportRate));
    if (final) {
      // The filter holds the last few milliseconds (its group delay); release them with the
      // utterance instead of leaking them into the start of the next one.
      if (this.#resampler) enqueue(this.#framer.push(this.#resampler.flush()));
      const last = this.#framer.flush();
      if (last) enqueue([last]);
      this.#items.push({ kind: 'mark', utteranceId });
      this.#open = undefined;
    }
    return { utteranceId, isNew, droppedMs: droppedFrames * FRAME_MS };
  }

  /** The next item without taking it. */
  peek(): PlaybackItem | undefined {
    return this.#items[this.#head];
  }

  /** Takes the next item; a mark moves its utterance to "sent, awaiting echo". */
  take(): PlaybackItem | undefined {
    const item = this.#items[this.#head];
    if (!item) return undefined;
    this.#head++;
    if (this.#head > 256 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    if (item.kind === 'frame') {
      this.#queuedFrames--;
    } else {
      this.#unmarked.delete(item.utteranceId);
      this.#awaitingEcho.set(item.utteranceId, performance.now());
    }
    return item;
  }

  /**
   * How long the oldest sent mark has waited for its echo (ms), or undefined when none waits.
   * Marks go out right behind their audio, a moment ahead of real time, so a caller that reads
   * and plays its audio echoes each within a fraction of a second: a long wait is a stuck reader.
   */
  oldestEchoWaitMs(now: number = performance.now()): number | undefined {
    for (const sentAt of this.#awaitingEcho.values()) return now - sentAt;
    return undefined;
  }

  /** Classifies a mark echo and forgets the utterance. */
  markEchoed(name: string): MarkOutcome {
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
    this.#items = [];
    this.#head = 0;
    this.#queuedFrames = 0;
    this.#open = undefined;
    this.#unmarked.clear();
    this.#framer.reset();
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
    return this.#framer.pendingSamples;
  }
}
