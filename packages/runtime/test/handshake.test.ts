import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { checkHost, checkWebSocketHandshake, type HandshakeRequest } from '../src/handshake.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** A request and how many bytes came after its head. */
type TestRequest = HandshakeRequest & { headLength: number };

/** A valid handshake as Node would hand it over, with `changes` applied (undefined deletes). */
function request(
  changes: Record<string, string | string[] | undefined> = {},
  extra: Partial<Omit<TestRequest, 'headers' | 'rawHeaders'>> = {},
): TestRequest {
  const fields: [string, string][] = [
    ['Host', 'edge.example.com'],
    ['Upgrade', 'websocket'],
    ['Connection', 'Upgrade'],
    ['Sec-WebSocket-Key', KEY],
    ['Sec-WebSocket-Version', '13'],
  ];
  let list = fields.filter(([name]) => !(name.toLowerCase() in lower(changes)));
  for (const [name, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) list = [...list, [name, v]];
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of list) {
    const k = name.toLowerCase();
    headers[k] = headers[k] === undefined ? value : `${headers[k]}, ${value}`;
  }
  return {
    method: 'GET',
    httpVersion: '1.1',
    headers,
    rawHeaders: list.flat(),
    headLength: 0,
    ...extra,
  };
}

/** The check on a test request, with the bytes it says came after its head. */
function check(area: string, r: TestRequest) {
  return checkWebSocketHandshake(area, r, r.headLength);
}

function lower(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k.toLowerCase(), v]));
}

describe('checkWebSocketHandshake', () => {
  it('accepts a well-formed RFC 6455 handshake', () => {
    expect(check('PROXY', request())).toEqual({ ok: true });
  });

  it.each([
    ['Upgrade in another case', { Upgrade: 'WebSocket' }],
    ['Connection with keep-alive', { Connection: 'keep-alive, Upgrade' }],
    ['Host with a port', { Host: 'edge.example.com:8443' }],
    ['Host as IPv4', { Host: '127.0.0.1:8080' }],
    ['Host as IPv6', { Host: '[::1]:8080' }],
    ['Host as mapped IPv6', { Host: '[::ffff:10.0.0.1]' }],
    ['Host with an underscore (Docker names)', { Host: 'callgate_proxy' }],
    ['a subprotocol offer', { 'Sec-WebSocket-Protocol': 'audio.twilio.com' }],
  ])('accepts %s', (_what, changes) => {
    expect(check('PROXY', request(changes))).toEqual({ ok: true });
  });

  it.each<[string, Record<string, string | string[] | undefined>, Partial<TestRequest>]>([
    ['method POST', {}, { method: 'POST' }],
    ['method HEAD', {}, { method: 'HEAD' }],
    ['HTTP/1.0', {}, { httpVersion: '1.0' }],
    ['Upgrade: h2c', { Upgrade: 'h2c', 'HTTP2-Settings': 'AAMAAABkAAQAoAAAAAIAAAAA' }, {}],
    ['Upgrade with two tokens', { Upgrade: 'websocket, h2c' }, {}],
    ['two Upgrade headers', { Upgrade: ['websocket', 'websocket'] }, {}],
    ['Upgrade missing', { Upgrade: undefined }, {}],
    ['Connection without upgrade', { Connection: 'keep-alive' }, {}],
    ['Sec-WebSocket-Key missing', { 'Sec-WebSocket-Key': undefined }, {}],
    ['Sec-WebSocket-Key too short', { 'Sec-WebSocket-Key': 'c2hvcnQ=' }, {}],
    ['Sec-WebSocket-Key not base64', { 'Sec-WebSocket-Key': '!!!!!!!!!!!!!!!!!!!!!!==' }, {}],
    ['two Sec-WebSocket-Key headers', { 'Sec-WebSocket-Key': [KEY, KEY] }, {}],
    ['Sec-WebSocket-Version 12', { 'Sec-WebSocket-Version': '12' }, {}],
    ['Sec-WebSocket-Version missing', { 'Sec-WebSocket-Version': undefined }, {}],
    ['Sec-WebSocket-Version 13, 8', { 'Sec-WebSocket-Version': ['13', '8'] }, {}],
    ['Content-Length', { 'Content-Length': '5' }, {}],
    ['Content-Length: 0', { 'Content-Length': '0' }, {}],
    ['Transfer-Encoding', { 'Transfer-Encoding': 'chunked' }, {}],
    ['bytes sent before the 101', {}, { headLength: 12 }],
  ])('rejects %s as PROXY_ERR_BAD_HANDSHAKE', (_what, changes, extra) => {
    expect(check('PROXY', request(changes, extra))).toMatchObject({
      ok: false,
      code: 'PROXY_ERR_BAD_HANDSHAKE',
    });
  });

  it.each<[string, Record<string, string | string[] | undefined>]>([
    ['Host missing', { Host: undefined }],
    ['Host "["', { Host: '[' }],
    ['Host "a b"', { Host: 'a b' }],
    ['Host "x:99999"', { Host: 'x:99999' }],
    ['Host "x:0"', { Host: 'x:0' }],
    ['Host empty', { Host: '' }],
    ['Host "[::1"', { Host: '[::1' }],
    ['Host "[1.2.3.4]"', { Host: '[1.2.3.4]' }],
    ['Host "[::1::2]"', { Host: '[::1::2]' }],
    ['Host "x@y"', { Host: 'x@y' }],
    ['Host "x/y"', { Host: 'x/y' }],
    ['two Host headers', { Host: ['a.example', 'b.example'] }],
    ['Host too long', { Host: `${'a'.repeat(300)}.example` }],
  ])('rejects %s as PROXY_ERR_BAD_HOST', (_what, changes) => {
    expect(check('PROXY', request(changes))).toMatchObject({
      ok: false,
      code: 'PROXY_ERR_BAD_HOST',
    });
  });
});

