import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { couldBeUpgrade, headEnd, parseUpgradeHead } from '../src/upgrade-head.js';

const socket = {} as Socket;
const HANDSHAKE = [
  'Host: edge.test',
  'Upgrade: websocket',
  'Connection: keep-alive, Upgrade',
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
  'Sec-WebSocket-Version: 13',
];

function parse(text: string): ReturnType<typeof parseUpgradeHead> {
  const buf = Buffer.from(text, 'latin1');
  const end = headEnd(buf);
  expect(end).toBeGreaterThan(0);
  return parseUpgradeHead(buf, end, socket);
}

const head = (lines: string[], requestLine = 'GET /media-stream/CA1 HTTP/1.1'): string =>
  `${[requestLine, ...lines].join('\r\n')}\r\n\r\n`;

describe('parseUpgradeHead (the listener reads clean upgrades without Node’s parser)', () => {
  it('reads a clean handshake as Node would: lower-case keys, trimmed values, raw pairs', () => {
    const req = parse(head([...HANDSHAKE, 'X-Twilio-Signature:  abc= ']));
    expect(req).toMatchObject({
      method: 'GET',
      url: '/media-stream/CA1',
      httpVersion: '1.1',
      socket,
      headers: {
        host: 'edge.test',
        upgrade: 'websocket',
        connection: 'keep-alive, Upgrade',
        'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'sec-websocket-version': '13',
        'x-twilio-signature': 'abc=',
      },
    });
    expect(req!.rawHeaders.slice(0, 4)).toEqual(['Host', 'edge.test', 'Upgrade', 'websocket']);
  });

  // Each of these goes to Node's own parser, which answers it as it always has.
  const handedToNode: [string, string][] = [
    ['a plain GET (no Connection: upgrade)', head(['Host: edge.test', 'Upgrade: websocket'])],
    ['no Upgrade header', head(['Host: edge.test', 'Connection: upgrade'])],
    ['HTTP/1.0', head(HANDSHAKE, 'GET /media-stream/CA1 HTTP/1.0')],
    ['two spaces in the request line', head(HANDSHAKE, 'GET  /media-stream/CA1 HTTP/1.1')],
    ['a space in the target', head(HANDSHAKE, 'GET /media stream HTTP/1.1')],
    ['POST', head(HANDSHAKE, 'POST /media-stream/CA1 HTTP/1.1')],
    ['a repeated header (two Hosts)', head([...HANDSHAKE, 'Host: other.test'])],
    ['a repeated header in another case', head([...HANDSHAKE, 'upgrade: websocket'])],
    ['Content-Length', head([...HANDSHAKE, 'Content-Length: 0'])],
    ['Transfer-Encoding', head([...HANDSHAKE, 'Transfer-Encoding: chunked'])],
    ['a folded line', head([...HANDSHAKE, 'X-A: 1', ' continued'])],
    ['a tab in a value', head([...HANDSHAKE, 'X-A: a\tb'])],
    ['non-ASCII in the target', head(HANDSHAKE, 'GET /media-stream/caf\u00e9 HTTP/1.1')],
    ['a bare LF', head([...HANDSHAKE, 'X-A: a\nb'])],
    ['a NUL', head([...HANDSHAKE, 'X-A: a\u0000b'])],
    ['no colon', head([...HANDSHAKE, 'X-A'])],
    ['a space before the colon', head([...HANDSHAKE, 'X-A : 1'])],
    ['__proto__', head([...HANDSHAKE, '__proto__: 1'])],
    [
      'more than 100 headers',
      head([...HANDSHAKE, ...Array.from({ length: 96 }, (_, i) => `X-${i}: ${i}`)]),
    ],
  ];
  it.each(handedToNode)('leaves %s to Node', (_what, text) => {
    expect(parse(text)).toBeUndefined();
  });

  it('takes 100 headers', () => {
    const lines = [...HANDSHAKE, ...Array.from({ length: 95 }, (_, i) => `X-${i}: ${i}`)];
    expect(parse(head(lines))).toBeDefined();
  });

  it('tells early whether bytes could still be an upgrade', () => {
    expect(couldBeUpgrade(Buffer.from('G'))).toBe(true);
    expect(couldBeUpgrade(Buffer.from('GET /x'))).toBe(true);
    expect(couldBeUpgrade(Buffer.from('POST /x'))).toBe(false);
    expect(couldBeUpgrade(Buffer.from('GARBAGE'))).toBe(false);
    expect(couldBeUpgrade(Buffer.from([0x16, 0x03, 0x01]))).toBe(false);
  });
});
