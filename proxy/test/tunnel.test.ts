import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  closed,
  eventually,
  exchange,
  handshakeHeaders,
  metricValue,
  nextMessage,
  openSocket,
  openWs,
  rawRequest,
  readHead,
  refusedStatus,
  startProxy,
  startRawBackend,
  startWsBackend,
  switchingProtocols,
  type TestProxy,
} from './helpers/index.js';

// Each case reproduces a known failure of http-proxy 1.18.1 around WebSocket upgrades (crashes on
// client resets, upstreams left open, handshakes without a deadline) and shows the guard holding.
// A crash would surface as an unhandled error in this
// worker, which fails the run.

async function settled(t: TestProxy): Promise<void> {
  await t.proxy.tunnels.waitForEmpty();
  await eventually(async () => (await t.proxy.connections()) === 0, 5000, 'proxy sockets closed');
}

describe('Tunnel guards', () => {
  it('survives a client reset while the upstream handshake is pending, and closes the upstream', async () => {
    const backend = await startRawBackend(() => {});
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const client = await openSocket(t.port);
    const requested = once(backend, 'request');
    client.write(rawRequest('GET /media-stream/CA1 HTTP/1.1', handshakeHeaders()));
    await requested;
    client.resetAndDestroy();
    await settled(t);
    await eventually(() => backend.openSockets === 0, 5000, 'upstream closed');
    expect(t.logs.find((l) => l.msg === 'upgrade')).toMatchObject({
      code: 'PROXY_ERR_CLIENT_GONE',
    });
    expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(200);
  });

  it('closes the upstream connection when the client leaves (FIN) mid-handshake', async () => {
    const backend = await startRawBackend(() => {});
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const client = await openSocket(t.port);
    const requested = once(backend, 'request');
    client.write(rawRequest('GET /media-stream/CA1 HTTP/1.1', handshakeHeaders()));
    await requested;
    client.end();
    await eventually(() => backend.openSockets === 0, 5000, 'upstream closed');
    await settled(t);
    expect(t.logs.find((l) => l.msg === 'upgrade')).toMatchObject({
      code: 'PROXY_ERR_CLIENT_GONE',
    });
  });

  it('answers 504 when the upstream never answers the handshake, destroys it and marks it down', async () => {
    const backend = await startRawBackend(() => {});
    const t = await startProxy({
      MEDIA_BACKENDS: backend.hostPort,
      UPSTREAM_HANDSHAKE_TIMEOUT_MS: '200',
    });
    const answer = await exchange(
      t.port,
      rawRequest('GET /media-stream/CA1 HTTP/1.1', handshakeHeaders()),
    );
    expect(answer.status).toBe(504);
    expect(answer.text).toContain('PROXY_ERR_UPSTREAM_TIMEOUT');
    await eventually(() => backend.openSockets === 0, 5000, 'upstream closed');
    await settled(t);
    expect(t.proxy.backends('media')[0]).toMatchObject({ state: 'down', active: 0 });
  });

  it('closes the client and zeroes the gauge when the upstream resets after the 101', async () => {
    let upstream: Socket | undefined;
    const backend = await startRawBackend((socket, head) => {
      upstream = socket;
      socket.write(switchingProtocols(head));
    });
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const ws = await openWs(`${t.wsUrl}/media-stream/CA1`);
    expect(await metricValue(t.adminUrl, 'proxy_tunnels_open', { pool: 'media' })).toBe(1);
    upstream!.resetAndDestroy();
    expect(await closed(ws)).toBe(1006);
    await settled(t);
    expect(await metricValue(t.adminUrl, 'proxy_tunnels_open', { pool: 'media' })).toBe(0);
    expect(t.logs.find((l) => l.msg === 'tunnel closed')).toMatchObject({
      closedBy: 'backend',
      code: 'PROXY_ERR_TUNNEL_ERROR',
    });
  });

  it('closes both sides when the client resets an open tunnel', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const ws = await openWs(`${t.wsUrl}/media-stream/CA1`);
    ws.send('hello');
    expect(await nextMessage(ws)).toBe('backend:hello');
    (ws as unknown as { _socket: Socket })._socket.resetAndDestroy();
    await settled(t);
    await eventually(() => backend.clients.size === 0, 5000, 'backend session closed');
    expect(t.logs.find((l) => l.msg === 'tunnel closed')).toMatchObject({ closedBy: 'client' });
  });

  it.each([
    [
      'with Content-Length',
      'HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nnope!\n',
    ],
    [
      'chunked',
      'HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nnope!\n\r\n0\r\n\r\n',
    ],
  ])('relays a non-101 answer (%s) and closes both connections', async (_what, response) => {
    const backend = await startRawBackend((socket) => socket.write(response));
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const answer = await exchange(
      t.port,
      rawRequest('GET /media-stream/CA1 HTTP/1.1', handshakeHeaders()),
    );
    expect(answer.status).toBe(403);
    expect(answer.text.toLowerCase()).not.toContain('transfer-encoding');
    expect(answer.text.toLowerCase()).toContain('connection: close');
    expect(answer.text.endsWith('\r\n\r\nnope!\n')).toBe(true);
    await eventually(() => backend.openSockets === 0, 5000, 'upstream closed');
    await settled(t);
    expect(t.logs.find((l) => l.msg === 'upgrade')).toMatchObject({
      code: 'PROXY_ERR_UPSTREAM_REJECTED',
      status: 403,
    });
  });

  it('shows a real worker refusal to a ws client as that status', async () => {
    const backend = await startRawBackend((socket) =>
      socket.end(
        'HTTP/1.1 410 Gone\r\nContent-Length: 7\r\nX-Worker-Code: TEST_AGENT_ERR_EXPIRED\r\n\r\nexpired',
      ),
    );
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const refused = await refusedStatus(`${t.wsUrl}/media-stream/CA1`);
    expect(refused).toMatchObject({ status: 410, body: 'expired' });
    expect(refused.headers['x-worker-code']).toBe('TEST_AGENT_ERR_EXPIRED');
  });

  it('answers 502 when the upstream closes without answering', async () => {
    const backend = await startRawBackend((socket) => socket.end());
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const answer = await exchange(
      t.port,
      rawRequest('GET /media-stream/CA1 HTTP/1.1', handshakeHeaders()),
    );
    expect(answer.status).toBe(502);
    expect(answer.text).toContain('PROXY_ERR_UPSTREAM_FAILED');
    await settled(t);
  });

  it('answers 502 when the upstream answers garbage', async () => {
    const backend = await startRawBackend((socket) => socket.write('SSH-2.0-OpenSSH_9.6\r\n\r\n'));
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const answer = await exchange(
      t.port,
      rawRequest('GET /media-stream/CA1 HTTP/1.1', handshakeHeaders()),
    );
    expect(answer.status).toBe(502);
    await eventually(() => backend.openSockets === 0, 5000, 'upstream closed');
    await settled(t);
  });

  it('lets the worker see only the real client address, never a spoofed X-Forwarded-*', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({
      MEDIA_BACKENDS: backend.hostPort,
      PUBLIC_URL: 'https://voice.example.com',
    });
    await openWs(`${t.wsUrl}/media-stream/CA1`, {
      headers: {
        'X-Forwarded-For': '6.6.6.6',
        'X-Forwarded-Proto': 'http',
        'X-Forwarded-Host': 'evil.example',
        'X-Forwarded-Port': '1',
        Forwarded: 'for=6.6.6.6;proto=http',
        'X-Real-IP': '6.6.6.6',
        'X-Request-Id': 'spoofed',
      },
    });
    const seen = backend.upgrades[0]!.headers;
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('wss');
    expect(seen['x-forwarded-host']).toBe(`127.0.0.1:${t.port}`);
    expect(seen['x-forwarded-port']).toBeUndefined();
    expect(seen.forwarded).toBeUndefined();
    expect(seen['x-real-ip']).toBeUndefined();
    const decision = t.logs.find((l) => l.msg === 'upgrade')!;
    expect(seen['x-request-id']).toBe(decision.tunnelId);
    expect(seen['x-tunnel-id']).toBe(decision.tunnelId);
    // Plain requests get the HTTP flavour of the public scheme.
    await fetch(`${t.httpUrl}/media-stream/twiml`, {
      method: 'POST',
      headers: { 'X-Forwarded-For': '6.6.6.6' },
    });
    expect(backend.requests[0]!.headers).toMatchObject({
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'https',
    });
  });

  it('removes hop-by-hop headers and every header named in Connection', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const client = await openSocket(t.port);
    client.write(
      rawRequest('GET /media-stream/CA1 HTTP/1.1', {
        ...handshakeHeaders(),
        Connection: 'Upgrade, X-Secret, Keep-Alive, X-Forwarded-For',
        'X-Secret': 'internal',
        'Keep-Alive': 'timeout=5',
        TE: 'trailers',
        Trailer: 'X-Checksum',
        'Proxy-Authorization': 'Basic Zm9vOmJhcg==',
        'Proxy-Connection': 'keep-alive',
        'X-Twilio-Signature': 'kept',
      }),
    );
    expect(await readHead(client)).toMatch(/^HTTP\/1\.1 101 /);
    const seen = backend.upgrades[0]!.headers;
    for (const name of [
      'x-secret',
      'keep-alive',
      'te',
      'trailer',
      'proxy-authorization',
      'proxy-connection',
    ]) {
      expect(seen[name], name).toBeUndefined();
    }
    expect(seen.connection).toBe('Upgrade');
    expect(seen.upgrade).toBe('websocket');
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-twilio-signature']).toBe('kept');
  });

  it.each([
    '/media-stream/CA0123456789abcdef0123456789abcdef',
    '/media-stream',
    '/test-agent/s-1?token=abc.DEF-_~%2B%2F%3D&x=1',
    '/test-agent/s-1?a=b?c=d/e:f@g',
  ])('forwards exactly the path it routed on: %s', async (path) => {
    const backend = await startWsBackend();
    const t = await startProxy({
      MEDIA_BACKENDS: backend.hostPort,
      TEST_AGENT_BACKENDS: backend.hostPort,
    });
    await openWs(`${t.wsUrl}${path}`);
    expect(backend.upgrades[0]!.url).toBe(path);
  });

  it('cuts a tunnel with no bytes either way for the idle time, and keeps a busy one', async () => {
    // The busy tunnel sends every 50 ms against a 2 s limit: 40 frames of margin, so only a
    // multi-second stall of this process could make it look idle.
    const backend = await startWsBackend();
    const t = await startProxy({
      MEDIA_BACKENDS: backend.hostPort,
      TUNNEL_IDLE_TIMEOUT_MS: '2000',
    });
    const idle = await openWs(`${t.wsUrl}/media-stream/CAidle`);
    const busy = await openWs(`${t.wsUrl}/media-stream/CAbusy`);
    let echoes = 0;
    busy.on('message', () => echoes++);
    const ticker = setInterval(() => busy.send('frame'), 50);
    const removed = once(t.proxy.tunnels, 'removed');
    try {
      expect(await closed(idle)).toBe(1006);
      await removed;
    } finally {
      clearInterval(ticker);
    }
    expect(busy.readyState).toBe(busy.OPEN);
    expect(echoes).toBeGreaterThan(0);
    const line = t.logs.find((l) => l.msg === 'tunnel closed')!;
    expect(line).toMatchObject({ closedBy: 'proxy', code: 'PROXY_ERR_TUNNEL_IDLE' });
    busy.close();
    await settled(t);
  });

  it('carries a clean WebSocket close through, with the bytes counted', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const ws = await openWs(`${t.wsUrl}/media-stream/CA1`);
    ws.send('x'.repeat(300));
    await nextMessage(ws);
    backend.closeAll(4000);
    expect(await closed(ws)).toBe(4000);
    await settled(t);
    const line = t.logs.find((l) => l.msg === 'tunnel closed')!;
    // Which peer sends its FIN first after the close frames is theirs to race.
    expect(['client', 'backend']).toContain(line.closedBy);
    expect(line.code).toBeUndefined();
    expect(line.bytesFromClient).toBeGreaterThan(300);
    expect(line.bytesFromBackend).toBeGreaterThan(300);
    expect(
      await metricValue(t.adminUrl, 'proxy_tunnel_bytes_total', { direction: 'client_to_backend' }),
    ).toBe(line.bytesFromClient);
  });
});
