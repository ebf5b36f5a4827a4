import { describe, expect, it } from 'vitest';
import {
  eventually,
  exchange,
  handshakeHeaders,
  openSocket,
  rawRequest,
  startProxy,
  startWsBackend,
} from './helpers/index.js';

const upgrade = (
  target: string,
  changes: Record<string, string | undefined> = {},
  body = '',
): string => rawRequest(`GET ${target} HTTP/1.1`, { ...handshakeHeaders(), ...changes }, body);

// Every class of bad input a reverse proxy is known to mishandle (path tricks, smuggling-shaped
// framing, odd Host values, broken handshakes) and the handshake gate, sent over a raw
// socket: each gets its status, the proxy closes the connection itself, no backend is contacted,
// nothing stays open on either side, and the proxy keeps serving.
const cases: [string, number, string, string | Buffer][] = [
  // Paths: only canonical ones, routed raw.
  ['dot segments', 400, 'PROXY_ERR_BAD_PATH', upgrade('/media-stream/../admin')],
  ['encoded dots', 400, 'PROXY_ERR_BAD_PATH', upgrade('/media-stream/%2e%2e/admin')],
  ['encoded slash', 400, 'PROXY_ERR_BAD_PATH', upgrade('/media-stream/..%2fadmin')],
  ['encoded backslash', 400, 'PROXY_ERR_BAD_PATH', upgrade('/media-stream%5c..%5cadmin')],
  ['backslash', 400, 'PROXY_ERR_BAD_PATH', upgrade('/media-stream\\..\\admin')],
  ['empty segment', 400, 'PROXY_ERR_BAD_PATH', upgrade('/media-stream//x')],
  ['semicolon', 400, 'PROXY_ERR_BAD_PATH', upgrade('/media-stream;/../admin')],
  ['encoded NUL', 400, 'PROXY_ERR_BAD_PATH', upgrade('/media-stream/a%00b')],
  ['double encoding', 400, 'PROXY_ERR_BAD_PATH', upgrade('/media-stream/%252e%252e/admin')],
  // Node's parser refuses raw non-ASCII in the target before the route table sees it.
  [
    'non-ASCII',
    400,
    'PROXY_ERR_BAD_REQUEST',
    Buffer.from(upgrade('/media-stream/caf\u00e9'), 'utf8'),
  ],
  ['authority-looking path', 400, 'PROXY_ERR_BAD_PATH', upgrade('//evil.com/media-stream/x')],
  ['absolute-form target', 400, 'PROXY_ERR_BAD_PATH', upgrade('http://evil.com/media-stream/x')],
  ['unknown path', 404, 'PROXY_ERR_NO_ROUTE', upgrade('/admin')],
  ['upgrade on a plain route', 404, 'PROXY_ERR_NO_ROUTE', upgrade('/media-stream/a/b')],
  // The handshake gate.
  [
    'wrong method',
    400,
    'PROXY_ERR_BAD_HANDSHAKE',
    rawRequest('POST /media-stream/CA1 HTTP/1.1', { ...handshakeHeaders(), 'Content-Length': '0' }),
  ],
  [
    'Upgrade: h2c',
    400,
    'PROXY_ERR_BAD_HANDSHAKE',
    upgrade('/media-stream/CA1', { Upgrade: 'h2c', 'HTTP2-Settings': 'AAMAAABkAARAAAAAAAIAAAAA' }),
  ],
  [
    'missing key',
    400,
    'PROXY_ERR_BAD_HANDSHAKE',
    upgrade('/media-stream/CA1', { 'Sec-WebSocket-Key': undefined }),
  ],
  [
    'bad key',
    400,
    'PROXY_ERR_BAD_HANDSHAKE',
    upgrade('/media-stream/CA1', { 'Sec-WebSocket-Key': 'not-a-key' }),
  ],
  [
    'version 12',
    400,
    'PROXY_ERR_BAD_HANDSHAKE',
    upgrade('/media-stream/CA1', { 'Sec-WebSocket-Version': '12' }),
  ],
  [
    'Content-Length',
    400,
    'PROXY_ERR_BAD_HANDSHAKE',
    upgrade('/media-stream/CA1', { 'Content-Length': '5' }, 'hello'),
  ],
  [
    'Transfer-Encoding',
    400,
    'PROXY_ERR_BAD_HANDSHAKE',
    upgrade('/media-stream/CA1', { 'Transfer-Encoding': 'chunked' }, '5\r\nhello\r\n0\r\n\r\n'),
  ],
  [
    'bytes before the 101',
    400,
    'PROXY_ERR_BAD_HANDSHAKE',
    upgrade('/media-stream/CA1', {}, 'GET /admin HTTP/1.1\r\n\r\n'),
  ],
  // Host never routes and never crashes.
  ['Host missing', 400, 'PROXY_ERR_BAD_HOST', upgrade('/media-stream/CA1', { Host: undefined })],
  ['Host "["', 400, 'PROXY_ERR_BAD_HOST', upgrade('/media-stream/CA1', { Host: '[' })],
  ['Host "a b"', 400, 'PROXY_ERR_BAD_HOST', upgrade('/media-stream/CA1', { Host: 'a b' })],
  ['Host "x:99999"', 400, 'PROXY_ERR_BAD_HOST', upgrade('/media-stream/CA1', { Host: 'x:99999' })],
  // Plain requests.
  [
    'plain unknown path',
    404,
    'PROXY_ERR_NO_ROUTE',
    rawRequest('GET / HTTP/1.1', { Host: 'edge.test' }),
  ],
  [
    'plain dot segments',
    400,
    'PROXY_ERR_BAD_PATH',
    rawRequest('GET /test-agent/../media-stream/x HTTP/1.1', { Host: 'edge.test' }),
  ],
  [
    'plain Host "x:99999"',
    400,
    'PROXY_ERR_BAD_HOST',
    rawRequest('GET /media-stream/twiml HTTP/1.1', { Host: 'x:99999' }),
  ],
  [
    'plain Host "["',
    400,
    'PROXY_ERR_BAD_HOST',
    rawRequest('GET /test-agent/ HTTP/1.1', { Host: '[' }),
  ],
  ['plain Host missing', 400, 'PROXY_ERR_BAD_HOST', rawRequest('GET /test-agent/ HTTP/1.1', {})],
  ['malformed request line', 400, 'PROXY_ERR_BAD_REQUEST', 'GARBAGE\r\n\r\n'],
  [
    'oversized headers',
    431,
    'PROXY_ERR_HEADER_TOO_LARGE',
    rawRequest('GET /media-stream/twiml HTTP/1.1', {
      Host: 'edge.test',
      'X-Big': 'a'.repeat(20_000),
    }),
  ],
];

