import { describe, expect, it, onTestFinished } from 'vitest';
import { Pacer, type PacerTick, type PacerTimers } from '../src/index.js';

/** A fake monotonic clock and timer queue; `advance()` fires due timers in order. */
class FakeClock implements PacerTimers {
  time = 1000;
  #nextId = 1;
  readonly pending = new Map<number, { at: number; callback: () => void }>();

  now = (): number => this.time;

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.pending.set(id, { at: this.time + Math.max(0, ms), callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }

  /** Moves time to `to`, firing each due timer at its own due time, or `lateBy` ms after it. */
  advanceTo(to: number, lateBy = 0): void {
    for (;;) {
      let next: [number, { at: number; callback: () => void }] | undefined;
      for (const entry of this.pending) if (!next || entry[1].at < next[1].at) next = entry;
      if (!next || next[1].at + lateBy > to) break;
      this.pending.delete(next[0]);
      this.time = Math.max(this.time, next[1].at + lateBy);
      next[1].callback();
    }
    this.time = Math.max(this.time, to);
  }
}

function fakePacer(intervalMs = 20): { clock: FakeClock; pacer: Pacer; ticks: PacerTick[] } {
  const clock = new FakeClock();
  const ticks: PacerTick[] = [];
  const pacer = new Pacer({
    intervalMs,
    onTick: (t) => ticks.push(t),
    now: clock.now,
    timers: clock,
  });
  return { clock, pacer, ticks };
}

describe('Pacer', () => {
  it('ticks at t0 + n × interval with no lateness on a punctual clock', () => {
    const { clock, pacer, ticks } = fakePacer();
    pacer.start();
    clock.advanceTo(1000 + 100);
    expect(ticks).toEqual([0, 1, 2, 3, 4, 5].map((tick) => ({ tick, lateMs: 0 })));
    pacer.stop();
  });

  it.each([
    ['3 ms late timers', 3],
    ['19 ms late timers', 19],
  ])('does not drift with %s', (_name, lateBy) => {
    const { clock, pacer, ticks } = fakePacer();
    pacer.start();
    clock.advanceTo(1000 + 10_000, lateBy);
    // With relative timers 500 ticks at (20 + lateBy) ms would fall far short of 10 s worth.
    expect(ticks.length).toBeGreaterThanOrEqual(500);
    ticks.forEach((t, i) => expect(t.tick).toBe(i));
    for (const t of ticks) expect(t.lateMs).toBeLessThanOrEqual(lateBy);
    pacer.stop();
  });

  it('catches up after a stall by delivering every missed tick at once, in order', () => {
    const { clock, pacer, ticks } = fakePacer();
    pacer.start();
    clock.advanceTo(1040); // ticks 0, 1, 2
    expect(ticks.map((t) => t.tick)).toEqual([0, 1, 2]);
    // The event loop stalls: the timer for tick 3 (due 1060) only fires at 1135.
    const [, entry] = [...clock.pending][0]!;
    clock.pending.clear();
    clock.time = 1135;
    entry.callback();
    expect(ticks.slice(3)).toEqual([
      { tick: 3, lateMs: 75 },
      { tick: 4, lateMs: 55 },
      { tick: 5, lateMs: 35 },
      { tick: 6, lateMs: 15 },
    ]);
    // Back on schedule: tick 7 is due at 1140, armed for 5 ms from now.
    expect([...clock.pending.values()][0]!.at).toBe(1140);
    pacer.stop();
  });

  it('stop() clears the timer, and inside onTick ends the burst', () => {
    const clock = new FakeClock();
    const ticks: number[] = [];
    const pacer = new Pacer({
      onTick: ({ tick }) => {
        ticks.push(tick);
        if (tick === 2) pacer.stop();
      },
      now: clock.now,
      timers: clock,
    });
    pacer.start();
    clock.time = 1200; // a stall: ten ticks are due
    const [id, entry] = [...clock.pending][0]!;
    clock.pending.delete(id);
    entry.callback();
    expect(ticks).toEqual([0, 1, 2]);
    expect(pacer.running).toBe(false);
    expect(clock.pending.size).toBe(0);
  });

  it('restarts from tick 0 on a new clock origin', () => {
    const { clock, pacer, ticks } = fakePacer();
    pacer.start();
    clock.advanceTo(1030);
    pacer.stop();
    expect(clock.pending.size).toBe(0);
    clock.advanceTo(1500);
    pacer.start();
    pacer.start(); // no-op while running
    expect(clock.pending.size).toBe(1);
    clock.advanceTo(1520);
    expect(ticks.map((t) => t.tick)).toEqual([0, 1, 0, 1]);
    pacer.stop();
  });

  it('stops and rethrows when onTick throws', () => {
    const clock = new FakeClock();
    const pacer = new Pacer({
      onTick: () => {
        throw new Error('boom');
      },
      now: clock.now,
      timers: clock,
    });
    pacer.start();
    expect(() => clock.advanceTo(1000)).toThrow('boom');
    expect(pacer.running).toBe(false);
    expect(clock.pending.size).toBe(0);
  });

  it.each([0, -5, Number.NaN, Infinity])('rejects interval %s', (intervalMs) => {
    expect(() => new Pacer({ intervalMs, onTick: () => {} })).toThrow(
      expect.objectContaining({ code: 'AUDIO_ERR_ARGUMENT' }),
    );
  });

  it('runs on real timers: ordered ticks, and stop() leaves no timer behind', async () => {
    const ticks: number[] = [];
    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    const pacer = new Pacer({
      intervalMs: 5,
      onTick: ({ tick, lateMs }) => {
        expect(lateMs).toBeGreaterThanOrEqual(0);
        ticks.push(tick);
        if (ticks.length === 5) {
          pacer.stop();
          resolveDone();
        }
      },
    });
    onTestFinished(() => pacer.stop());
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    pacer.start();
    await done;
    expect(ticks).toEqual([0, 1, 2, 3, 4]);
    expect(pacer.running).toBe(false);
    const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    expect(after).toBeLessThanOrEqual(before);
  });
});
