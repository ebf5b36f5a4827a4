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

// rendezvousScore of ('session-1', '10.0.0.1:8080') and ('CAfeed', 'media:8081').
const PINNED_SESSION_1 = 73360506767196;
const PINNED_CAFEED = 77612432374112;

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

  it('spreads keys evenly: 16,000 CallSids over 16 workers, each within 15 % of its share', () => {
    const workers = Array.from({ length: 16 }, (_, i) => b(`10.0.${i >> 2}.${i}:8081`, 0));
    const counts = new Map<string, number>();
    for (let i = 0; i < 16_000; i++) {
      const sid = `CA${i.toString(16).padStart(32, '0')}`;
      const id = rendezvous(sid, workers)!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    expect(counts.size).toBe(16);
    for (const n of counts.values()) {
      expect(n).toBeGreaterThan(850);
      expect(n).toBeLessThan(1150);
    }
  });

  it('gives 48-bit scores that move with every character of either string', () => {
    const base = rendezvousScore('CA0123456789abcdef0123456789abcdef', '10.0.0.1:8081');
    expect(Number.isInteger(base)).toBe(true);
    expect(base).toBeGreaterThanOrEqual(0);
    expect(base).toBeLessThan(2 ** 48);
    // One character changed, on either side, anywhere: a different score each time.
    const scores = new Set([base]);
    for (let i = 0; i < 34; i++) {
      const key = 'CA0123456789abcdef0123456789abcdef';
      scores.add(rendezvousScore(key.slice(0, i) + 'z' + key.slice(i + 1), '10.0.0.1:8081'));
    }
    for (const id of ['10.0.0.2:8081', '10.0.0.1:8082', '11.0.0.1:8081']) {
      scores.add(rendezvousScore('CA0123456789abcdef0123456789abcdef', id));
    }
    expect(scores.size).toBe(38);
  });

  it('has a stable score (the same on every proxy replica and version)', () => {
    // Pinned: every replica must agree, so a change here sends calls elsewhere during a rollout.
    expect(rendezvousScore('session-1', '10.0.0.1:8080')).toBe(PINNED_SESSION_1);
    expect(rendezvousScore('CAfeed', 'media:8081')).toBe(PINNED_CAFEED);
    expect(rendezvousScore('session-1', '10.0.0.1:8080')).toBe(
      rendezvousScore('session-1', '10.0.0.1:8080'),
    );
    expect(rendezvousScore('session-1', '10.0.0.1:8080')).not.toBe(
      rendezvousScore('session-1', '10.0.0.2:8080'),
    );
    expect(rendezvous('k', [])).toBeUndefined();
  });
});
