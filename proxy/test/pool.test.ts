import { describe, expect, it } from 'vitest';
import type { Backend, BackendState, ProbeResult } from '../src/backend.js';
import { Pool } from '../src/pool.js';

const thresholds = { healthy: 2, unhealthy: 3 };

function poolOf(...ports: number[]): Pool {
  const pool = new Pool('media');
  pool.setMembers(
    'static',
    ports.map((port) => ({ host: '127.0.0.1', port })),
  );
  return pool;
}

function states(pool: Pool): Record<string, BackendState> {
  return Object.fromEntries(pool.backends.map((b) => [b.id, b.state]));
}

describe('Backend', () => {
  it.each<[string, ProbeResult[], BackendState]>([
    ['stays up on good probes', ['ready', 'ready'], 'up'],
    ['stays up below the failure threshold', ['failed', 'failed'], 'up'],
    ['goes down at the threshold', ['failed', 'failed', 'failed'], 'down'],
    ['needs consecutive failures', ['failed', 'failed', 'ready', 'failed', 'failed'], 'up'],
    ['drains on a 503 at once', ['draining'], 'draining'],
    ['comes back from draining on a 200', ['draining', 'ready'], 'up'],
    [
      'needs the healthy threshold to come back from down',
      ['failed', 'failed', 'failed', 'ready'],
      'down',
    ],
    ['comes back after enough good probes', ['failed', 'failed', 'failed', 'ready', 'ready'], 'up'],
    ['a draining backend that fails goes down', ['draining', 'failed', 'failed', 'failed'], 'down'],
  ])('%s', (_what, results, expected) => {
    const backend = poolOf(1).backends[0]!;
    for (const r of results) backend.recordProbe(r, thresholds);
    expect(backend.state).toBe(expected);
  });

  it('goes down at once on a passive failure and must then prove itself', () => {
    const backend = poolOf(1).backends[0]!;
    backend.markDown('connect failed: ECONNREFUSED');
    expect(backend.state).toBe('down');
    backend.recordProbe('ready', thresholds);
    expect(backend.state).toBe('down');
    backend.recordProbe('ready', thresholds);
    expect(backend.state).toBe('up');
  });

  it('counts leases, and a lease releases once', () => {
    const backend = poolOf(1).backends[0]!;
    const a = backend.acquire();
    backend.acquire();
    expect(backend.active).toBe(2);
    a.release();
    a.release();
    expect(backend.active).toBe(1);
  });
});