describe('checkHost', () => {
  it('is the same check for plain requests', () => {
    expect(checkHost('PROXY', request())).toEqual({ ok: true });
    expect(checkHost('PROXY', request({ Host: 'x:99999' }))).toMatchObject({
      code: 'PROXY_ERR_BAD_HOST',
    });
  });
});

const GOOD: IncomingHttpHeaders = {
  host: 'worker.test',
  connection: 'Upgrade',
  upgrade: 'websocket',
  'sec-websocket-key': KEY,
  'sec-websocket-version': '13',
};

describe('checkWebSocketHandshake in the RUNTIME area (StreamServer)', () => {
  it.each([
    { name: 'a valid handshake', method: 'GET', headers: GOOD, problem: undefined },
    {
      name: 'Upgrade in any case',
      method: 'GET',
      headers: { ...GOOD, upgrade: 'WebSocket' },
      problem: undefined,
    },
    {
      // Version 13 only, like the proxy: 8 is a pre-RFC draft no client in use still sends.
      name: 'version 8',
      method: 'GET',
      headers: { ...GOOD, 'sec-websocket-version': '8' },
      problem: 'missing or invalid Sec-WebSocket-Version',
    },
    {
      name: 'POST',
      method: 'POST',
      headers: GOOD,
      problem: 'WebSocket upgrades use GET, got POST',
    },
    {
      name: 'no method',
      method: undefined,
      headers: GOOD,
      problem: 'WebSocket upgrades use GET, got none',
    },
    {
      name: 'Upgrade: h2c',
      method: 'GET',
      headers: { ...GOOD, upgrade: 'h2c' },
      problem: 'Upgrade must be websocket',
    },
    {
      name: 'no key',
      method: 'GET',
      headers: { ...GOOD, 'sec-websocket-key': undefined },
      problem: 'missing or invalid Sec-WebSocket-Key',
    },
    {
      name: 'a short key',
      method: 'GET',
      headers: { ...GOOD, 'sec-websocket-key': 'c2hvcnQ=' },
      problem: 'missing or invalid Sec-WebSocket-Key',
    },
    {
      name: 'version 12',
      method: 'GET',
      headers: { ...GOOD, 'sec-websocket-version': '12' },
      problem: 'missing or invalid Sec-WebSocket-Version',
    },
  ])('$name', ({ method, headers, problem }) => {
    const rawHeaders = Object.entries(headers).flatMap(([k, v]) =>
      v === undefined ? [] : [k, String(v)],
    );
    const result = checkWebSocketHandshake(
      'RUNTIME',
      { method, httpVersion: '1.1', headers, rawHeaders },
      0,
    );
    expect(result).toEqual(
      problem === undefined
        ? { ok: true }
        : { ok: false, code: 'RUNTIME_ERR_BAD_HANDSHAKE', reason: problem },
    );
  });
});
