import { describe, expect, it } from 'vitest';
import { Pacer, PacerGroup, type PacerTick, type PacerTimers } from '../src/index.js';

/** A fake clock and timers; `run(until, lateBy)` fires due timers, each `lateBy(at)` ms late. */
function fakeTime() {
  let now = 0;
  let nextId = 1;
  const pending = new Map<number, { at: number; callback: () => void }>();
  let maxPending = 0;
  let armed = 0;
  const timers: PacerTimers = {
    setTimeout(callback, ms) {
      const id = nextId++;
      pending.set(id, { at: now + Math.max(0, ms), callback });
      armed++;
      maxPending = Math.max(maxPending, pending.size);
      return id;
    },
    clearTimeout(handle) {
      pending.delete(handle as number);
    },
  };
  return {
    timers,
    clock: () => now,
    set: (t: number) => {
      now = t;
    },
    get maxPending() {
      return maxPending;
    },
    get armed() {
      return armed;
    },
    run(until: number, lateBy: (at: number) => number = () => 0) {
      for (;;) {
        let first: [number, { at: number; callback: () => void }] | undefined;
        for (const entry of pending) if (!first || entry[1].at < first[1].at) first = entry;
        if (!first || first[1].at > until) break;
        pending.delete(first[0]);
        now = Math.max(now, first[1].at + lateBy(first[1].at));
        first[1].callback();
      }
      now = Math.max(now, until);
    },
  };
}

describe('PacerGroup', () => {
  it('ticks each member on its own absolute clock, never early, with one timer for all', () => {
    const t = fakeTime();
    const group = new PacerGroup({ intervalMs: 20, now: t.clock, timers: t.timers });
    const seen: { member: number; tick: number; at: number; lateMs: number }[][] = [];
    const starts: number[] = [];
    let seed = 1;
    const random = (): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 2 ** 32;
    };
    for (let i = 0; i < 100; i++) {
      const log: { member: number; tick: number; at: number; lateMs: number }[] = [];
      seen.push(log);
      t.run(i * 0.37); // members start at scattered phases
      starts.push(t.clock());
      group
        .pacer(({ tick, lateMs }) => log.push({ member: i, tick, at: t.clock(), lateMs }))
        .start();
    }
    t.run(1000, () => random() * 3); // every timer fires 0–3 ms late
    expect(t.maxPending).toBe(1);
    for (let i = 0; i < 100; i++) {
      const log = seen[i]!;
      // Every tick that came due by the end was delivered, in order, none early.
      expect(log.length).toBeGreaterThanOrEqual(Math.floor((1000 - starts[i]! - 3) / 20) + 1);
      log.forEach((entry, n) => {
        expect(entry.tick).toBe(n);
        const due = starts[i]! + n * 20;
        expect(entry.at).toBeGreaterThanOrEqual(due);
        expect(entry.lateMs).toBeCloseTo(entry.at - due, 9);
        // Lateness is only what the timer itself was late (≤ 3 ms here), not queueing behind others.
        expect(entry.lateMs).toBeLessThanOrEqual(3 + 1e-9);
      });
    }
  });

  it('after a stall, serves every member its missed ticks in due order (fair), none skipped', () => {
    const t = fakeTime();
    const group = new PacerGroup({ intervalMs: 20, now: t.clock, timers: t.timers });
    const order: { member: number; due: number }[] = [];
    for (let i = 0; i < 5; i++) {
      t.run(i * 4);
      const t0 = t.clock();
      group.pacer(({ tick }) => order.push({ member: i, due: t0 + tick * 20 })).start();
    }
    t.run(40);
    order.length = 0;
    // The loop stalls for 100 ms: the next timer fires at ~140.
    t.run(200, (at) => (at < 100 ? 140 - at : 0));
    const dues = order.map((o) => o.due);
    expect(dues).toEqual([...dues].sort((a, b) => a - b));
    for (let i = 0; i < 5; i++) {
      const mine = order.filter((o) => o.member === i).map((o) => o.due);
      mine.forEach((due, k) => k > 0 && expect(due - mine[k - 1]!).toBe(20));
    }
  });

  it('gives the same ticks as a lone Pacer under the same clock', () => {
    const lateBy = (at: number): number => (Math.floor(at) % 7 === 0 ? 5 : 0.5);
    const collect = (
      make: (onTick: (i: PacerTick) => void, t: ReturnType<typeof fakeTime>) => { start(): void },
    ) => {
      const t = fakeTime();
      t.run(3.3);
      const ticks: string[] = [];
      make((i) => ticks.push(`${i.tick}@${i.lateMs.toFixed(6)}`), t).start();
      t.run(500, lateBy);
      return ticks;
    };
    const lone = collect(
      (onTick, t) => new Pacer({ intervalMs: 20, onTick, now: t.clock, timers: t.timers }),
    );
    const grouped = collect((onTick, t) =>
      new PacerGroup({ intervalMs: 20, now: t.clock, timers: t.timers }).pacer(onTick),
    );
    expect(grouped).toEqual(lone);
    expect(grouped.length).toBeGreaterThan(20);
  });

  it('stops and restarts from inside a tick like Pacer (restart ticks on the next turn)', () => {
    const t = fakeTime();
    const group = new PacerGroup({ intervalMs: 20, now: t.clock, timers: t.timers });
    const ticks: string[] = [];
    let restarted = false;
    const p = group.pacer(({ tick }) => {
      ticks.push(`a${tick}@${t.clock()}`);
      if (tick === 2 && !restarted) {
        restarted = true;
        p.stop();
        p.start();
        expect(ticks.length).toBe(3); // not delivered synchronously
      }
    });
    p.start();
    t.run(45);
    expect(ticks).toEqual(['a0@0', 'a1@20', 'a2@40', 'a0@40']);
    p.stop();
    expect(group.size).toBe(0);
    t.run(200);
    expect(ticks.length).toBe(4);
  });

  it('a throwing member is stopped, the others still tick, the error propagates', () => {
    const t = fakeTime();
    const group = new PacerGroup({ intervalMs: 20, now: t.clock, timers: t.timers });
    let good = 0;
    const bad = group.pacer(() => {
      throw new Error('boom');
    });
    bad.start();
    group.pacer(() => good++).start();
    expect(() => t.run(0)).toThrow('boom');
    expect(bad.running).toBe(false);
    expect(good).toBe(1);
    t.run(100);
    expect(good).toBe(6);
  });

  it('arms no timer while no member runs', () => {
    const t = fakeTime();
    const group = new PacerGroup({ now: t.clock, timers: t.timers });
    const p = group.pacer(() => {});
    p.start();
    p.stop();
    t.run(1000);
    expect(group.size).toBe(0);
    expect(t.armed).toBe(1);
    expect(() => new PacerGroup({ intervalMs: 0 })).toThrow(
      expect.objectContaining({ code: 'AUDIO_ERR_ARGUMENT' }),
    );
  });
});
