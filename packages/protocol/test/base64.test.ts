import { describe, expect, it } from 'vitest';
import { decodeBase64Strict, encodeBase64 } from '../src/index.js';

describe('decodeBase64Strict', () => {
  it.each([
    ['', []],
    ['AA==', [0]],
    ['AAE=', [0, 1]],
    ['AAEC', [0, 1, 2]],
    ['//79', [255, 254, 253]],
    ['+/+/', [251, 255, 191]],
    ['AAECAw==', [0, 1, 2, 3]],
  ])('decodes %j', (b64, bytes) => {
    expect(Array.from(decodeBase64Strict(b64))).toEqual(bytes);
  });

  it.each([
    ['a character outside the alphabet', 'AA!A'],
    ['URL-safe alphabet', 'AA-_'],
    ['whitespace', 'AAEC AAEC'],
    ['a newline', 'AAEC\nAAEC'],
    ['missing padding', 'AAE'],
    ['a length not a multiple of 4', 'AAECA'],
    ['padding in the middle', 'AA==AAEC'],
    ['three padding characters', 'A==='],
    ['padding only', '===='],
    ['padding then data', 'AAE=A'],
    ['a non-ASCII letter', 'AAEé'],
  ])('rejects %s', (_name, b64) => {
    expect(() => decodeBase64Strict(b64)).toThrow(
      expect.objectContaining({ code: 'PROTO_ERR_BAD_BASE64' }),
    );
  });

  it('rejects a non-string', () => {
    expect(() => decodeBase64Strict(42 as unknown as string)).toThrow(
      expect.objectContaining({ code: 'PROTO_ERR_BAD_BASE64' }),
    );
  });

  it('decodes a 20 ms μ-law frame (216 characters)', () => {
    const b64 = '/'.repeat(216);
    expect(decodeBase64Strict(b64).length).toBe(162);
    expect(decodeBase64Strict(encodeBase64(new Uint8Array(160).fill(0xff))).length).toBe(160);
  });
});

describe('encodeBase64', () => {
  it.each([
    [[], ''],
    [[0], 'AA=='],
    [[0, 1], 'AAE='],
    [[251, 255, 191], '+/+/'],
  ])('encodes %j as %j', (bytes, b64) => {
    expect(encodeBase64(Uint8Array.from(bytes))).toBe(b64);
  });

  it('encodes only the view of a subarray', () => {
    const backing = Uint8Array.of(9, 0, 1, 9);
    expect(encodeBase64(backing.subarray(1, 3))).toBe('AAE=');
  });

  it('round-trips random bytes of every length up to 64', () => {
    for (let n = 0; n <= 64; n++) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 131 + n * 7) & 0xff);
      expect(Array.from(decodeBase64Strict(encodeBase64(bytes)))).toEqual(Array.from(bytes));
    }
  });
});
