import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { eventually, nextMessage, openWs, startProxy, startWsBackend } from './helpers/index.js';

// Two proxy replicas behind one load balancer share nothing: a call's streams must still meet on
// one worker, whichever replica each stream comes through.
describe('call affinity across proxy replicas', () => {
  const ownerOf = async (ws: WebSocket): Promise<string> => {
    ws.send('hi');
    return (await nextMessage(ws)).split(':')[0]!;
  };

  it("sends every stream of a call to the same worker through either replica, by the CallSid's rendezvous hash", async () => {
    const workers = await Promise.all(['w1', 'w2', 'w3'].map((name) => startWsBackend({ name })));
    const list = workers.map((w) => w.hostPort).join(',');
    const [p1, p2] = [
      await startProxy({ MEDIA_BACKENDS: list }),
      await startProxy({ MEDIA_BACKENDS: list }),
    ];
    const owners = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const sid = `CA${i.toString(16).padStart(32, '0')}`;
      // The first stream through one replica, the second (a reconnect, a <Stream> restart)
      // through the other; the other replica holds nothing for this call.
      const first = await openWs(`${(i % 2 === 0 ? p1 : p2).wsUrl}/media-stream/${sid}`);
      const second = await openWs(`${(i % 2 === 0 ? p2 : p1).wsUrl}/media-stream/${sid}`);
      const owner = await ownerOf(first);
      expect(await ownerOf(second), sid).toBe(owner);
      owners.add(owner);
      first.close();
      second.close();
    }
    // The hash spreads calls: 12 calls do not all land on one of three workers.
    expect(owners.size).toBeGreaterThan(1);
    await eventually(() => p1.proxy.tunnels.size === 0 && p2.proxy.tunnels.size === 0);
  });

  it("keeps the live stream's worker first on the replica that holds it, even when the hash says otherwise", async () => {
    const a = await startWsBackend({ name: 'a' });
    const b = await startWsBackend({ name: 'b' });
    const t = await startProxy({ MEDIA_BACKENDS: `${a.hostPort},${b.hostPort}` });
    const first = await openWs(`${t.wsUrl}/media-stream/CAheld`);
    const owner = await ownerOf(first);
    // The owner leaves the hash's candidates (operator drain): the held stream still wins.
    t.proxy.pools
      .get('media')!
      .get(owner === 'a' ? a.hostPort : b.hostPort)!
      .drainByOperator();
    const second = await openWs(`${t.wsUrl}/media-stream/CAheld`);
    expect(await ownerOf(second)).toBe(owner);
    first.close();
    second.close();
  });
});
