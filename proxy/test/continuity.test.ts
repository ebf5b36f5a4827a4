import { once } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import {
  closed,
  eventually,
  handshakeHeaders,
  metricValue,
  openSocket,
  openWs,
  rawRequest,
  startProxy,
  startRawBackend,
  startWsBackend,
  switchingProtocols,
  type TestProxy,
  type WsBackend,
} from './helpers/index.js';

// Calls on the media route outlive their worker: the proxy tracks frame boundaries and moves the
// call to another backend. Backends are real `ws` servers (or raw sockets where a test needs to
// see exact bytes); the caller is a real `ws` client or a raw socket writing masked frames.

const SECRET = 'continuity-test-secret-0123456789';

interface Recording {
  backend: WsBackend;
  got: string[];
}

async function recordingBackend(name: string): Promise<Recording> {
  const got: string[] = [];
  const backend = await startWsBackend({
    name,
    onMessage: (ws, data) => {
      const text = data.toString();
      got.push(text);
      // Like a media worker, nothing answers `connected`; the rest is echoed with the name.
      if (text !== 'connected') ws.send(`${name}:${text}`);
    },
  });
  return { backend, got };
}

async function twoBackends(env: Record<string, string> = {}): Promise<{
  t: TestProxy;
  a: Recording;
  b: Recording;
}> {
  const a = await recordingBackend('A');
  const b = await recordingBackend('B');
  const t = await startProxy({
    MEDIA_BACKENDS: `${a.backend.hostPort},${b.backend.hostPort}`,
    CALL_TOKEN_SECRET: SECRET,
    ...env,
  });
  return { t, a, b };
}

/** Opens a call and sends `connected` and `start`; returns it with the backend that has it. */
async function startCall(
  t: TestProxy,
  a: Recording,
  b: Recording,
  callSid = 'CA1',
): Promise<{
  ws: WebSocket;
  next: () => Promise<string>;
  first: Recording;
  second: Recording;
}> {
  const ws = await openWs(`${t.wsUrl}/media-stream/${callSid}`);
  const next = inbox(ws);
  ws.send('connected');
  ws.send('start');
  const echo = await next();
  const first = echo.startsWith('A:') ? a : b;
  return { ws, next, first, second: first === a ? b : a };
}

/** Every message a client receives, in order; `next()` takes the oldest (waiting for one). */
function inbox(ws: WebSocket): () => Promise<string> {
  const queue: string[] = [];
  const waiting: Array<(text: string) => void> = [];
  ws.on('message', (data: Buffer) => {
    const text = data.toString();
    const waiter = waiting.shift();
    if (waiter) waiter(text);
    else queue.push(text);
  });
  return () => {
    const text = queue.shift();
    if (text !== undefined) return Promise.resolve(text);
    return new Promise((resolve) => waiting.push(resolve));
  };
}

async function settled(t: TestProxy): Promise<void> {
  await t.proxy.tunnels.waitForEmpty();
  await eventually(async () => (await t.proxy.connections()) === 0, 5000, 'proxy sockets closed');
}

