import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_BYTES, messageText } from '../src/index.js';

describe('messageText', () => {
  const text = '{"event":"connected","protocol":"Call","version":"1.0.0"}';
  const bytes = Buffer.from(text);

  it.each([
    ['a string', text],
    ['a Buffer', bytes],
    ['a Uint8Array view', new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)],
    ['an ArrayBuffer', bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)],
    ['fragments', [bytes.subarray(0, 10), bytes.subarray(10)]],
  ])('reads %s', (_name, data) => {
    expect(messageText(data, false)).toBe(text);
  });

  it.each([
    ['a binary frame', bytes, true, MAX_MESSAGE_BYTES, 'PROTO_ERR_BINARY'],
    [
      'an oversized buffer',
      Buffer.alloc(MAX_MESSAGE_BYTES + 1, 0x20),
      false,
      MAX_MESSAGE_BYTES,
      'PROTO_ERR_TOO_LARGE',
    ],
    ['an oversized string', 'é'.repeat(10), false, 19, 'PROTO_ERR_TOO_LARGE'],
  ])('rejects %s', (_name, data, isBinary, max, code) => {
    expect(() => messageText(data, isBinary, max)).toThrow(expect.objectContaining({ code }));
  });
});
