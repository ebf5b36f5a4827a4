import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { rendezvous } from '../src/balancer.js';
import {
  handshakeHeaders,
  metricValue,
  nextMessage,
  openWs,
  rawRequest,
  exchange,
  refusedStatus,
  startEdge,
  startRawBackend,
  startWsBackend,
} from './helpers/index.js';

/** What a worker sends when it is full (MAX_SESSIONS) or draining past its accept grace. */
function refusal(status: number, code: string): string {
  const reason = status === 503 ? 'Service Unavailable' : 'Refused';
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\n` +
    `Content-Length: ${code.length}\r\nConnection: close\r\n\r\n${code}`
  );
}

const PROBE_OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok';

/** `count` session ids whose rendezvous winner among `ids` is `owner`. */
function sessionsOwnedBy(owner: string, ids: string[], count: number): string[] {
  const candidates = ids.map((id) => ({ id, active: 0 }));
  const sessions: string[] = [];
  for (let i = 0; sessions.length < count; i++) {
    if (rendezvous(`sess-${i}`, candidates)!.id === owner) sessions.push(`sess-${i}`);
  }
  return sessions;
}

describe('passive health on a worker 503', () => {
  it('marks a backend that answers an upgrade 503 draining at once, and up again when a probe sees 200', async () => {
    // A full worker: its /readyz says ready (the probe is held until the test answers it, so no
    // probe decides anything in between), every upgrade gets 503.
    const heldProbes: Socket[] = [];
    const full = await startRawBackend(
      (socket, head) => {
        if (head.startsWith('GET /readyz ')) heldProbes.push(socket);
        else socket.end(refusal(503, 'RUNTIME_ERR_TOO_MANY_SESSIONS'));
      },
      { answerHealthChecks: false },
    );
    const ok = await startWsBackend({ name: 'ok' });
    const startupProbe = once(full, 'request');
    const t = await startEdge({
      TEST_AGENT_BACKENDS: `${full.hostPort},${ok.hostPort}`,
      HEALTH_CHECK_INTERVAL_MS: '3600000',
      HEALTH_CHECK_TIMEOUT_MS: '60000',
    });
    await startupProbe;
    const pool = t.edge.pools.get('test-agent')!;
    const backend = pool.get(full.hostPort)!;
    expect(backend.state).toBe('up');
    // Sessions pinned to the full worker by the rendezvous hash: without the passive marking
    // every one of them would be sent there and refused.
    const sessions = sessionsOwnedBy(full.hostPort, [full.hostPort, ok.hostPort], 5);

    const first = await refusedStatus(`${t.wsUrl}/test-agent/${sessions[0]}?token=t`);
    expect(first.status).toBe(503);
    expect(first.body).toBe('RUNTIME_ERR_TOO_MANY_SESSIONS');
    expect(backend.state).toBe('draining');

    for (const session of sessions) {
      const ws = await openWs(`${t.wsUrl}/test-agent/${session}?token=t`);
      ws.send('hi');
      expect(await nextMessage(ws)).toBe('ok:hi');
    }
    const upgradesOnFull = (): number =>
      full.heads.filter((h) => !h.startsWith('GET /readyz ')).length;
    expect(upgradesOnFull()).toBe(1);
    expect(ok.upgrades).toHaveLength(5);

    expect(t.logs.filter((l) => l.code === 'PROXY_ERR_BACKEND_BUSY')).toEqual([
      expect.objectContaining({ level: 'warn', pool: 'test-agent', backend: full.hostPort }),
    ]);
    expect(
      t.logs.find((l) => l.msg === 'backend state' && l.backend === full.hostPort),
    ).toMatchObject({ from: 'up', to: 'draining', reason: 'upgrade answered 503' });
    expect(
      await metricValue(t.adminUrl, 'proxy_errors_total', { code: 'PROXY_ERR_BACKEND_BUSY' }),
    ).toBe(1);
    expect(
      await metricValue(t.adminUrl, 'proxy_upgrades_total', {
        route: 'test-agent',
        outcome: 'upstream_rejected',
      }),
    ).toBe(1);
    expect(
      await metricValue(t.adminUrl, 'proxy_backend_state', {
        pool: 'test-agent',
        backend: full.hostPort,
        state: 'draining',
      }),
    ).toBe(1);

    // The probe decides again: 200 → up, and the worker is picked once more.
    heldProbes[0]!.end(PROBE_OK);
    while (backend.state !== 'up') await once(pool, 'state');
    const again = await refusedStatus(`${t.wsUrl}/test-agent/${sessions[1]}?token=t`);
    expect(again.status).toBe(503);
    expect(upgradesOnFull()).toBe(2);
    expect(backend.state).toBe('draining');
    expect(t.logs.filter((l) => l.code === 'PROXY_ERR_BACKEND_BUSY')).toHaveLength(2);
  });

  it.each([401, 403, 404, 409])(
    'relays a worker %i to the caller without marking the backend',
    async (status) => {
      const worker = await startRawBackend((socket) =>
        socket.end(refusal(status, 'TEST_AGENT_ERR_REFUSED')),
      );
      const t = await startEdge({ TEST_AGENT_BACKENDS: worker.hostPort });
      const answer = await exchange(
        t.port,
        rawRequest('GET /test-agent/sess-1 HTTP/1.1', handshakeHeaders()),
      );
      expect(answer.status).toBe(status);
      expect(t.edge.backends('test-agent').map((b) => b.state)).toEqual(['up']);
      expect(t.logs.some((l) => l.code === 'PROXY_ERR_BACKEND_BUSY')).toBe(false);
      expect(
        await metricValue(t.adminUrl, 'proxy_errors_total', { code: 'PROXY_ERR_BACKEND_BUSY' }),
      ).toBeUndefined();
    },
  );
});
