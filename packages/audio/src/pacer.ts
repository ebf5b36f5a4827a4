import { AudioError } from './errors.js';

export interface PacerTick {
  /** 0 for the first tick after `start()`, then 1, 2, … with no gaps. */
  tick: number;
  /** How long after its due time (`t0 + tick × intervalMs`) the tick was delivered, ≥ 0. */
  lateMs: number;
}

/** Timer functions, injectable so tests can drive the pacer with a fake clock. */
export interface PacerTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export interface PacerOptions {
  intervalMs?: number;
  /** Must not throw; a throw stops the pacer and propagates from the timer callback. */
  onTick(info: PacerTick): void;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: () => number;
  timers?: PacerTimers;
}

const defaultTimers: PacerTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/**
 * Calls `onTick` every `intervalMs` against an absolute clock: tick n is due at `t0 + n × intervalMs`
 * where `t0` is the `start()` time, and each timer is armed for the next due time, so timer lateness
 * never accumulates into drift (a chain of relative `setTimeout(20)` drifts and under-runs).
 *
 * Falling behind: when a timer fires late (event-loop stall, GC), every tick that has come due is
 * delivered at once, in order, each with its own `lateMs`. Nothing is skipped, so the number of
 * ticks always matches elapsed time and the audio clock stays exact; the receiver (Twilio) buffers a
 * short burst. The first tick is due at `t0` (delivered on the next timer turn).
 */
export class Pacer {
  readonly intervalMs: number;
  readonly #onTick: (info: PacerTick) => void;
  readonly #now: () => number;
  readonly #timers: PacerTimers;
  #t0 = 0;
  #nextTick = 0;
  #handle: unknown;
  #running = false;
  #generation = 0;

  constructor(options: PacerOptions) {
    const intervalMs = options.intervalMs ?? 20;
    if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) {
      throw new AudioError('AUDIO_ERR_ARGUMENT', `invalid pacer interval ${intervalMs}`);
    }
    this.intervalMs = intervalMs;
    this.#onTick = options.onTick;
    this.#now = options.now ?? (() => performance.now());
    this.#timers = options.timers ?? defaultTimers;
  }

  get running(): boolean {
    return this.#running;
  }

  /** Ticks delivered since the last `start()`. */
  get ticks(): number {
    return this.#nextTick;
  }

  /** Starts ticking from now; a no-op while running. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#generation++;
    this.#t0 = this.#now();
    this.#nextTick = 0;
    this.#arm();
  }

  /** Stops ticking and clears the pending timer; safe to call from inside `onTick`. */
  stop(): void {
    if (!this.#running) return;
    this.#running = false;
    this.#generation++;
    if (this.#handle !== undefined) {
      this.#timers.clearTimeout(this.#handle);
      this.#handle = undefined;
    }
  }

  #arm(): void {
    const due = this.#t0 + this.#nextTick * this.intervalMs;
    const delay = Math.max(0, due - this.#now());
    const generation = this.#generation;
    this.#handle = this.#timers.setTimeout(() => this.#fire(generation), delay);
  }

  #fire(generation: number): void {
    // A timer that a fake or real clock fires after stop()/restart belongs to an old run.
    if (generation !== this.#generation || !this.#running) return;
    this.#handle = undefined;
    const now = this.#now();
    try {
      while (this.#running && generation === this.#generation) {
        const due = this.#t0 + this.#nextTick * this.intervalMs;
        if (due > now) break;
        const tick = this.#nextTick++;
        this.#onTick({ tick, lateMs: now - due });
      }
    } catch (err) {
      this.stop();
      throw err;
    }
    if (this.#running && generation === this.#generation) this.#arm();
  }
}
