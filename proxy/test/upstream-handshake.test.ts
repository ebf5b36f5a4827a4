import { describe, expect, it } from 'vitest';
import {
  ResponseHeadReader,
  headerOf,
  isValidSwitch,
  statusOf,
  acceptFor,
} from '../src/upstream-handshake.js';

// The grammar the reader accepted when it used regular expressions; the character tests that
// replaced them must agree with these on every line below.
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: [^\r\n]*)?$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;

const STATUS_LINES = [
  'HTTP/1.1 101 Switching Protocols',
  'HTTP/1.1 101',
  'HTTP/1.0 503 Service Unavailable',
  'HTTP/1.1 101 ',
  'HTTP/1.1 404 Not\tFound',
  'HTTP/1.1 200 OK \u00e9',
  'HTTP/1.2 101 Switching Protocols',
  'HTTP/2 101',
  'HTTP/1.1 1O1 Switching Protocols',
  'HTTP/1.1 10',
  'HTTP/1.1 1011',
  'HTTP/1.1  101',
  'HTTP/1.1 101\tSwitching',
  'HTTP/1.1 101 Switching\rProtocols',
  'HTTP/1.1 101 Switching\nProtocols',
  'http/1.1 101',
  ' HTTP/1.1 101',
  '',
];

const HEADER_LINES = [
  'Upgrade: websocket',
  'upgrade:websocket',
  'Sec-WebSocket-Accept:   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  ',
  'X-Empty:',
  'X-Blank: \t ',
  'X-Tab:\tvalue\t',
  'X-Inner:  a  b  ',
  "!#$%&'*+.^_`|~09AZaz-: token characters",
  'X-Latin: caf\u00e9',
  ': no name',
  'No colon',
  'Bad Name: space in name',
  'Bad(Name): paren',
  'Caf\u00e9: non-token name',
  'X-CR: a\rb',
  'X-LF: a\nb',
  'X-Trailing-CR: a\r',
  'X-Colons: a:b:c',
];

describe('the worker answer head grammar', () => {
  it.each(STATUS_LINES)('status line %j reads as the regular expression did', (line) => {
    const m = STATUS_LINE.exec(line);
    expect(statusOf(line)).toBe(m ? Number(m[1]) : -1);
  });

  it.each(HEADER_LINES)('header line %j reads as the regular expression did', (line) => {
    const m = HEADER_LINE.exec(line);
    expect(headerOf(line)).toEqual(m ? [m[1]!.toLowerCase(), m[2]] : undefined);
  });
});

describe('ResponseHeadReader', () => {
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const answer =
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`;

  it('gathers a head split anywhere, keeps the bytes after it, and checks the accept key', () => {
    const bytes = Buffer.from(`${answer}\x81\x02hi`, 'latin1');
    for (let cut = 1; cut < answer.length; cut++) {
      const reader = new ResponseHeadReader();
      expect(reader.push(bytes.subarray(0, cut))).toBe('more');
      const head = reader.push(bytes.subarray(cut));
      if (typeof head === 'string') throw new Error(`got ${head}`);
      expect(head.status).toBe(101);
      expect(head.headers[0]).toEqual(['upgrade', 'websocket']);
      expect(head.raw.toString('latin1')).toBe(answer);
      expect(head.rest.toString('latin1')).toBe('\x81\x02hi');
      expect(isValidSwitch(head, key)).toBe(true);
      expect(isValidSwitch(head, 'another-key-entirely==')).toBe(false);
    }
  });

  it.each([
    ['a bad status line', 'HTTP/1.1 10x Nope\r\n\r\n'],
    [
      'a header line without a colon',
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade websocket\r\n\r\n',
    ],
    [
      'a bare LF inside a header',
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: web\nsocket\r\n\r\n',
    ],
  ])('calls %s malformed', (_what, text) => {
    expect(new ResponseHeadReader().push(Buffer.from(text, 'latin1'))).toBe('malformed');
  });
});
