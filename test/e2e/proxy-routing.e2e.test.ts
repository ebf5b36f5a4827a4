import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { entryPoints, repoRoot, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

/** A worker stand-in: echoes `<name>:<message>`, answers /readyz 200 and plain requests with JSON. */
async function startEchoWorker(name: string): Promise<{ hostPort: string; upgrades: string[] }> {
  const upgrades: string[] = [];
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const server: Server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ name, url: req.url, forwardedFor: req.headers['x-forwarded-for'] }));
  });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    upgrades.push(req.url ?? '');
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {});
      ws.on('message', (data: Buffer) => ws.send(`${name}:${data.toString()}`));
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
  const address = server.address() as { port: number };
  return { hostPort: `127.0.0.1:${address.port}`, upgrades };
}

async function startProxy(
  env: Record<string, string>,
): Promise<SpawnedProcess & { adminPort: number }> {
  const proxy = await spawnProcess('proxy', entryPoints.proxy, {
    env: { PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', ...env },
  });
  onTestFinished(() => proxy.kill());
  return Object.assign(proxy, { adminPort: Number(proxy.listening.adminPort) });
}

async function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
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

/** Writes raw bytes and returns what came back once the proxy closed the connection. */
async function rawExchange(port: number, data: string): Promise<string> {
  const socket: Socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  onTestFinished(() => {
    socket.destroy();
  });
  await once(socket, 'connect');
  let text = '';
  socket.on('data', (c: Buffer) => (text += c.toString('latin1')));
  socket.write(data);
  await once(socket, 'close');
  return text;
}

const handshake = (path: string, extra = ''): string =>
  `GET ${path} HTTP/1.1\r\nHost: edge.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

describe('proxy process: routing', () => {
  it('routes both pools, skips a dead backend, refuses bad input and stays up', async () => {
    const media = await startEchoWorker('media-1');
    const agent = await startEchoWorker('agent-1');
    const dead = '127.0.0.1:1';
    const proxy = await startProxy({
      MEDIA_BACKENDS: `${dead},${media.hostPort}`,
      TEST_AGENT_BACKENDS: agent.hostPort,
    });
    const base = `ws://127.0.0.1:${proxy.port}`;

    for (let i = 0; i < 4; i++) {
      const call = await openWs(`${base}/media-stream/CA${i}`);
      expect(await echo(call, `frame ${i}`)).toBe(`media-1:frame ${i}`);
    }
    const session = await openWs(`${base}/test-agent/sess-1?token=abc`);
    expect(await echo(session, 'hello')).toBe('agent-1:hello');
    expect(agent.upgrades).toEqual(['/test-agent/sess-1?token=abc']);

    const twiml = await fetch(`http://127.0.0.1:${proxy.port}/media-stream/twiml`, {
      method: 'POST',
      headers: { 'x-forwarded-for': '6.6.6.6' },
    });
    expect(await twiml.json()).toEqual({
      name: 'media-1',
      url: '/media-stream/twiml',
      forwardedFor: '127.0.0.1',
    });

    for (const [request, status] of [
      [handshake('/media-stream/%2e%2e/admin'), 400],
      [handshake('/media-stream/CA1', 'Host: x:99999\r\n'), 400],
      [handshake('/admin'), 404],
      [handshake('/media-stream/CA1').replace('websocket', 'h2c'), 400],
      ['GET / HTTP/1.1\r\nHost: edge.test\r\n\r\n', 404],
    ] as const) {
      expect(await rawExchange(proxy.port, request)).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
    }
    const metrics = await (await fetch(`http://127.0.0.1:${proxy.adminPort}/metrics`)).text();
    expect(metrics).toContain('proxy_upgrades_total{route="media-stream",outcome="ok"} 4');
    expect(metrics).toContain('proxy_upgrades_total{route="none",outcome="bad_path"} 1');
    expect(metrics).toContain(`proxy_backend_state{pool="media",backend="${dead}",state="down"} 1`);
    expect(metrics).toContain('process_cpu_seconds_total');
    expect(proxy.logs.some((l) => l.code === 'PROXY_ERR_BACKEND_UNREACHABLE')).toBe(true);

    // A client reset while a handshake is pending does not take the process down. (Counted after
    // the metrics above: whether this upgrade is decided before the reset arrives is a race.)
    const resetting = connect({ host: '127.0.0.1', port: proxy.port });
    resetting.on('error', () => {});
    await once(resetting, 'connect');
    resetting.write(handshake('/media-stream/CAreset'));
    resetting.resetAndDestroy();
    await once(resetting, 'close');

    expect((await fetch(`http://127.0.0.1:${proxy.port}/healthz`)).status).toBe(200);
    const next = await openWs(`${base}/media-stream/CAafter`);
    expect(await echo(next, 'still here')).toBe('media-1:still here');
    expect(proxy.child.exitCode).toBeNull();
  });

  it('checks X-Twilio-Signature at the edge when a token is set', async () => {
    const media = await startEchoWorker('media-1');
    const proxy = await startProxy({
      MEDIA_BACKENDS: media.hostPort,
      TWILIO_AUTH_TOKEN: 'test_auth_token_123',
      PUBLIC_URL: 'https://edge.example.com',
    });
    const signed = await rawExchangeUntilHead(
      proxy.port,
      handshake('/media-stream/abc', 'X-Twilio-Signature: Uy/a+D6qJXlryo4pKMzgcaeJ5qY=\r\n'),
    );
    expect(signed).toMatch(/^HTTP\/1\.1 101 /);
    expect(await rawExchange(proxy.port, handshake('/media-stream/abc'))).toMatch(
      /^HTTP\/1\.1 403 /,
    );
    expect(media.upgrades).toEqual(['/media-stream/abc']);
  });

  it('exits 1 with one CONFIG_ERR_INVALID line listing every problem, before binding', async () => {
    const child = spawn(process.execPath, [entryPoints.proxy], {
      cwd: repoRoot,
      env: {
        PATH: process.env.PATH ?? '',
        PORT: '0',
        MEDIA_BACKENDS: 'nope',
        TWILIO_AUTH_TOKEN: 'x',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    onTestFinished(() => {
      child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(1);
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', code: 'CONFIG_ERR_INVALID' });
    expect(lines[0]!.problems).toHaveLength(2);
  });
});

/** Reads until the end of the first response head, then closes. */
async function rawExchangeUntilHead(port: number, data: string): Promise<string> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  onTestFinished(() => {
    socket.destroy();
  });
  await once(socket, 'connect');
  socket.write(data);
  let text = '';
  for await (const chunk of socket) {
    text += (chunk as Buffer).toString('latin1');
    if (text.includes('\r\n\r\n')) break;
  }
  socket.destroy();
  return text;
}
