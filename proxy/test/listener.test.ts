import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  eventually,
  exchange,
  handshakeHeaders,
  openSocket,
  rawRequest,
  readHead,
  startProxy,
  startWsBackend,
} from './helpers/index.js';

// The listener reads a connection's first request head itself: clean upgrades skip Node's HTTP
// parser, everything else is handed to it with the bytes put back. These check the seams.
describe('Listener: first request head read before Node’s parser', () => {
  it('upgrades a handshake that arrives in pieces', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const client = await openSocket(t.port);
    const text = rawRequest('GET /media-stream/CA1 HTTP/1.1', handshakeHeaders());
    client.write(text.slice(0, 2));
    await new Promise((r) => setTimeout(r, 20));
    client.write(text.slice(2, 40));
    await new Promise((r) => setTimeout(r, 20));
    client.write(text.slice(40));
    expect(await readHead(client)).toMatch(/^HTTP\/1\.1 101 /);
    expect(backend.upgrades).toHaveLength(1);
    client.destroy();
    await t.proxy.tunnels.waitForEmpty();
  });

  it('hands a plain request to Node’s server, keep-alive included', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const client = await openSocket(t.port);
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    const probe = rawRequest('GET /healthz HTTP/1.1', { Host: 'edge.test' });
    client.write(probe);
    await eventually(() => Buffer.concat(chunks).toString().includes('\r\n\r\n'), 5000, 'first');
    client.write(probe);
    await eventually(
      () => Buffer.concat(chunks).toString().split('HTTP/1.1 200 ').length === 3,
      5000,
      'second answer on the same connection',
    );
  });

  it('answers 408 to a connection that sends nothing, counted from accept', async () => {
    const t = await startProxy({ MEDIA_BACKENDS: '127.0.0.1:1', HEADERS_TIMEOUT_MS: '300' });
    const started = Date.now();
    const client = await openSocket(t.port);
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    await once(client, 'close');
    expect(Buffer.concat(chunks).toString()).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('keeps the header deadline from accept for a request handed to Node after a slow start', async () => {
    const t = await startProxy({ MEDIA_BACKENDS: '127.0.0.1:1', HEADERS_TIMEOUT_MS: '400' });
    const started = Date.now();
    const client = await openSocket(t.port);
    const chunks: Buffer[] = [];
    client.on('data', (c: Buffer) => chunks.push(c));
    await new Promise((r) => setTimeout(r, 250));
    // Not an upgrade: Node's parser gets it from here, but the clock started at accept.
    client.write('POST /media-stream/twiml HTTP/1.1\r\nHost: edge.test\r\nX-Slow: ');
    await once(client, 'close');
    expect(Buffer.concat(chunks).toString()).toMatch(/^HTTP\/1\.1 408 /);
    // Node's own clock alone would answer at 250 + 400 ms at the earliest.
    expect(Date.now() - started).toBeLessThan(250 + 400);
  });

  it('answers an oversized upgrade head 431 as soon as it is too big', async () => {
    const t = await startProxy({ MEDIA_BACKENDS: '127.0.0.1:1' });
    const answer = await exchange(
      t.port,
      rawRequest('GET /media-stream/CA1 HTTP/1.1', {
        ...handshakeHeaders(),
        'X-Big': 'a'.repeat(20_000),
      }),
    );
    expect(answer.status).toBe(431);
  });
});
