import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { rendezvous } from '../src/balancer.js';
import {
  eventually,
  handshakeHeaders,
  metricValue,
  nextMessage,
  openSocket,
  openWs,
  rawRequest,
  exchange,
  refusedStatus,
  startProxy,
  startRawBackend,
  startWsBackend,
  switchingProtocols,
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
  it('retries an upgrade a worker answers 503 on the next one, and marks that worker full until a probe sees 200', async () => {
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
    const t = await startProxy({
      TEST_AGENT_BACKENDS: `${full.hostPort},${ok.hostPort}`,
      HEALTH_CHECK_INTERVAL_MS: '3600000',
      HEALTH_CHECK_TIMEOUT_MS: '60000',
    });
    await startupProbe;
    const pool = t.proxy.pools.get('test-agent')!;
    const backend = pool.get(full.hostPort)!;
    expect(backend.state).toBe('up');
    // Sessions pinned to the full worker by the rendezvous hash.
    const sessions = sessionsOwnedBy(full.hostPort, [full.hostPort, ok.hostPort], 5);
    const upgradesOnFull = (): number =>
      full.heads.filter((h) => !h.startsWith('GET /readyz ')).length;

    // The first one is refused by the full worker and carried by the other, unnoticed.
    const first = await openWs(`${t.wsUrl}/test-agent/${sessions[0]}?token=t`);
    first.send('hi');
    expect(await nextMessage(first)).toBe('ok:hi');
    expect(upgradesOnFull()).toBe(1);
    // Full, not draining: still `up` (webhooks go on), no new work while another is free.
    expect(backend.state).toBe('up');
    expect(backend.isFull).toBe(true);
    // The rest go straight to the other worker: the full one is skipped until its next probe.
    for (const session of sessions.slice(1)) {
      const ws = await openWs(`${t.wsUrl}/test-agent/${session}?token=t`);
      ws.send('hi');
      expect(await nextMessage(ws)).toBe('ok:hi');
    }
    expect(upgradesOnFull()).toBe(1);
    expect(ok.upgrades).toHaveLength(5);
    // The abandoned attempt left nothing open on the full worker.
    await eventually(() => full.openSockets === heldProbes.length, 5000, 'refused upgrade closed');

    expect(t.logs.filter((l) => l.code === 'PROXY_ERR_BACKEND_BUSY')).toEqual([
      expect.objectContaining({
        level: 'warn',
        msg: 'backend answered 503, trying the next one',
        pool: 'test-agent',
        backend: full.hostPort,
        markedFull: true,
      }),
    ]);
    expect(
      t.logs.find((l) => l.msg === 'backend state' && l.backend === full.hostPort),
    ).toBeUndefined();
    const upgrade = t.logs.find(
      (l) => l.msg === 'upgrade' && l.path === `/test-agent/${sessions[0]}`,
    );
    expect(upgrade).toMatchObject({ outcome: 'ok', backend: ok.hostPort, status: 101 });
    expect(
      await metricValue(t.adminUrl, 'proxy_errors_total', { code: 'PROXY_ERR_BACKEND_BUSY' }),
    ).toBe(1);
    expect(
      await metricValue(t.adminUrl, 'proxy_upgrades_total', {
        route: 'test-agent',
        outcome: 'upstream_rejected',
      }),
    ).toBeUndefined();
    // The open-tunnel gauge moved with the tunnel: nothing is left counted on the full worker.
    expect(
      await metricValue(t.adminUrl, 'proxy_tunnels_open', {
        pool: 'test-agent',
        backend: full.hostPort,
      }),
    ).toBe(0);
    expect(
      await metricValue(t.adminUrl, 'proxy_tunnels_open', {
        pool: 'test-agent',
        backend: ok.hostPort,
      }),
    ).toBe(5);
    expect(
      await metricValue(t.adminUrl, 'proxy_backend_state', {
        pool: 'test-agent',
        backend: full.hostPort,
        state: 'up',
      }),
    ).toBe(1);

    // The probe decides again: 200 → not full, and the worker is tried once more.
    heldProbes[0]!.end(PROBE_OK);
    await eventually(() => !backend.isFull, 5000, 'full flag cleared by the probe');
    const again = await openWs(`${t.wsUrl}/test-agent/${sessions[1]}?token=again`);
    again.send('hi');
    expect(await nextMessage(again)).toBe('ok:hi');
    expect(upgradesOnFull()).toBe(2);
    expect(backend.isFull).toBe(true);
    expect(t.logs.filter((l) => l.code === 'PROXY_ERR_BACKEND_BUSY')).toHaveLength(2);
  });

  it('answers 503 itself when every worker is busy, and leaves no socket open on any', async () => {
    const busy = await Promise.all(
      [0, 1, 2].map(() =>
        startRawBackend((socket) => socket.end(refusal(503, 'RUNTIME_ERR_DRAINING'))),
      ),
    );
    const t = await startProxy({ MEDIA_BACKENDS: busy.map((b) => b.hostPort).join(',') });
    const refused = await refusedStatus(`${t.wsUrl}/media-stream/CA1`);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('5');
    expect(refused.body).toContain('PROXY_ERR_NO_BACKEND');
    // Each worker was asked once, in turn.
    expect(busy.map((b) => b.heads.length)).toEqual([1, 1, 1]);
    await eventually(() => busy.every((b) => b.openSockets === 0), 5000, 'upstreams closed');
    await t.proxy.tunnels.waitForEmpty();
    // Full, not draining: webhooks still reach them.
    expect(t.proxy.pools.get('media')!.backends.map((b) => [b.state, b.isFull])).toEqual([
      ['up', true],
      ['up', true],
      ['up', true],
    ]);
    expect(t.logs.find((l) => l.msg === 'upgrade')).toMatchObject({
      code: 'PROXY_ERR_NO_BACKEND',
      status: 503,
    });
  });

  it.each([
    ['resets', 'PROXY_ERR_CLIENT_GONE'],
    ['waits past the handshake deadline of the second worker', 'PROXY_ERR_UPSTREAM_TIMEOUT'],
  ])('cleans up a retried upgrade whose caller %s', async (what, code) => {
    // The session's worker is busy; the retry goes to a worker that never answers.
    const busy = await startRawBackend((socket) =>
      socket.end(refusal(503, 'RUNTIME_ERR_DRAINING')),
    );
    const silent = await startRawBackend(() => {});
    const t = await startProxy({
      TEST_AGENT_BACKENDS: `${busy.hostPort},${silent.hostPort}`,
      UPSTREAM_HANDSHAKE_TIMEOUT_MS: code === 'PROXY_ERR_UPSTREAM_TIMEOUT' ? '300' : '10000',
    });
    const [session] = sessionsOwnedBy(busy.hostPort, [busy.hostPort, silent.hostPort], 1);
    const client = await openSocket(t.port);
    const retried = once(silent, 'request');
    client.write(rawRequest(`GET /test-agent/${session} HTTP/1.1`, handshakeHeaders()));
    await retried;
    let answer = '';
    client.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    if (what === 'resets') client.resetAndDestroy();
    else await once(client, 'close');
    await t.proxy.tunnels.waitForEmpty();
    await eventually(async () => (await t.proxy.connections()) === 0, 5000, 'proxy sockets closed');
    await eventually(
      () => busy.openSockets === 0 && silent.openSockets === 0,
      5000,
      'upstreams closed',
    );
    expect(t.logs.find((l) => l.msg === 'upgrade')).toMatchObject({ code });
    if (code === 'PROXY_ERR_UPSTREAM_TIMEOUT') {
      expect(answer).toMatch(/^HTTP\/1\.1 504 /);
      expect(
        t.proxy
          .backends('test-agent')
          .map((b) => b.state)
          .sort(),
      ).toEqual(['down', 'up']);
    }
    expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(200);
  });

  it("relays a 503 from the worker that has the call's other stream, instead of a second agent elsewhere", async () => {
    // Worker A takes the call's first stream, then is full; worker B is idle.
    let callStreams = 0;
    const a = await startRawBackend((socket, head) => {
      if (callStreams++ === 0) socket.write(switchingProtocols(head));
      else socket.end(refusal(503, 'RUNTIME_ERR_TOO_MANY_SESSIONS'));
    });
    const b = await startWsBackend({ name: 'b' });
    const t = await startProxy({ MEDIA_BACKENDS: `${a.hostPort},${b.hostPort}` });
    // A CallSid whose rendezvous hash picks A for the first stream.
    const [callSid] = sessionsOwnedBy(a.hostPort, [a.hostPort, b.hostPort], 1);
    await openWs(`${t.wsUrl}/media-stream/${callSid}`);
    const second = await refusedStatus(`${t.wsUrl}/media-stream/${callSid}`);
    expect(second).toMatchObject({ status: 503, body: 'RUNTIME_ERR_TOO_MANY_SESSIONS' });
    expect(b.upgrades).toHaveLength(0);
    expect(t.logs.filter((l) => l.code === 'PROXY_ERR_BACKEND_BUSY')).toEqual([
      expect.objectContaining({ msg: 'backend answered 503', backend: a.hostPort }),
    ]);
  });

  it.each([401, 403, 404, 409])(
    'relays a worker %i to the caller without marking the backend',
    async (status) => {
      const worker = await startRawBackend((socket) =>
        socket.end(refusal(status, 'TEST_AGENT_ERR_REFUSED')),
      );
      const t = await startProxy({ TEST_AGENT_BACKENDS: worker.hostPort });
      const answer = await exchange(
        t.port,
        rawRequest('GET /test-agent/sess-1 HTTP/1.1', handshakeHeaders()),
      );
      expect(answer.status).toBe(status);
      expect(t.proxy.backends('test-agent').map((b) => b.state)).toEqual(['up']);
      expect(t.logs.some((l) => l.code === 'PROXY_ERR_BACKEND_BUSY')).toBe(false);
      expect(
        await metricValue(t.adminUrl, 'proxy_errors_total', { code: 'PROXY_ERR_BACKEND_BUSY' }),
      ).toBeUndefined();
    },
  );
});
