import { describe, expect, it } from 'vitest';
import { leastTunnels, rendezvous, rendezvousScore } from '../src/balancer.js';

const b = (id: string, active: number) => ({ id, active });

describe('leastTunnels', () => {
  it.each([
    [[], undefined],
    [[b('a', 3)], 'a'],
    [[b('a', 3), b('b', 1), b('c', 2)], 'b'],
    [[b('a', 0), b('b', 5)], 'a'],
  ])('picks the least active of %j', (candidates, expected) => {
    expect(leastTunnels(candidates)?.id).toBe(expected);
  });

  it.each([
    [0, 'a'],
    [0.49, 'a'],
    [0.5, 'c'],
    [0.999, 'c'],
  ])('breaks ties at random (random() = %s → %s)', (r, expected) => {
    const candidates = [b('a', 1), b('b', 2), b('c', 1)];
    expect(leastTunnels(candidates, () => r)?.id).toBe(expected);
  });

  it('spreads ties over every tied candidate', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(leastTunnels([b('a', 0), b('b', 0), b('c', 0)])!.id);
    expect([...seen].sort()).toEqual(['a', 'b', 'c']);
  });
});

describe('rendezvous', () => {
  const pool = [b('10.0.0.1:8080', 0), b('10.0.0.2:8080', 9), b('10.0.0.3:8080', 4)];

  it('ignores load and input order: the same key always lands on the same backend', () => {
    for (const key of ['s1', 's2', 'session-abc', 'x']) {
      const first = rendezvous(key, pool)!.id;
      expect(rendezvous(key, [...pool].reverse())!.id).toBe(first);
    }
  });

  it('picks the highest score', () => {
    const key = 'session-42';
    const best = [...pool].sort(
      (x, y) => rendezvousScore(key, y.id) - rendezvousScore(key, x.id),
    )[0]!;
    expect(rendezvous(key, pool)).toBe(best);
  });

  it('moves only the keys of a removed backend', () => {
    const keys = Array.from({ length: 300 }, (_, i) => `s${i}`);
    const before = new Map(keys.map((k) => [k, rendezvous(k, pool)!.id]));
    const removed = pool[1]!.id;
    const after = pool.filter((c) => c.id !== removed);
    let moved = 0;
    for (const k of keys) {
      const now = rendezvous(k, after)!.id;
      if (before.get(k) === removed) moved++;
      else expect(now).toBe(before.get(k));
    }
    // Each backend owns about a third of the keys.
    expect(moved).toBeGreaterThan(50);
    expect(moved).toBeLessThan(150);
  });

  it('has a stable score (the same on every proxy replica and version)', () => {
    expect(rendezvousScore('session-1', '10.0.0.1:8080')).toBe(
      rendezvousScore('session-1', '10.0.0.1:8080'),
    );
    expect(rendezvousScore('session-1', '10.0.0.1:8080')).not.toBe(
      rendezvousScore('session-1', '10.0.0.2:8080'),
    );
    expect(rendezvous('k', [])).toBeUndefined();
  });
});
