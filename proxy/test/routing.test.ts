import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { rendezvous } from '../src/balancer.js';
import {
  closedPort,
  eventually,
  metricValue,
  nextMessage,
  openWs,
  refusedStatus,
  startProxy,
  startWsBackend,
  type WsBackend,
} from './helpers/index.js';

/** A Twilio-sized media message (~350 bytes of JSON). */
function mediaMessage(call: number, seq: number): string {
  return JSON.stringify({
    event: 'media',
    sequenceNumber: String(seq),
    streamSid: `MZ${String(call).padStart(32, '0')}`,
    media: {
      track: 'inbound',
      chunk: String(seq),
      timestamp: String(seq * 20),
      payload: 'f'.repeat(216),
    },
  });
}

/** Sends `count` messages and resolves with the echoes, in arrival order. */
function roundTrip(ws: WebSocket, messages: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const echoes: string[] = [];
    ws.on('message', (data: Buffer) => {
      echoes.push(data.toString());
      if (echoes.length === messages.length) resolve(echoes);
    });
    ws.once('close', (code) =>
      reject(new Error(`closed with ${code} after ${echoes.length} echoes`)),
    );
    for (const m of messages) ws.send(m);
  });
}

function sessionOwnedBy(owner: WsBackend, backends: WsBackend[]): string {
  const candidates = backends.map((b) => ({ id: b.hostPort, active: 0 }));
  for (let i = 0; ; i++) {
    if (rendezvous(`sess-${i}`, candidates)!.id === owner.hostPort) return `sess-${i}`;
  }
}