describe('bad input', () => {
  it.each(cases)('%s → %i', async (_what, status, code, data) => {
    const backend = await startWsBackend();
    const t = await startProxy({
      MEDIA_BACKENDS: backend.hostPort,
      TEST_AGENT_BACKENDS: backend.hostPort,
    });
    const answer = await exchange(t.port, data);
    expect(answer.status).toBe(status);
    expect(answer.text).toContain(code);
    expect(answer.text.toLowerCase()).toContain('connection: close');
    expect(backend.upgrades).toHaveLength(0);
    expect(backend.requests).toHaveLength(0);
    expect(t.proxy.tunnels.size).toBe(0);
    await eventually(async () => (await t.proxy.connections()) === 0, 5000, 'proxy sockets closed');
    await eventually(() => backend.openSockets === 0, 5000, 'backend sockets closed');
    expect((await fetch(`${t.httpUrl}/healthz`)).status).toBe(200);
  });

  it('answers 408 to headers that never finish (slowloris)', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort, HEADERS_TIMEOUT_MS: '300' });
    const answer = await exchange(
      t.port,
      'GET /media-stream/CA1 HTTP/1.1\r\nHost: edge.test\r\nX-Slow: ',
    );
    expect(answer.status).toBe(408);
    expect(answer.text).toContain('PROXY_ERR_HEADER_TIMEOUT');
    expect(backend.upgrades).toHaveLength(0);
    await eventually(async () => (await t.proxy.connections()) === 0, 5000, 'proxy sockets closed');
  });

  it('closes a refused upgrade even when the client keeps sending', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const client = await openSocket(t.port);
    const ended = new Promise<string>((resolve) => {
      let text = '';
      client.on('data', (c: Buffer) => (text += c.toString()));
      client.on('end', () => resolve(text));
    });
    client.write(upgrade('/nowhere'));
    await new Promise((resolve) => client.once('data', resolve));
    client.write('more bytes the proxy must not act on');
    expect(await ended).toMatch(/^HTTP\/1\.1 404 /);
    await eventually(async () => (await t.proxy.connections()) === 0, 5000, 'proxy sockets closed');
  });
});