/** A masked client frame (RFC 6455 §5.2). */
function clientFrame(payload: Buffer | string, opcode = 1, first = 0x80): Buffer {
  const body = Buffer.from(payload);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const len = body.length;
  const header =
    len < 126
      ? Buffer.from([first | opcode, 0x80 | len])
      : Buffer.from([first | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  const masked = Buffer.from(body.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([header, mask, masked]);
}

/** Text payloads of unmasked server frames in `bytes`, for a raw caller. */
function serverTexts(bytes: Buffer): { texts: string[]; closeCode: number | undefined } {
  const texts: string[] = [];
  let at = 0;
  let closeCode: number | undefined;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f;
    let len = bytes[at + 1]! & 0x7f;
    let start = at + 2;
    if (len === 126) {
      len = bytes.readUInt16BE(at + 2);
      start += 2;
    }
    if (start + len > bytes.length) break;
    const payload = bytes.subarray(start, start + len);
    if (opcode === 8) closeCode = payload.readUInt16BE(0);
    else texts.push(payload.toString());
    at = start + len;
  }
  return { texts, closeCode };
}

/** Unmasked text of the masked client frames in `bytes` (what a raw backend received). */
function clientTexts(bytes: Buffer): string[] {
  const texts: string[] = [];
  let at = 0;
  while (at + 6 <= bytes.length) {
    let len = bytes[at + 1]! & 0x7f;
    let start = at + 2;
    if (len === 126) {
      len = bytes.readUInt16BE(at + 2);
      start += 2;
    }
    const mask = bytes.subarray(start, start + 4);
    start += 4;
    if (start + len > bytes.length) break;
    texts.push(
      Buffer.from(bytes.subarray(start, start + len).map((x, i) => x ^ mask[i % 4]!)).toString(),
    );
    at = start + len;
  }
  return texts;
}

/** A raw caller after its 101; `received()` is everything after the head. */
async function rawCall(
  t: TestProxy,
  path = '/media-stream/CA1',
): Promise<{ client: Socket; received: () => Buffer }> {
  const client = await openSocket(t.port);
  const chunks: Buffer[] = [];
  client.on('data', (d: Buffer) => chunks.push(d));
  client.write(rawRequest(`GET ${path} HTTP/1.1`, handshakeHeaders()));
  const all = (): Buffer => Buffer.concat(chunks);
  await eventually(() => all().includes('\r\n\r\n'), 5000, 'the 101');
  expect(all().toString('latin1')).toMatch(/^HTTP\/1\.1 101 /);
  return { client, received: () => all().subarray(all().indexOf('\r\n\r\n') + 4) };
}

describe('call continuity on the media route', () => {
  it('moves a call whose worker goes without a close frame; the caller sees no close', async () => {
    const { t, a, b } = await twoBackends();
    const { ws, next, first, second } = await startCall(t, a, b);
    ws.send('m1');
    await next();
    for (const client of first.backend.clients) client.terminate();
    ws.send('m2');
    expect(await next()).toBe(`${second.backend.name}:start`);
    expect(await next()).toBe(`${second.backend.name}:m2`);
    // The new worker got the call's first two messages verbatim, then only what came after.
    expect(second.got).toEqual(['connected', 'start', 'm2']);
    // The replayed `start` is echoed by the stand-in; a media worker would not answer it.
    expect(first.got).toEqual(['connected', 'start', 'm1']);
    const resumed = second.backend.upgrades[0]!;
    const original = first.backend.upgrades[0]!;
    expect(resumed.url).toBe('/media-stream/CA1');
    expect(resumed.headers['x-tunnel-id']).toBe(original.headers['x-tunnel-id']);
    expect(resumed.headers['sec-websocket-key']).toBe(original.headers['sec-websocket-key']);
    expect(String(resumed.headers['x-callgate-resume'])).toMatch(/^v1\.\d+\.1\.[\w-]{43}$/);
    expect(original.headers['x-callgate-resume']).toBeUndefined();
    expect(ws.readyState).toBe(ws.OPEN);
    expect(
      await metricValue(t.adminUrl, 'proxy_calls_moved_total', { reason: 'backend-closed' }),
    ).toBe(1);
    expect(t.logs.find((l) => l.msg === 'call moved')).toMatchObject({
      from: first.backend.hostPort,
      to: second.backend.hostPort,
      reason: 'backend-closed',
      attempt: 1,
    });
    ws.close();
    expect(await closed(ws)).toBe(1005);
    await settled(t);
    expect(t.logs.find((l) => l.msg === 'tunnel closed')).toMatchObject({ moves: 1 });
  });

  it('swallows a 1012 from the worker (its drain deadline) and moves the call', async () => {
    const { t, a, b } = await twoBackends();
    const { ws, next, first, second } = await startCall(t, a, b);
    const closes: number[] = [];
    ws.on('close', (code: number) => closes.push(code));
    first.backend.closeAll(1012);
    ws.send('after');
    expect(await next()).toBe(`${second.backend.name}:start`);
    expect(await next()).toBe(`${second.backend.name}:after`);
    expect(closes).toEqual([]);
    expect(second.got).toEqual(['connected', 'start', 'after']);
    expect(
      await metricValue(t.adminUrl, 'proxy_calls_moved_total', { reason: 'service-restart' }),
    ).toBe(1);
  });

  it('carries any other worker close code to the caller, and does not move the call', async () => {
    const { t, a, b } = await twoBackends();
    const { ws, first } = await startCall(t, a, b);
    first.backend.closeAll(4409);
    expect(await closed(ws)).toBe(4409);
    await settled(t);
    expect(t.logs.some((l) => l.msg === 'call moved')).toBe(false);
  });

  it('moves calls off a backend an operator drains, and off one marked down', async () => {
    const { t, a, b } = await twoBackends();
    const one = await startCall(t, a, b, 'CA1');
    expect(t.proxy.moveCalls('media', one.first.backend.hostPort)).toBe(1);
    one.ws.send('x');
    expect(await one.next()).toBe(`${one.second.backend.name}:start`);
    expect(await one.next()).toBe(`${one.second.backend.name}:x`);
    await eventually(() => one.first.backend.clients.size === 0, 5000, 'old worker socket gone');

    // Now the call is on `second`: health checks give up on it (a hang).
    t.proxy.pools.get('media')!.get(one.second.backend.hostPort)!.markDown('test: hung');
    one.ws.send('y');
    expect(await one.next()).toBe(`${one.first.backend.name}:start`);
    expect(await one.next()).toBe(`${one.first.backend.name}:y`);
    expect(await metricValue(t.adminUrl, 'proxy_calls_moved_total', { reason: 'operator' })).toBe(
      1,
    );
    expect(
      await metricValue(t.adminUrl, 'proxy_calls_moved_total', { reason: 'backend-down' }),
    ).toBe(1);
    expect(t.logs.filter((l) => l.msg === 'call moved').map((l) => l.attempt)).toEqual([1, 2]);
  });

  it('closes the call toward the caller with 1011 when no worker takes it in time', async () => {
    const only = await recordingBackend('A');
    const t = await startProxy({
      MEDIA_BACKENDS: only.backend.hostPort,
      CALL_MOVE_TIMEOUT_MS: '300',
    });
    const ws = await openWs(`${t.wsUrl}/media-stream/CA1`);
    const next = inbox(ws);
    ws.send('connected');
    ws.send('start');
    await next();
    for (const client of only.backend.clients) client.terminate();
    expect(await closed(ws)).toBe(1011);
    await settled(t);
    expect(
      await metricValue(t.adminUrl, 'proxy_call_moves_failed_total', { reason: 'deadline' }),
    ).toBe(1);
    expect(t.logs.find((l) => l.msg === 'tunnel closed')).toMatchObject({
      closedBy: 'proxy',
      code: 'PROXY_ERR_MOVE_FAILED',
    });
  });

  it('never hands the caller half a frame of a worker that dies mid-frame', async () => {
    const b = await recordingBackend('B');
    const half = Buffer.from([0x81, 10, 0x41, 0x41, 0x41]); // 3 of 10 payload bytes
    const a = await startRawBackend((socket, head) => {
      socket.write(switchingProtocols(head));
      // On the caller's first frame: one whole frame and the start of another, then it dies.
      socket.once('data', () => {
        socket.write(Buffer.concat([Buffer.from([0x81, 2]), Buffer.from('A1'), half]));
        setTimeout(() => socket.destroy(), 20);
      });
    });
    const t = await startProxy({ MEDIA_BACKENDS: a.hostPort, CALL_TOKEN_SECRET: SECRET });
    const ws = await openWs(`${t.wsUrl}/media-stream/CA1`);
    const messages: string[] = [];
    ws.on('message', (data: Buffer) => messages.push(data.toString()));
    // B joins the pool only now, so the first pick was A.
    t.proxy.pools.get('media')!.setMembers('B', [{ host: '127.0.0.1', port: b.backend.port }]);
    ws.send('connected');
    await eventually(() => b.got.length >= 1, 5000, 'the call on B');
    ws.send('hello');
    await eventually(() => messages.includes('B:hello'), 5000, 'B:hello');
    expect(messages).toEqual(['A1', 'B:hello']);
    expect(ws.readyState).toBe(ws.OPEN);
  });

  it('resumes the caller stream at a frame boundary, and drops the oldest frames past the buffer', async () => {
    let bBytes = Buffer.alloc(0);
    let answer: (() => void) | undefined;
    const b = await startRawBackend((socket, head) => {
      socket.on('data', (d: Buffer) => (bBytes = Buffer.concat([bBytes, d])));
      // The new worker answers only when the test says so: frames pile up meanwhile.
      answer = () => socket.write(switchingProtocols(head));
    });
    const firstTwo = Buffer.concat([clientFrame('connected'), clientFrame('start')]);
    const a = await startRawBackend((socket, head) => {
      socket.write(switchingProtocols(head));
      // Once the first 5 bytes of the caller's third frame are here, this worker dies.
      let got = 0;
      socket.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= firstTwo.length + 5) socket.destroy();
      });
    });
    const t = await startProxy({
      MEDIA_BACKENDS: a.hostPort,
      CALL_TOKEN_SECRET: SECRET,
      CALL_MOVE_BUFFER_BYTES: '1024',
    });
    const { client } = await rawCall(t);
    const third = clientFrame('third-frame-cut-in-two');
    client.write(firstTwo);
    client.write(third.subarray(0, 5));
    await eventually(() => t.proxy.tunnels.tunnels[0]?.state === 'moving', 5000, 'moving');
    t.proxy.pools.get('media')!.setMembers('B', [{ host: '127.0.0.1', port: b.port }]);
    client.write(third.subarray(5));
    const frames = Array.from({ length: 40 }, (_, i) => clientFrame(`f${i}-${'x'.repeat(60)}`));
    for (const frame of frames) client.write(frame);
    await eventually(() => answer !== undefined, 5000, 'B asked');
    await eventually(
      () => t.proxy.tunnels.tunnels[0]!.bytesFromClient > 40 * 70,
      5000,
      'frames at the proxy',
    );
    answer!();
    await eventually(
      () => clientTexts(bBytes).includes(`f39-${'x'.repeat(60)}`),
      5000,
      'the newest frame on B',
    );
    const got = clientTexts(bBytes);
    expect(got.slice(0, 2)).toEqual(['connected', 'start']);
    // The frame the old worker got part of is not replayed; what is held fits the buffer.
    expect(got).not.toContain('third-frame-cut-in-two');
    const rest = got.slice(2);
    expect(rest.length).toBeGreaterThan(5);
    expect(rest.length).toBeLessThan(40);
    expect(rest).toEqual(
      frames.slice(40 - rest.length).map((_, i) => `f${40 - rest.length + i}-${'x'.repeat(60)}`),
    );
    expect(await metricValue(t.adminUrl, 'proxy_call_move_dropped_frames_total')).toBe(
      40 - rest.length,
    );
    client.destroy();
  });

  it.each([
    ['an unmasked frame', Buffer.from([0x81, 0x02, 0x68, 0x69]), 1002, 'mask'],
    ['reserved bits', Buffer.concat([clientFrame('x', 1, 0xc0)]), 1002, 'reserved-bits'],
    ['a reserved opcode', clientFrame('x', 3), 1002, 'reserved-opcode'],
    ['a fragmented ping', clientFrame('x', 9, 0x00), 1002, 'control-frame'],
    [
      'a 64-bit length with its top bit set',
      Buffer.from([0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]),
      1002,
      'length',
    ],
    ['a frame above MAX_FRAME_BYTES', clientFrame('z'.repeat(2000)), 1009, 'too-large'],
  ])(
    'answers %s from the caller with a close frame, touching no other call',
    async (_what, bad, code, fault) => {
      const { t, a, b } = await twoBackends({ MAX_FRAME_BYTES: '1024' });
      const other = await startCall(t, a, b, 'CAother');
      const { client, received } = await rawCall(t, '/media-stream/CAbad');
      const gone = once(client, 'close');
      client.write(clientFrame('connected'));
      client.write(bad);
      await gone;
      const { closeCode } = serverTexts(received());
      expect(closeCode).toBe(code);
      expect(
        await metricValue(t.adminUrl, 'proxy_bad_frames_total', { side: 'client', reason: fault }),
      ).toBe(1);
      expect(t.logs.find((l) => l.code === 'PROXY_ERR_BAD_FRAME')).toMatchObject({
        fault,
        side: 'client',
      });
      other.ws.send('still here');
      expect(await other.next()).toBe(`${other.first.backend.name}:still here`);
      other.ws.close();
      await settled(t);
    },
  );

  it('keeps frames byte-exact both ways when the caller writes one byte at a time', async () => {
    const a = await startWsBackend({
      name: 'A',
      onMessage: (ws, data) => ws.send(data, { binary: true }),
    });
    const t = await startProxy({ MEDIA_BACKENDS: a.hostPort });
    const { client, received } = await rawCall(t);
    const payloads = [0, 1, 125, 126, 1000, 65535].map((n) =>
      Buffer.from(Array.from({ length: n }, (_, i) => (i * 7) % 251)),
    );
    // The small frames go one byte per write (every header split everywhere), the large in parts.
    const small = Buffer.concat(payloads.slice(0, 4).map((p) => clientFrame(p, 2)));
    const large = Buffer.concat(payloads.slice(4).map((p) => clientFrame(p, 2)));
    for (let i = 0; i < small.length; i++) {
      client.write(small.subarray(i, i + 1));
      if (i % 64 === 0) await new Promise((r) => setImmediate(r));
    }
    for (let i = 0; i < large.length; i += 1009) client.write(large.subarray(i, i + 1009));
    // Echoed as unmasked binary frames with the same payloads, in order.
    const expected = Buffer.concat(
      payloads.map((p) => {
        const n = p.length;
        const header =
          n < 126 ? Buffer.from([0x82, n]) : Buffer.from([0x82, 126, n >> 8, n & 0xff]);
        return Buffer.concat([header, p]);
      }),
    );
    await eventually(() => received().length >= expected.length, 10_000, 'echoes');
    expect(received().equals(expected)).toBe(true);
    client.destroy();
  });
});
