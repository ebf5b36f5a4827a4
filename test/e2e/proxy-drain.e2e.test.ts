import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { entryPoints, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

async function startEchoWorker(): Promise<string> {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const server = createServer((_req, res) => res.end('ok'));
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {});
      ws.on('message', (data: Buffer) => ws.send(`echo:${data.toString()}`));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(async () => {
    for (const ws of wss.clients) ws.terminate();
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
  });
  return `127.0.0.1:${(server.address() as { port: number }).port}`;
}

async function startProxy(
  env: Record<string, string>,
): Promise<SpawnedProcess & { adminUrl: string }> {
  const proxy = await spawnProcess('proxy', entryPoints.proxy, {
    env: { PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', ...env },
  });
  onTestFinished(() => proxy.kill());
  return Object.assign(proxy, {
    adminUrl: `http://127.0.0.1:${String(proxy.listening.adminPort)}`,
  });
}

async function openCall(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/media-stream/CAdrain`, {
    perMessageDeflate: false,
  });
  ws.on('error', () => {});
  onTestFinished(() => ws.terminate());
  await once(ws, 'open');
  return ws;
}

async function echo(ws: WebSocket, text: string): Promise<string> {
  ws.send(text);
  const [data] = (await once(ws, 'message')) as [Buffer];
  return data.toString();
}

/** Resolves with the connect error code, or 'connected'. */
async function tryConnect(port: number): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port });
  try {
    await once(socket, 'connect');
    return 'connected';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? 'error';
  } finally {
    socket.destroy();
  }
}

describe('proxy process: drain on SIGTERM', () => {
  it('turns /readyz 503, refuses new connections, keeps the live tunnel, and exits 0 when it ends', async () => {
    const proxy = await startProxy({
      MEDIA_BACKENDS: await startEchoWorker(),
      DRAIN_TIMEOUT_MS: '30000',
    });
    const call = await openCall(proxy.port);
    expect(await echo(call, 'before')).toBe('echo:before');

    proxy.signal('SIGTERM');
    await proxy.waitForLog((l) => l.msg === 'draining: readiness 503, no new connections');
    expect((await fetch(`${proxy.adminUrl}/readyz`)).status).toBe(503);
    expect(await tryConnect(proxy.port)).toBe('ECONNREFUSED');
    for (let i = 0; i < 5; i++) expect(await echo(call, `during ${i}`)).toBe(`echo:during ${i}`);
    expect(proxy.child.exitCode).toBeNull();

    call.close();
    expect(await proxy.exited).toBe(0);
    expect(proxy.logs.some((l) => l.msg === 'drained')).toBe(true);
    expect(proxy.logs.find((l) => l.msg === 'tunnel closed')?.code).toBeUndefined();
  });

  it('destroys the tunnels left at the drain deadline and exits 1', async () => {
    const proxy = await startProxy({
      MEDIA_BACKENDS: await startEchoWorker(),
      DRAIN_TIMEOUT_MS: '500',
    });
    const call = await openCall(proxy.port);
    expect(await echo(call, 'hello')).toBe('echo:hello');
    const closed = once(call, 'close');
    proxy.signal('SIGTERM');
    expect(await proxy.exited).toBe(1);
    const [code] = (await closed) as [number];
    // A media call gets a close frame 1012 at a frame boundary (Twilio then asks the
    // <Connect action> URL for a fresh stream), not a dropped connection.
    expect(code).toBe(1012);
    expect(proxy.logs.find((l) => l.msg === 'tunnel closed')).toMatchObject({
      closedBy: 'proxy',
      code: 'PROXY_ERR_DRAIN_FORCED',
    });
  });

  it('forces at once on a second signal', async () => {
    const proxy = await startProxy({
      MEDIA_BACKENDS: await startEchoWorker(),
      DRAIN_TIMEOUT_MS: '60000',
    });
    const call = await openCall(proxy.port);
    expect(await echo(call, 'hello')).toBe('echo:hello');
    proxy.signal('SIGTERM');
    await proxy.waitForLog((l) => l.msg === 'draining: readiness 503, no new connections');
    proxy.signal('SIGTERM');
    expect(await proxy.exited).toBe(1);
    expect(proxy.logs.some((l) => l.code === 'PROXY_ERR_DRAIN_FORCED')).toBe(true);
  });
});