describe('Pool', () => {
  it('emits every state change with its reason', () => {
    const pool = poolOf(1);
    const seen: string[] = [];
    pool.on('state', (b, previous, reason) => seen.push(`${previous}→${b.state}: ${reason}`));
    const backend = pool.backends[0]!;
    backend.markDown('connect failed: ECONNREFUSED');
    backend.recordProbe('draining', thresholds);
    expect(seen).toEqual(['up→down: connect failed: ECONNREFUSED', 'down→draining: probe 503']);
  });

  describe('#pick', () => {
    it('picks the least active up backend', () => {
      const pool = poolOf(1, 2, 3);
      const [a, b, c] = pool.backends as [Backend, Backend, Backend];
      a.acquire();
      c.acquire();
      expect(pool.pick()).toBe(b);
    });

    it('skips draining and down backends, and the ones already tried', () => {
      const pool = poolOf(1, 2, 3);
      const [a, b, c] = pool.backends as [Backend, Backend, Backend];
      a.recordProbe('draining', thresholds);
      b.markDown('refused');
      expect(pool.pick()).toBe(c);
      expect(pool.pick({ exclude: new Set([c]) })).toBeUndefined();
    });

    it('pins a session id to one backend, and re-pins only when that backend is not up', () => {
      const pool = poolOf(1, 2, 3);
      const first = pool.pick({ sessionId: 'sess-1' })!;
      for (let i = 0; i < 5; i++) {
        pool.backends.find((b) => b !== first)!.acquire();
        expect(pool.pick({ sessionId: 'sess-1' })).toBe(first);
      }
      first.markDown('refused');
      const second = pool.pick({ sessionId: 'sess-1' })!;
      expect(second).not.toBe(first);
      expect(pool.pick({ sessionId: 'sess-1', exclude: new Set([second]) })).not.toBe(second);
    });
  });

  describe('call affinity', () => {
    it.each<[string, BackendState, boolean, 'holder' | 'other']>([
      ['an up holder, even with more load', 'up', false, 'holder'],
      ['a draining holder (its worker still has the call)', 'draining', false, 'holder'],
      ['not a down holder', 'down', false, 'other'],
      ['not a holder already tried for this request', 'up', true, 'other'],
    ])('sends the same call to %s', (_what, state, excluded, expected) => {
      const pool = poolOf(1, 2);
      const [holder, other] = pool.backends as [Backend, Backend];
      pool.holdAffinity('CA1', holder);
      holder.acquire();
      holder.acquire();
      if (state === 'draining') holder.recordProbe('draining', thresholds);
      if (state === 'down') holder.markDown('refused');
      const exclude = new Set(excluded ? [holder] : []);
      expect(pool.pick({ affinityKey: 'CA1', exclude })).toBe(
        expected === 'holder' ? holder : other,
      );
      // Another call is balanced as usual.
      if (state === 'up') expect(pool.pick({ affinityKey: 'CA2' })).toBe(other);
    });

    it('holds a key while any of its tunnels lives, and a newer holder replaces an old one', () => {
      const pool = poolOf(1, 2);
      const [a, b] = pool.backends as [Backend, Backend];
      const first = pool.holdAffinity('CA1', a);
      const second = pool.holdAffinity('CA1', a);
      first();
      first(); // idempotent
      expect(pool.affinityHolder('CA1')).toBe(a);
      second();
      expect(pool.affinityHolder('CA1')).toBeUndefined();

      const onA = pool.holdAffinity('CA2', a);
      const onB = pool.holdAffinity('CA2', b); // `a` went down, the call's new stream went to `b`
      expect(pool.affinityHolder('CA2')).toBe(b);
      onA();
      expect(pool.affinityHolder('CA2')).toBe(b);
      onB();
      expect(pool.affinityHolder('CA2')).toBeUndefined();
    });
  });

  describe('#setMembers', () => {
    it('adds new addresses up and removes idle ones at once', () => {
      const pool = new Pool('media');
      const events: string[] = [];
      pool.on('added', (b) => events.push(`+${b.id}`));
      pool.on('removed', (b) => events.push(`-${b.id}`));
      pool.setMembers('media:8080', [
        { host: '10.0.0.1', port: 8080 },
        { host: '10.0.0.2', port: 8080 },
      ]);
      pool.setMembers('media:8080', [
        { host: '10.0.0.2', port: 8080 },
        { host: 'fd00::3', port: 8080 },
      ]);
      expect(events).toEqual([
        '+10.0.0.1:8080',
        '+10.0.0.2:8080',
        '-10.0.0.1:8080',
        '+[fd00::3]:8080',
      ]);
      expect(states(pool)).toEqual({ '10.0.0.2:8080': 'up', '[fd00::3]:8080': 'up' });
    });

    it('keeps a removed backend draining until its last tunnel ends', () => {
      const pool = new Pool('media');
      pool.setMembers('media:8080', [{ host: '10.0.0.1', port: 8080 }]);
      const backend = pool.backends[0]!;
      const lease = backend.acquire();
      pool.setMembers('media:8080', [{ host: '10.0.0.2', port: 8080 }]);
      expect(backend.state).toBe('draining');
      expect(backend.isRemoved).toBe(true);
      expect(pool.pick()?.id).toBe('10.0.0.2:8080');
      // Probes cannot bring a removed backend back.
      backend.recordProbe('ready', thresholds);
      expect(backend.state).toBe('draining');
      let removed: Backend | undefined;
      pool.on('removed', (b) => (removed = b));
      lease.release();
      expect(removed).toBe(backend);
      expect(pool.get('10.0.0.1:8080')).toBeUndefined();
    });

    it('restores a removed backend that is listed again before it left', () => {
      const pool = new Pool('media');
      pool.setMembers('media:8080', [{ host: '10.0.0.1', port: 8080 }]);
      const backend = pool.backends[0]!;
      backend.acquire();
      pool.setMembers('media:8080', []);
      expect(backend.state).toBe('draining');
      pool.setMembers('media:8080', [{ host: '10.0.0.1', port: 8080 }]);
      expect(pool.get('10.0.0.1:8080')).toBe(backend);
      expect(backend.state).toBe('up');
      expect(backend.isRemoved).toBe(false);
    });

    it('keeps an address listed by two entries until both drop it', () => {
      const pool = new Pool('media');
      pool.setMembers('media:8080', [{ host: '10.0.0.1', port: 8080 }]);
      pool.setMembers('10.0.0.1:8080', [{ host: '10.0.0.1', port: 8080 }]);
      expect(pool.backends).toHaveLength(1);
      pool.setMembers('media:8080', []);
      expect(pool.backends[0]?.state).toBe('up');
      pool.setMembers('10.0.0.1:8080', []);
      expect(pool.backends).toHaveLength(0);
    });
  });
});

describe('operator drain', () => {
  it('takes an up backend out of new picks, and no probe undoes it', () => {
    const pool = poolOf(1, 2);
    const [one, two] = pool.backends as [Backend, Backend];
    expect(one.drainByOperator()).toBe(true);
    expect(one.drainByOperator()).toBe(false);
    expect(one.state).toBe('draining');
    expect(one.isDrainedByOperator).toBe(true);
    for (let i = 0; i < 5; i++) one.recordProbe('ready', thresholds);
    expect(one.state).toBe('draining');
    for (let i = 0; i < 10; i++) expect(pool.pick()).toBe(two);
    expect(pool.pick({ affinityKey: 'CA1' })).toBe(two);
  });

  it('can still go down, and comes back only as far as draining while drained', () => {
    const backend = poolOf(1).backends[0]!;
    backend.drainByOperator();
    for (let i = 0; i < 3; i++) backend.recordProbe('failed', thresholds);
    expect(backend.state).toBe('down');
    for (let i = 0; i < 2; i++) backend.recordProbe('ready', thresholds);
    expect(backend.state).toBe('draining');
    expect(backend.undrainByOperator()).toBe(true);
    expect(backend.state).toBe('up');
    expect(backend.undrainByOperator()).toBe(false);
  });

  it('undrains to draining when the worker itself said 503 last', () => {
    const backend = poolOf(1).backends[0]!;
    backend.drainByOperator();
    backend.rememberProbe({ result: 'draining', detail: '503', latencyMs: 1, at: Date.now() });
    backend.recordProbe('draining', thresholds);
    backend.undrainByOperator();
    expect(backend.state).toBe('draining');
  });
});

describe('media call affinity by rendezvous hash', () => {
  it('picks the same up backend for a CallSid in two pools that list the same workers', () => {
    const one = poolOf(1, 2, 3);
    const two = poolOf(3, 2, 1);
    for (let i = 0; i < 30; i++) {
      expect(one.pick({ affinityKey: `CA${i}` })!.id).toBe(two.pick({ affinityKey: `CA${i}` })!.id);
    }
  });
});
