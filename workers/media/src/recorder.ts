import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WavFileWriter } from '@callgate/audio';

export interface CallRecorderOptions {
  dir: string;
  callSid: string;
  streamSid: string;
  /**
   * Names one segment of a call that has several streams (a call the proxy moved between
   * workers): the files become `<callSid>-<streamSid>-<segment>.wav/.json`. Default: none.
   */
  segment?: string;
  /**
   * Place caller frames relative to the first one's arrival instead of at `media.timestamp` from
   * this recording's start: a resumed stream's timestamps count from the start of the call, not
   * of this segment. The offset is reported as `callerTimestampOffsetMs`. Default false.
   */
  rebaseTimestamps?: boolean;
  /** The call's line rate; the WAV is written at this rate (8000 for Twilio). */
  sampleRate: number;
  /** Milliseconds clock for the agent side's timeline; default `performance.now`. */
  clock?: () => number;
  /** Late caller frames are still placed this far behind the wall clock; default 2000. */
  lookbackMs?: number;
  /** How much of the timeline is handed to the WAV writer at a time; default 1000. */
  chunkMs?: number;
  /** The writer's disk flush interval; default 1000. */
  flushIntervalMs?: number;
  /** Called once, with the first write error; the recording stops, the call goes on. */
  onError?: (err: Error) => void;
}

// A caller timestamp may run ahead of our clock by network bunching, never by more than this:
// a forged `media.timestamp` must not make the file grow faster than real time.
const MAX_CALLER_AHEAD_MS = 2000;
// Paced frames are contiguous when they arrive within this of the previous one's end.
const ARRIVAL_CONTIGUOUS_MS = 60;

/**
 * `<callSid>-<streamSid>` made safe for any file system; with a segment (a resumed stream of the
 * call), `<callSid>-<streamSid>-<segment>`.
 */
export function recordingBaseName(callSid: string, streamSid: string, segment?: string): string {
  const base = `${safeName(callSid)}-${safeName(streamSid)}`;
  return segment === undefined ? base : `${base}-${safeName(segment)}`;
}

function safeName(value: string): string {
  const cleaned = value.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  return cleaned === '' ? 'unknown' : cleaned;
}

/**
 * One call's recording: a stereo PCM16 WAV (caller left, agent right) on one timeline, and a JSON
 * summary written at the end. Caller frames are placed by `media.timestamp`, agent frames at the
 * time they were sent, back to back (the playback lead sends a few ahead of time; a clear erases
 * those, as the caller never heard them); holes are silence. Samples are buffered a little (`lookbackMs`) so late
 * caller frames still land in place, then handed to `WavFileWriter`, whose header on disk always
 * matches its data: a worker killed mid-call leaves a playable file missing at most the last
 * couple of seconds.
 *
 * Write errors are kept, not thrown: the call matters more than its recording. The first one goes
 * to `onError`; `close()` always resolves.
 */
export class CallRecorder {
  readonly wavPath: string;
  readonly jsonPath: string;
  readonly sampleRate: number;
  #writer: WavFileWriter | undefined;
  readonly #opening: Promise<void>;
  readonly #clock: () => number;
  readonly #t0: number;
  readonly #lookback: number;
  readonly #chunk: number;
  readonly #timer: NodeJS.Timeout;
  readonly #onError: ((err: Error) => void) | undefined;
  readonly #rebase: boolean;
  /** With `rebaseTimestamps`: timestamp samples minus timeline samples, from the first frame. */
  #tsOffset: number | undefined;
  /** Absolute sample index of `#caller[0]` / `#agent[0]`: everything before it is in the writer. */
  #base = 0;
  /** Samples of the pending window that were written to (either side). */
  #used = 0;
  #caller: Int16Array;
  #agent: Int16Array;
  #agentEnd = 0;
  #callerEnd = 0;
  #lateSamples = 0;
  #error: Error | undefined;
  #closing: Promise<void> | undefined;

