import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  closed,
  handshakeHeaders,
  metricValue,
  nextMessage,
  openSocket,
  openWs,
  rawRequest,
  startProxy,
  startRawBackend,
  startWsBackend,
} from './helpers/index.js';

/** Everything received on `socket` until the proxy closes it. */
function readUntilClose(socket: Socket): Promise<string> {
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  return new Promise((resolve) => socket.once('close', () => resolve(text)));
}

describe('ProxyServer drain', () => {
  it('turns readiness 503, refuses new connections, keeps live tunnels, and closes when they end', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const ws = await openWs(`${t.wsUrl}/media-stream/CA1`);
    expect((await fetch(`${t.adminUrl}/readyz`)).status).toBe(200);

    let isClosed = false;
    const closing = t.proxy.close().then(() => (isClosed = true));
    const ready = await fetch(`${t.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'draining' });
    expect((await fetch(`${t.adminUrl}/healthz`)).status).toBe(200);
    expect(await metricValue(t.adminUrl, 'proxy_draining')).toBe(1);
    await expect(fetch(`${t.httpUrl}/healthz`)).rejects.toThrow();

    for (let i = 0; i < 3; i++) {
      ws.send(`frame ${i}`);
      expect(await nextMessage(ws)).toBe(`backend:frame ${i}`);
    }
    expect(isClosed).toBe(false);
    ws.close();
    await closing;
    expect(t.proxy.tunnels.size).toBe(0);
    expect(t.logs.find((l) => l.msg === 'tunnel closed')?.code).toBeUndefined();
  });

  it('ends the tunnels left when forced: media calls with a close frame (1012), others cut', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({
      MEDIA_BACKENDS: backend.hostPort,
      TEST_AGENT_BACKENDS: backend.hostPort,
    });
    const calls = [
      await openWs(`${t.wsUrl}/media-stream/CA1`),
      await openWs(`${t.wsUrl}/media-stream/CA2`),
      await openWs(`${t.wsUrl}/test-agent/s-1`),
    ];
    t.proxy.beginDrain();
    const closing = t.proxy.close();
    await t.proxy.destroy();
    await closing;
    // A close frame lets Twilio run the TwiML after <Connect> (its action URL brings the call back).
    expect(await Promise.all(calls.map(closed))).toEqual([1012, 1012, 1006]);
    expect(t.proxy.tunnels.size).toBe(0);
    const lines = t.logs.filter((l) => l.msg === 'tunnel closed');
    expect(lines.map((l) => [l.closedBy, l.code])).toEqual([
      ['proxy', 'PROXY_ERR_DRAIN_FORCED'],
      ['proxy', 'PROXY_ERR_DRAIN_FORCED'],
      ['proxy', 'PROXY_ERR_DRAIN_FORCED'],
    ]);
  });

  it('is idempotent: close twice is one close, beginDrain twice is one drain', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    t.proxy.beginDrain();
    t.proxy.beginDrain();
    expect(t.proxy.close()).toBe(t.proxy.close());
    await t.proxy.close();
    expect(t.logs.filter((l) => String(l.msg).startsWith('draining'))).toHaveLength(1);
    await expect(t.proxy.start()).rejects.toMatchObject({ code: 'RUNTIME_ERR_CLOSED' });
  });

  it('answers 503 to an upgrade on a connection accepted before the drain', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const client = await openSocket(t.port);
    const answer = readUntilClose(client);
    t.proxy.beginDrain();
    client.write(rawRequest('GET /media-stream/CA1 HTTP/1.1', handshakeHeaders()));
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 503 /);
    expect(text).toContain('Retry-After: 5');
    expect(text).toContain('PROXY_ERR_DRAINING');
    expect(backend.upgrades).toHaveLength(0);
  });

  it('finishes a plain request in flight and closes its connection afterwards', async () => {
    // The script does nothing: the test answers on the socket once the drain has begun.
    const backend = await startRawBackend(() => {});
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const client = await openSocket(t.port);
    const answer = readUntilClose(client);
    const requested = once(backend, 'request');
    client.write(
      'POST /media-stream/status HTTP/1.1\r\nHost: edge.test\r\nContent-Length: 0\r\n\r\n',
    );
    const [, upstream] = (await requested) as [string, Socket];
    t.proxy.beginDrain();
    upstream.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
    const text = await answer;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.toLowerCase()).toContain('connection: close');
    expect(text.endsWith('\r\n\r\nok')).toBe(true);
    await t.proxy.close();
  });
});
