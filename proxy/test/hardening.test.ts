import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import {
  eventually,
  metricValue,
  nextMessage,
  startProxy,
  startRawBackend,
  startWsBackend,
} from './helpers/index.js';

// 127.0.0.2 plays the attacker, 127.0.0.1 the real callers (loopback is a /8 on Linux).
const ATTACKER = '127.0.0.2';

async function socketFrom(localAddress: string, port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => {});
  onTestFinished(() => {
    socket.destroy();
  });
  await once(socket, 'connect');
  return socket;
}

/** Resolves true when the proxy closes the socket within `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function post(
  url: string,
  body: string,
  options: { localAddress?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'POST',
        localAddress: options.localAddress,
        headers: { 'content-length': String(Buffer.byteLength(body)), ...options.headers },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('per-client-address limits', () => {
  it('drops a squatter’s extra idle connections while other addresses are served', async () => {
    const media = await startWsBackend({ name: 'media' });
    const t = await startProxy({ MEDIA_BACKENDS: media.hostPort, MAX_PENDING_PER_CLIENT: '4' });
    // The squatter holds four connections that never send a request…
    const held = await Promise.all([0, 1, 2, 3].map(() => socketFrom(ATTACKER, t.port)));
    // …and every further one from its address is dropped at accept, however often it tries.
    for (let i = 0; i < 40; i++) {
      const extra = await socketFrom(ATTACKER, t.port);
      expect(await closedWithin(extra, 2000)).toBe(true);
    }
    expect(held.every((s) => !s.destroyed)).toBe(true);
    // Real traffic from another address is untouched.
    const twiml = await post(`${t.httpUrl}/media-stream/twiml`, 'CallSid=CA1');
    expect(twiml.status).toBe(200);
    const ws = new WebSocket(`${t.wsUrl}/media-stream/CA1`);
    await once(ws, 'open');
    ws.send('hi');
    expect(await nextMessage(ws)).toBe('media:hi');
    ws.close();
    expect(await metricValue(t.adminUrl, 'proxy_client_limited_total', { at: 'accept' })).toBe(40);
    expect(
      await metricValue(t.adminUrl, 'proxy_errors_total', { code: 'PROXY_ERR_CLIENT_LIMIT' }),
    ).toBe(40);
    // 40 refusals are a few log lines, then one count (the logger's flood control).
    const lines = t.logs.filter((l) => l.code === 'PROXY_ERR_CLIENT_LIMIT');
    expect(lines.length).toBeLessThanOrEqual(5);
    expect(lines[0]).toMatchObject({ msg: 'client over its limit', client: ATTACKER });
  });

  it('caps open connections (tunnels included) per address', async () => {
    const media = await startWsBackend({ name: 'media' });
    const t = await startProxy({ MEDIA_BACKENDS: media.hostPort, MAX_CONNECTIONS_PER_CLIENT: '3' });
    const tunnels: WebSocket[] = [];
    for (let i = 0; i < 3; i++) {
      const ws = new WebSocket(`${t.wsUrl}/media-stream/CA${i}`, { localAddress: ATTACKER });
      await once(ws, 'open');
      tunnels.push(ws);
    }
    const fourth = new WebSocket(`${t.wsUrl}/media-stream/CA9`, { localAddress: ATTACKER });
    fourth.on('error', () => {});
    await new Promise((resolve) => fourth.once('close', resolve));
    // Another address still gets in.
    const other = new WebSocket(`${t.wsUrl}/media-stream/CA8`);
    await once(other, 'open');
    other.close();
    // One closes: the address may open one again.
    tunnels[0]!.close();
    await eventually(
      () => t.proxy.clientLimits.connections(ATTACKER) === 2,
      5000,
      'tunnel released',
    );
    const again = new WebSocket(`${t.wsUrl}/media-stream/CA7`, { localAddress: ATTACKER });
    await once(again, 'open');
    for (const ws of [...tunnels, again]) ws.close();
  });

  it('behind a trusted load balancer, limits and forwards the client its header names', async () => {
    const media = await startWsBackend({ name: 'media' });
    const t = await startProxy({
      MEDIA_BACKENDS: media.hostPort,
      TRUSTED_PROXY_CIDRS: '127.0.0.3/32',
      MAX_CONNECTIONS_PER_CLIENT: '1',
    });
    // The balancer appends the real client; a client's own claim to the left is ignored.
    const ok = await post(`${t.httpUrl}/media-stream/twiml`, 'CallSid=CA1', {
      localAddress: '127.0.0.3',
      headers: { 'x-forwarded-for': '6.6.6.6, 203.0.113.7' },
    });
    expect(ok.status).toBe(200);
    expect(media.requests.at(-1)?.headers['x-forwarded-for']).toBe('203.0.113.7');
    expect(t.logs.find((l) => l.msg === 'request' && l.status === 200)).toMatchObject({
      client: '203.0.113.7',
    });
    // The same header from an untrusted peer is not believed.
    await post(`${t.httpUrl}/media-stream/twiml`, 'CallSid=CA1', {
      localAddress: ATTACKER,
      headers: { 'x-forwarded-for': '203.0.113.7' },
    });
    expect(media.requests.at(-1)?.headers['x-forwarded-for']).toBe(ATTACKER);
    // One tunnel per client behind the balancer: the second from that client gets 429.
    const first = new WebSocket(`${t.wsUrl}/media-stream/CA1`, {
      localAddress: '127.0.0.3',
      headers: { 'x-forwarded-for': '203.0.113.7' },
    });
    await once(first, 'open');
    // The worker's upgrade names the same client as the plain request did.
    expect(media.upgrades.at(-1)?.headers['x-forwarded-for']).toBe('203.0.113.7');
    const second = new WebSocket(`${t.wsUrl}/media-stream/CA2`, {
      localAddress: '127.0.0.3',
      headers: { 'x-forwarded-for': '203.0.113.7' },
    });
    const [, res] = (await once(second, 'unexpected-response')) as [
      unknown,
      { statusCode: number },
    ];
    expect(res.statusCode).toBe(429);
    // ws reports the aborted handshake as an error; it is the point here.
    second.on('error', () => {});
    second.terminate();
    // Another client behind the same balancer is not affected.
    const third = new WebSocket(`${t.wsUrl}/media-stream/CA3`, {
      localAddress: '127.0.0.3',
      headers: { 'x-forwarded-for': '198.51.100.1' },
    });
    await once(third, 'open');
    first.close();
    third.close();
  });
});

describe('plain HTTP blames the right party', () => {
  it('answers a client whose body trickles with 408, not 504', async () => {
    const media = await startWsBackend({ name: 'media' });
    const t = await startProxy({
      MEDIA_BACKENDS: media.hostPort,
      HEADERS_TIMEOUT_MS: '300',
      REQUEST_TIMEOUT_MS: '700',
      UPSTREAM_HANDSHAKE_TIMEOUT_MS: '200',
    });
    const socket = await socketFrom('127.0.0.1', t.port);
    socket.write(
      'POST /media-stream/twiml HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 100\r\n\r\nC',
    );
    const trickle = setInterval(() => socket.write('a'), 100);
    let text = '';
    socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
    await once(socket, 'close');
    clearInterval(trickle);
    expect(text).toMatch(/^HTTP\/1\.1 408 /);
    expect(text).not.toContain('PROXY_ERR_UPSTREAM_TIMEOUT');
  });

  it('sends a webhook to another worker when the first sends no byte, and marks it down', async () => {
    const frozen = await startRawBackend(() => {}); // accepts, reads, never answers (SIGSTOP)
    const live = await startWsBackend({ name: 'live' });
    const t = await startProxy({
      MEDIA_BACKENDS: `${frozen.hostPort},${live.hostPort}`,
      FIRST_BYTE_TIMEOUT_MS: '200',
    });
    const answers = await Promise.all(
      [1, 2, 3].map((i) => post(`${t.httpUrl}/media-stream/twiml`, `CallSid=CA${i}`)),
    );
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers.every((a) => a.body.includes('"backend":"live"'))).toBe(true);
    expect(frozen.heads.length).toBeGreaterThanOrEqual(1);
    const backend = t.proxy.pools.get('media')!.get(frozen.hostPort)!;
    expect(backend.state).toBe('down');
    expect(
      await metricValue(t.adminUrl, 'proxy_request_retries_total', {
        pool: 'media',
        reason: 'first_byte_timeout',
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(t.logs.find((l) => l.code === 'PROXY_ERR_FIRST_BYTE_TIMEOUT')).toMatchObject({
      msg: 'backend sent no response, trying the next one',
      backend: frozen.hostPort,
    });
    // Nothing stays open on the frozen worker.
    await eventually(() => frozen.openSockets === 0, 5000, 'abandoned attempt closed');
  });
});