  private constructor(options: CallRecorderOptions) {
    const base = recordingBaseName(options.callSid, options.streamSid, options.segment);
    this.#rebase = options.rebaseTimestamps === true;
    this.sampleRate = options.sampleRate;
    this.wavPath = join(options.dir, `${base}.wav`);
    this.jsonPath = join(options.dir, `${base}.json`);
    this.#onError = options.onError;
    this.#clock = options.clock ?? (() => performance.now());
    this.#t0 = this.#clock();
    this.#lookback = Math.round(((options.lookbackMs ?? 2000) * options.sampleRate) / 1000);
    this.#chunk = Math.round(((options.chunkMs ?? 1000) * options.sampleRate) / 1000);
    const capacity = this.#lookback + 2 * this.#chunk;
    this.#caller = new Int16Array(capacity);
    this.#agent = new Int16Array(capacity);
    // Keeps the file growing through silence, so a killed worker leaves the call's real length.
    this.#timer = setInterval(() => this.#advance(), options.chunkMs ?? 1000);
    this.#timer.unref();
    this.#opening = WavFileWriter.open(this.wavPath, {
      sampleRate: options.sampleRate,
      channels: 2,
      flushIntervalMs: options.flushIntervalMs ?? 1000,
    }).then(
      (writer) => {
        this.#writer = writer;
        this.#advance();
      },
      (err: unknown) => this.#fail(err),
    );
  }

  /**
   * Starts a recording: the timeline starts now; `<dir>/<callSid>-<streamSid>.wav` (names
   * sanitized) is created in the background with a valid empty header, and audio written before
   * it is open waits in memory.
   */
  static start(options: CallRecorderOptions): CallRecorder {
    return new CallRecorder(options);
  }

  /**
   * Caller audio. With `timestampMs` (Twilio's `media.timestamp`) it goes to that place on the
   * stream's timeline; without (SansPBX has none) it follows the previous caller frame, or lands at
   * the current time after a pause.
   */
  writeCaller(pcm: Int16Array, timestampMs?: number): void {
    if (this.#closing || this.#error) return;
    const now = this.#nowSamples();
    let pos: number;
    if (timestampMs === undefined) {
      pos = this.#arrivalPosition(this.#callerEnd, now);
    } else {
      pos = Math.round((timestampMs * this.sampleRate) / 1000);
      if (this.#rebase && Number.isFinite(pos)) {
        this.#tsOffset ??= pos - now;
        pos -= this.#tsOffset;
      }
      const maxAhead = now + Math.round((MAX_CALLER_AHEAD_MS * this.sampleRate) / 1000);
      if (!(pos <= maxAhead)) pos = maxAhead; // also catches NaN
    }
    this.#place('caller', pcm, pos);
    this.#callerEnd = pos + pcm.length;
    this.#advance(now);
  }

  /** Agent audio just sent to the caller. */
  writeAgent(pcm: Int16Array): void {
    if (this.#closing || this.#error) return;
    const now = this.#nowSamples();
    const pos = this.#arrivalPosition(this.#agentEnd, now);
    this.#place('agent', pcm, pos);
    this.#agentEnd = pos + pcm.length;
    this.#advance(now);
  }

  /**
   * The agent's audio was cleared (barge-in): the caller's side dropped what it had buffered, so
   * agent audio placed after now (sent ahead by the playback lead) was never heard and is erased.
   */
  agentCleared(): void {
    if (this.#closing || this.#error) return;
    const now = this.#nowSamples();
    if (this.#agentEnd <= now) return;
    const from = Math.max(0, now - this.#base);
    const to = Math.min(this.#agent.length, this.#agentEnd - this.#base);
    if (to > from) this.#agent.fill(0, from, to);
    this.#agentEnd = now;
  }

  /** Paced frames are contiguous; after a pause the next one starts at the current time. */
  #arrivalPosition(end: number, now: number): number {
    const contiguous = Math.round((ARRIVAL_CONTIGUOUS_MS * this.sampleRate) / 1000);
    return end >= now - contiguous ? end : now;
  }

  /** Samples that came too late for their place on the timeline and were dropped. */
  get lateSamples(): number {
    return this.#lateSamples;
  }

  /**
   * With `rebaseTimestamps`, the caller's `media.timestamp` at this recording's time 0 (ms), once
   * a timestamped frame came; undefined otherwise.
   */
  get callerTimestampOffsetMs(): number | undefined {
    if (this.#tsOffset === undefined) return undefined;
    return Math.round((this.#tsOffset * 1000) / this.sampleRate);
  }

  get failed(): Error | undefined {
    return this.#error;
  }

  /**
   * Writes everything up to now, closes the WAV, then writes the JSON summary (atomically, via a
   * rename). Never rejects (errors go to `onError`). Idempotent: returns the same promise.
   */
  close(summary: Record<string, unknown>): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#timer);
      const end = Math.max(this.#base + this.#used, this.#nowSamples());
      await this.#opening;
      const writer = this.#writer;
      if (writer) {
        if (!this.#error) this.#flushTo(writer, end);
        try {
          await writer.close();
        } catch (err) {
          this.#fail(err);
        }
      }
      const text = JSON.stringify(
        {
          ...summary,
          recording: {
            wav: this.wavPath,
            sampleRate: this.sampleRate,
            channels: ['caller', 'agent'],
            lateSamples: this.#lateSamples,
            error: this.#error?.message,
          },
        },
        null,
        2,
      );
      const tmp = `${this.jsonPath}.tmp`;
      try {
        await writeFile(tmp, text + '\n');
        await rename(tmp, this.jsonPath);
      } catch (err) {
        this.#fail(err);
      }
    })();
    return this.#closing;
  }

  #fail(err: unknown): void {
    if (this.#error) return;
    this.#error = err instanceof Error ? err : new Error(String(err));
    clearInterval(this.#timer);
    try {
      this.#onError?.(this.#error);
    } catch {
      // The owner's reporting failing must not break the call either.
    }
  }

  #nowSamples(): number {
    return Math.max(0, Math.round(((this.#clock() - this.#t0) * this.sampleRate) / 1000));
  }

  #place(side: 'caller' | 'agent', pcm: Int16Array, pos: number): void {
    let src = pcm;
    let at = pos - this.#base;
    if (at < 0) {
      // Older than what is already in the file: keep only the part still pending.
      this.#lateSamples += Math.min(-at, pcm.length);
      if (-at >= pcm.length) return;
      src = pcm.subarray(-at);
      at = 0;
    }
    this.#ensure(at + src.length); // may replace the arrays, so pick the side after it
    (side === 'caller' ? this.#caller : this.#agent).set(src, at);
    this.#used = Math.max(this.#used, at + src.length);
  }

  #ensure(length: number): void {
    if (length <= this.#caller.length) return;
    let capacity = this.#caller.length * 2;
    while (capacity < length) capacity *= 2;
    const caller = new Int16Array(capacity);
    caller.set(this.#caller);
    const agent = new Int16Array(capacity);
    agent.set(this.#agent);
    this.#caller = caller;
    this.#agent = agent;
  }

  /** Hands whole chunks older than the look-back window to the writer. */
  #advance(now = this.#nowSamples()): void {
    const writer = this.#writer;
    if (!writer || this.#closing || this.#error) return;
    const target = now - this.#lookback;
    if (target - this.#base >= this.#chunk) this.#flushTo(writer, target);
  }

  #flushTo(writer: WavFileWriter, end: number): void {
    while (this.#base < end && !this.#error) {
      const n = Math.min(end - this.#base, this.#chunk);
      this.#ensure(n);
      const interleaved = new Int16Array(2 * n);
      for (let i = 0; i < n; i++) {
        interleaved[2 * i] = this.#caller[i]!;
        interleaved[2 * i + 1] = this.#agent[i]!;
      }
      try {
        writer.write(interleaved);
      } catch (err) {
        this.#fail(err);
        return;
      }
      // Slide the window: what is left moves to the front, the freed tail becomes silence.
      const rest = Math.max(0, this.#used - n);
      this.#caller.copyWithin(0, n, n + rest);
      this.#agent.copyWithin(0, n, n + rest);
      this.#caller.fill(0, rest);
      this.#agent.fill(0, rest);
      this.#used = rest;
      this.#base += n;
    }
  }
}