describe('ProxyServer routing', () => {
  it('has exactly one upgrade listener on its public server', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    expect(t.proxy.upgradeListenerCount).toBe(1);
  });

  it('carries 50 media and 10 test-agent tunnels at once, every message in order on the right backend', async () => {
    const media = [
      await startWsBackend({ name: 'media-1' }),
      await startWsBackend({ name: 'media-2' }),
    ];
    const agents = [
      await startWsBackend({ name: 'agent-1' }),
      await startWsBackend({ name: 'agent-2' }),
    ];
    const t = await startProxy({
      MEDIA_BACKENDS: media.map((b) => b.hostPort).join(','),
      TEST_AGENT_BACKENDS: agents.map((b) => b.hostPort).join(','),
    });
    const calls = await Promise.all(
      Array.from({ length: 50 }, (_, i) => openWs(`${t.wsUrl}/media-stream/CA${i}`)),
    );
    const sessions = await Promise.all(
      Array.from({ length: 10 }, (_, i) => openWs(`${t.wsUrl}/test-agent/sess-${i}?token=t${i}`)),
    );
    expect(t.proxy.tunnels.size).toBe(60);
    const results = await Promise.all([
      ...calls.map(async (ws, call) => {
        const sent = Array.from({ length: 30 }, (_, seq) => mediaMessage(call, seq + 1));
        return { pool: 'media', sent, echoes: await roundTrip(ws, sent) };
      }),
      ...sessions.map(async (ws, s) => {
        const sent = Array.from({ length: 30 }, (_, seq) =>
          JSON.stringify({ type: 'ping', s, seq }),
        );
        return { pool: 'agent', sent, echoes: await roundTrip(ws, sent) };
      }),
    ]);
    for (const { pool, sent, echoes } of results) {
      const owner = echoes[0]!.split(':')[0]!;
      expect(owner.startsWith(pool)).toBe(true);
      expect(echoes).toEqual(sent.map((m) => `${owner}:${m}`));
    }
    // The CallSid hash spreads the calls (not evenly: the ports, so the hash, change every run);
    // each backend saw exactly the upgrades it echoed.
    expect(media[0]!.upgrades.length + media[1]!.upgrades.length).toBe(50);
    for (const m of media) expect(m.upgrades.length).toBeGreaterThan(0);
    expect(agents[0]!.upgrades.length + agents[1]!.upgrades.length).toBe(10);
    expect(
      await metricValue(t.adminUrl, 'proxy_upgrades_total', {
        route: 'media-stream',
        outcome: 'ok',
      }),
    ).toBe(50);
    expect(
      await metricValue(t.adminUrl, 'proxy_upgrades_total', { route: 'test-agent', outcome: 'ok' }),
    ).toBe(10);
    for (const ws of [...calls, ...sessions]) ws.close();
    await t.proxy.tunnels.waitForEmpty();
  });

  it('sends each new tunnel without a key (SansPBX) to the backend with the fewest open tunnels', async () => {
    const a = await startWsBackend({ name: 'a' });
    const b = await startWsBackend({ name: 'b' });
    const t = await startProxy({ MEDIA_BACKENDS: `${a.hostPort},${b.hostPort}` });
    const open: WebSocket[] = [];
    for (let i = 0; i < 6; i++) open.push(await openWs(`${t.wsUrl}/media-stream`));
    expect([a.clients.size, b.clients.size]).toEqual([3, 3]);
    // Free three slots on `a`: the next three calls all go there.
    a.closeAll();
    await eventually(() =>
      t.proxy.backends('media').every((s) => s.active === (s.id === a.hostPort ? 0 : 3)),
    );
    for (let i = 0; i < 3; i++) await openWs(`${t.wsUrl}/media-stream`);
    expect([a.clients.size, b.clients.size]).toEqual([3, 3]);
    expect(a.upgrades).toHaveLength(6);
  });

  it('sends a second stream of a live call to the worker that has the call', async () => {
    const a = await startWsBackend({ name: 'a' });
    const b = await startWsBackend({ name: 'b' });
    const t = await startProxy({ MEDIA_BACKENDS: `${a.hostPort},${b.hostPort}` });
    const ownerOf = async (ws: WebSocket): Promise<string> => {
      ws.send('hi');
      return (await nextMessage(ws)).split(':')[0]!;
    };
    const first = await openWs(`${t.wsUrl}/media-stream/CAsame`);
    const owner = await ownerOf(first);
    // The call's worker gets the second stream (by the live tunnel it holds, before any hash), so
    // it can hand the call over to the new stream rather than two agents talking at once.
    const second = await openWs(`${t.wsUrl}/media-stream/CAsame`);
    expect(await ownerOf(second)).toBe(owner);
    const ids = [a.hostPort, b.hostPort].map((id) => ({ id, active: 0 }));
    // A CallSid whose hash picks the other worker (the ports, and so the hashes, differ per run:
    // a short fixed list of candidates could all land on the call's worker).
    let other = 'CAother0';
    for (let i = 1; rendezvous(other, ids)!.id === rendezvous('CAsame', ids)!.id; i++) {
      other = `CAother${i}`;
    }
    expect(await ownerOf(await openWs(`${t.wsUrl}/media-stream/${other}`))).not.toBe(owner);
    await eventually(() => t.logs.some((l) => l.msg === 'upgrade' && l.callAffinity === true));
    expect(t.logs.filter((l) => l.msg === 'upgrade' && l.callAffinity === true)).toHaveLength(1);
    // Once the call's streams have ended, the CallSid holds nothing any more.
    first.close();
    second.close();
    await eventually(() => t.proxy.tunnels.size === 1);
    const later = await openWs(`${t.wsUrl}/media-stream/CAsame`);
    expect(await ownerOf(later)).toBe(owner); // the same worker again, by its rendezvous hash
  });

  it('pins a test-agent session to its rendezvous backend, whatever the load', async () => {
    const backends = [
      await startWsBackend({ name: 'x' }),
      await startWsBackend({ name: 'y' }),
      await startWsBackend({ name: 'z' }),
    ];
    const t = await startProxy({ TEST_AGENT_BACKENDS: backends.map((b) => b.hostPort).join(',') });
    const owner = backends[1]!;
    const session = sessionOwnedBy(owner, backends);
    for (let i = 0; i < 4; i++) {
      const ws = await openWs(`${t.wsUrl}/test-agent/${session}?token=${i}`);
      ws.send('hi');
      expect(await nextMessage(ws)).toBe('y:hi');
    }
    expect(owner.clients.size).toBe(4);
    // The page's own HTTP requests for that session land there too.
    const res = await fetch(`${t.httpUrl}/test-agent/${session}`);
    expect((await res.json()) as unknown).toMatchObject({ backend: 'y' });
  });

  it('skips a backend that refuses the connection without the caller noticing, and marks it down', async () => {
    const live = await startWsBackend({ name: 'live' });
    const deadPort = await closedPort();
    const dead = `127.0.0.1:${deadPort}`;
    const t = await startProxy({ TEST_AGENT_BACKENDS: `${dead},${live.hostPort}` });
    // A session whose rendezvous winner is the dead backend: it is tried first.
    const candidates = [
      { id: dead, active: 0 },
      { id: live.hostPort, active: 0 },
    ];
    let session = 's0';
    for (let i = 0; rendezvous(session, candidates)!.id !== dead; i++) session = `s${i}`;
    const ws = await openWs(`${t.wsUrl}/test-agent/${session}`);
    ws.send('hi');
    expect(await nextMessage(ws)).toBe('live:hi');
    expect(t.proxy.backends('test-agent').find((b) => b.id === dead)?.state).toBe('down');
    expect(
      t.logs.some((l) => l.code === 'PROXY_ERR_BACKEND_UNREACHABLE' && l.backend === dead),
    ).toBe(true);
    expect(t.logs.find((l) => l.msg === 'upgrade')).toMatchObject({
      outcome: 'ok',
      backend: live.hostPort,
    });
  });

  it('answers 503 with Retry-After when no backend is left, for upgrades and plain requests', async () => {
    const t = await startProxy({
      MEDIA_BACKENDS: `127.0.0.1:${await closedPort()},127.0.0.1:${await closedPort()}`,
    });
    const refused = await refusedStatus(`${t.wsUrl}/media-stream/CA1`);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.body).toContain('PROXY_ERR_NO_BACKEND');
    const res = await fetch(`${t.httpUrl}/media-stream/twiml`, {
      method: 'POST',
      body: 'CallSid=CA1',
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(t.proxy.backends('media').map((b) => b.state)).toEqual(['down', 'down']);
    expect(t.proxy.tunnels.size).toBe(0);
  });

  it('answers 503 when the pool has no backend configured at all', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    expect((await refusedStatus(`${t.wsUrl}/test-agent/sess-1`)).status).toBe(503);
  });

  it('answers 503 once MAX_TUNNELS tunnels are open, and accepts again when one closes', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort, MAX_TUNNELS: '2' });
    const first = await openWs(`${t.wsUrl}/media-stream/CA1`);
    await openWs(`${t.wsUrl}/media-stream/CA2`);
    const refused = await refusedStatus(`${t.wsUrl}/media-stream/CA3`);
    expect(refused.status).toBe(503);
    expect(refused.body).toContain('PROXY_ERR_TOO_MANY_TUNNELS');
    expect(refused.headers['retry-after']).toBe('5');
    const removed = once(t.proxy.tunnels, 'removed');
    first.close();
    await removed;
    await openWs(`${t.wsUrl}/media-stream/CA4`);
  });

  it('moves new tunnels off a backend whose /readyz says 503, and keeps its live tunnel', async () => {
    const a = await startWsBackend({ name: 'a' });
    const b = await startWsBackend({ name: 'b' });
    const t = await startProxy({
      MEDIA_BACKENDS: `${a.hostPort},${b.hostPort}`,
      HEALTH_CHECK_INTERVAL_MS: '50',
    });
    const live: WebSocket[] = [];
    for (let i = 0; i < 2; i++) live.push(await openWs(`${t.wsUrl}/media-stream`));
    const owners = await Promise.all(
      live.map(async (ws) => {
        ws.send('who');
        return (await nextMessage(ws)).split(':')[0];
      }),
    );
    expect([...owners].sort()).toEqual(['a', 'b']);
    const onA = live[owners.indexOf('a')]!;
    a.setReady(503);
    const pool = t.proxy.pools.get('media')!;
    while (pool.get(a.hostPort)?.state !== 'draining') await once(pool, 'state');
    for (let i = 0; i < 4; i++) await openWs(`${t.wsUrl}/media-stream/CAnew${i}`);
    expect(a.upgrades).toHaveLength(1);
    expect(b.upgrades).toHaveLength(5);
    onA.send('still here');
    expect(await nextMessage(onA)).toBe('a:still here');
    expect(
      await metricValue(t.adminUrl, 'proxy_backend_state', {
        backend: a.hostPort,
        state: 'draining',
      }),
    ).toBe(1);
  });

  it('follows DNS membership: new addresses join, a removed one drains its tunnels and then leaves', async () => {
    const backend = await startWsBackend({ name: 'w1' });
    let addresses = ['127.0.0.1'];
    const t = await startProxy(
      { MEDIA_BACKENDS: `media.internal:${backend.port}`, BACKEND_RESOLVE_INTERVAL_MS: '100' },
      { resolve: async () => addresses },
    );
    const pool = t.proxy.pools.get('media')!;
    const ws = await openWs(`${t.wsUrl}/media-stream/CA1`);
    const id = `127.0.0.1:${backend.port}`;
    addresses = ['127.0.0.2'];
    while (pool.get(id)?.state !== 'draining') await once(pool, 'state');
    expect(t.proxy.backends('media').map((b) => [b.id, b.state])).toEqual([
      [id, 'draining'],
      [`127.0.0.2:${backend.port}`, 'up'],
    ]);
    ws.send('hi');
    expect(await nextMessage(ws)).toBe('w1:hi');
    const removed = once(pool, 'removed');
    ws.close();
    expect((await removed)[0].id).toBe(id);
    expect(t.proxy.backends('media').map((b) => b.id)).toEqual([`127.0.0.2:${backend.port}`]);
  });

  it('keeps the last known addresses when a name stops resolving', async () => {
    const backend = await startWsBackend({ name: 'w1' });
    let fail = false;
    const t = await startProxy(
      { MEDIA_BACKENDS: `media.internal:${backend.port}`, BACKEND_RESOLVE_INTERVAL_MS: '100' },
      {
        resolve: async () => {
          if (fail) throw Object.assign(new Error('NXDOMAIN'), { code: 'ENOTFOUND' });
          return ['127.0.0.1'];
        },
      },
    );
    fail = true;
    await eventually(
      () => t.logs.some((l) => l.code === 'PROXY_ERR_DNS_RESOLVE'),
      5000,
      'a resolve failure',
    );
    const ws = await openWs(`${t.wsUrl}/media-stream/CA1`);
    ws.send('hi');
    expect(await nextMessage(ws)).toBe('w1:hi');
  });
});
