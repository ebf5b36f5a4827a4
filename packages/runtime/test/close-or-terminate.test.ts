import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { closeOrTerminate } from '../src/index.js';
import { connectWs, rawConnect, upgradeRequest } from './helpers.js';

// Real sockets on loopback: a ws server, and either a ws client (which answers the close frame)
// or a raw TCP client that completes the handshake and then never answers anything.

/** A ws server on port 0; resolves its URL and the server side of the next connection. */
async function server(): Promise<{ url: string; next: () => Promise<WebSocket> }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close(() => resolve());
      }),
  );
  await once(wss, 'listening');
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}/`,
    next: async () => {
      const [ws] = (await once(wss, 'connection')) as [WebSocket];
      ws.on('error', () => undefined);
      return ws;
    },
  };
}

/** A peer that completes the upgrade, then reads everything and answers nothing. */
async function silentPeer(url: string): Promise<{ received: () => Buffer }> {
  const socket = await rawConnect(url);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.write(upgradeRequest('/', { Host: '127.0.0.1' }));
  return { received: () => Buffer.concat(chunks) };
}

/** Resolves with the code ws reports when `ws` closes, and how long after `since` it did. */
function closed(ws: WebSocket, since: number): Promise<{ code: number; afterMs: number }> {
  return new Promise((resolve) => {
    ws.once('close', (code) => resolve({ code, afterMs: performance.now() - since }));
  });
}

describe('closeOrTerminate', () => {
  it('sends the close frame, and cuts a peer that never answers it once the deadline passes', async () => {
    const s = await server();
    const accepted = s.next();
    const peer = await silentPeer(s.url);
    const ws = await accepted;
    const start = performance.now();
    const ended = closed(ws, start);
    closeOrTerminate(ws, 1013, 'slow reader', 150);
    const { code, afterMs } = await ended;
    // 1006: ended without the peer's close frame, i.e. terminated.
    expect(code).toBe(1006);
    expect(afterMs).toBeGreaterThanOrEqual(140);
    const bytes = peer.received();
    const frame = bytes.subarray(bytes.indexOf('\r\n\r\n') + 4);
    expect(frame[0]).toBe(0x88); // FIN + close opcode
    expect(frame.readUInt16BE(2)).toBe(1013);
    expect(frame.subarray(4).toString()).toBe('slow reader');
  });

  it('leaves a peer that answers the close frame alone, and disarms itself', async () => {
    const s = await server();
    const accepted = s.next();
    const client = await connectWs(s.url);
    const ws = await accepted;
    const clientClosed = once(client, 'close');
    const listeners = ws.listenerCount('close');
    const ended = closed(ws, performance.now());
    closeOrTerminate(ws, 1000, 'bye', 60_000);
    expect(ws.listenerCount('close')).toBe(listeners + 2);
    // A clean handshake: both sides see the code sent, not 1006.
    expect((await ended).code).toBe(1000);
    expect((await clientClosed)[0]).toBe(1000);
    // Its own listener is gone once the socket closed (ws's server keeps one for client tracking).
    expect(ws.listenerCount('close')).toBe(listeners);
  });

  it('returns a cancel that disarms the deadline: the socket stays in its close handshake', async () => {
    const s = await server();
    const accepted = s.next();
    await silentPeer(s.url);
    const ws = await accepted;
    const listeners = ws.listenerCount('close');
    const cancel = closeOrTerminate(ws, 1012, 'service restart', 50);
    cancel();
    expect(ws.listenerCount('close')).toBe(listeners);
    // Proving an absence needs a wait: three deadlines later it has not been cut.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(ws.readyState).toBe(WebSocket.CLOSING);
  });

  it('leaves a closed socket alone', async () => {
    const s = await server();
    const accepted = s.next();
    const client = await connectWs(s.url);
    const ws = await accepted;
    const clientClosed = once(client, 'close');
    ws.terminate();
    await Promise.all([once(ws, 'close'), clientClosed]);
    const listeners = ws.listenerCount('close');
    const cancel = closeOrTerminate(ws, 1000, 'bye', 50);
    expect(ws.readyState).toBe(WebSocket.CLOSED);
    expect(ws.listenerCount('close')).toBe(listeners);
    expect(cancel()).toBeUndefined();
  });

  it('still cuts the socket when close() throws (a code ws does not allow)', async () => {
    const s = await server();
    const accepted = s.next();
    await silentPeer(s.url);
    const ws = await accepted;
    const ended = closed(ws, performance.now());
    expect(() => closeOrTerminate(ws, 999, 'bad', 100)).toThrow(TypeError);
    expect((await ended).code).toBe(1006);
  });
});
