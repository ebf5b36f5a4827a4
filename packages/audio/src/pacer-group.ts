import { AudioError } from './errors.js';
import type { PacerTick, PacerTimers } from './pacer.js';

export interface PacerGroupOptions {
  intervalMs?: number;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: () => number;
  timers?: PacerTimers;
}

/** One pacer of a group: the part of `Pacer` a Call uses. */
export interface GroupPacer {
  start(): void;
  stop(): void;
  readonly running: boolean;
  /** Ticks delivered since the last `start()`. */
  readonly ticks: number;
}

const defaultTimers: PacerTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

class Member implements GroupPacer {
  t0 = 0;
  nextTick = 0;
  due = 0;
  generation = 0;
  isRunning = false;
  /** Position in the group's heap, -1 when not in it, -2 while pending (started mid-turn). */
  slot = -1;

  constructor(
    readonly group: PacerGroup,
    readonly onTick: (info: PacerTick) => void,
  ) {}

  get running(): boolean {
    return this.isRunning;
  }

  get ticks(): number {
    return this.nextTick;
  }

  start(): void {
    if (this.isRunning) return;
    this.isRunning = true;
    this.generation++;
    this.group.startMember(this);
  }

  stop(): void {
    if (!this.isRunning) return;
    this.isRunning = false;
    this.generation++;
    this.group.stopMember(this);
  }
}

/**
 * Many pacers on one timer: each member keeps `Pacer`'s contract exactly (tick n due at
 * `t0 + n × intervalMs` from its own `start()`, delivered once due, late ticks delivered at once
 * and in order with their own `lateMs`, nothing skipped, the first tick on the next timer turn),
 * but a worker with hundreds of calls arms one timer for the earliest due tick of all of them
 * instead of one timer per call per frame. Members wait in a min-heap by due time; a timer turn
 * serves every member whose tick has come due, in due order.
 *
 * A member's `onTick` must not throw; a throw stops that member, the others are still served, and
 * the first error propagates from the timer callback once the group has re-armed.
 */
export class PacerGroup {
  readonly intervalMs: number;
  readonly #now: () => number;
  readonly #timers: PacerTimers;
  readonly #heap: Member[] = [];
  /** Members (re)started while the group was firing: they join the heap after that turn. */
  #pending: Member[] = [];
  #handle: unknown;
  /** Due time the armed timer is for (Infinity: none armed). */
  #armedFor = Infinity;
  #firing = false;

  constructor(options: PacerGroupOptions = {}) {
    const intervalMs = options.intervalMs ?? 20;
    if (!(intervalMs > 0) || !Number.isFinite(intervalMs)) {
      throw new AudioError('AUDIO_ERR_ARGUMENT', `invalid pacer interval ${intervalMs}`);
    }
    this.intervalMs = intervalMs;
    this.#now = options.now ?? (() => performance.now());
    this.#timers = options.timers ?? defaultTimers;
  }

  /** A new member pacer (stopped). */
  pacer(onTick: (info: PacerTick) => void): GroupPacer {
    return new Member(this, onTick);
  }

  /** Members currently running. */
  get size(): number {
    return this.#heap.length + this.#pending.length;
  }

  /** @internal */
  startMember(m: Member): void {
    m.t0 = this.#now();
    m.nextTick = 0;
    m.due = m.t0;
    if (this.#firing) {
      // Like Pacer: a start inside a tick gets its first tick on the next timer turn.
      m.slot = -2;
      this.#pending.push(m);
      return;
    }
    this.#push(m);
    this.#arm();
  }

  /** @internal */
  stopMember(m: Member): void {
    if (m.slot === -2) {
      this.#pending.splice(this.#pending.indexOf(m), 1);
      m.slot = -1;
      return;
    }
    this.#remove(m);
    if (this.#heap.length === 0 && !this.#firing) this.#disarm();
  }

  #fire(): void {
    this.#handle = undefined;
    this.#armedFor = Infinity;
    this.#firing = true;
    const now = this.#now();
    let failure: { err: unknown } | undefined;
    try {
      const heap = this.#heap;
      while (heap.length > 0 && heap[0]!.due <= now) {
        const m = heap[0]!;
        const generation = m.generation;
        const tick = m.nextTick++;
        const due = m.due;
        m.due = m.t0 + m.nextTick * this.intervalMs;
        // Re-place it first: onTick may stop (remove) or restart it.
        this.#siftDown(0);
        try {
          m.onTick({ tick, lateMs: now - due });
        } catch (err) {
          failure ??= { err };
          if (m.generation === generation) m.stop();
        }
      }
    } finally {
      this.#firing = false;
      const pending = this.#pending;
      if (pending.length > 0) {
        this.#pending = [];
        for (const m of pending) this.#push(m);
      }
      this.#arm();
    }
    if (failure) throw failure.err;
  }

  #arm(): void {
    const next = this.#heap[0];
    if (!next) {
      this.#disarm();
      return;
    }
    if (this.#handle !== undefined && this.#armedFor <= next.due) return;
    this.#disarm();
    this.#armedFor = next.due;
    this.#handle = this.#timers.setTimeout(() => this.#fire(), Math.max(0, next.due - this.#now()));
  }

  #disarm(): void {
    if (this.#handle !== undefined) {
      this.#timers.clearTimeout(this.#handle);
      this.#handle = undefined;
    }
    this.#armedFor = Infinity;
  }

  // ---- a binary min-heap on `due`, each member knowing its slot ----------------------------

  #push(m: Member): void {
    m.slot = this.#heap.length;
    this.#heap.push(m);
    this.#siftUp(m.slot);
  }

  #remove(m: Member): void {
    const i = m.slot;
    if (i < 0) return;
    const heap = this.#heap;
    const last = heap.pop()!;
    m.slot = -1;
    if (last === m) return;
    heap[i] = last;
    last.slot = i;
    this.#siftDown(i);
    this.#siftUp(last.slot);
  }

  #siftUp(i: number): void {
    const heap = this.#heap;
    const m = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p]!;
      if (parent.due <= m.due) break;
      heap[i] = parent;
      parent.slot = i;
      i = p;
    }
    heap[i] = m;
    m.slot = i;
  }

  #siftDown(i: number): void {
    const heap = this.#heap;
    const n = heap.length;
    if (i >= n) return;
    const m = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && heap[r]!.due < heap[l]!.due ? r : l;
      const child = heap[c]!;
      if (child.due >= m.due) break;
      heap[i] = child;
      child.slot = i;
      i = c;
    }
    heap[i] = m;
    m.slot = i;
  }
}
