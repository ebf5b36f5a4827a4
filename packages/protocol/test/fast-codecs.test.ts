import { describe, expect, it } from 'vitest';
import {
  TwilioMediaSerializer,
  base64MaxDecodedLength,
  decodeBase64Strict,
  decodeBase64StrictInto,
  serializeTwilioOutbound,
} from '../src/index.js';

// A small deterministic PRNG, so a failure can be replayed.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** What the old decoder does with a string: its bytes, or its error (code and message). */
function oldDecode(b64: string): { bytes: number[] } | { code: string; message: string } {
  try {
    return { bytes: Array.from(decodeBase64Strict(b64)) };
  } catch (err) {
    return { code: (err as { code: string }).code, message: (err as Error).message };
  }
}

function newDecode(b64: string): { bytes: number[] } | { code: string; message: string } {
  const out = new Uint8Array(base64MaxDecodedLength(b64.length)).fill(0xaa);
  try {
    const n = decodeBase64StrictInto(b64, out);
    return { bytes: Array.from(out.subarray(0, n)) };
  } catch (err) {
    return { code: (err as { code: string }).code, message: (err as Error).message };
  }
}

describe('decodeBase64StrictInto against decodeBase64Strict', () => {
  const random = rng(0x5eed);

  it('decodes random valid payloads of every length the same', () => {
    for (let round = 0; round < 2000; round++) {
      const bytes = Buffer.alloc(Math.floor(random() * 400));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      const b64 = bytes.toString('base64');
      expect(newDecode(b64)).toEqual(oldDecode(b64));
      expect(newDecode(b64)).toEqual({ bytes: Array.from(bytes) });
    }
  });

  it('accepts and rejects random near-base64 strings exactly like the old decoder', () => {
    const alphabet =
      'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n.\u00e9\u{1f600}A';
    const chars = Array.from(alphabet);
    let rejected = 0;
    for (let round = 0; round < 20000; round++) {
      // Mostly valid base64 with a few characters changed, so both paths are exercised.
      const bytes = Buffer.alloc(Math.floor(random() * 12));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      const s = Array.from(bytes.toString('base64'));
      const edits = Math.floor(random() * 3);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * (s.length + 1));
        const c = chars[Math.floor(random() * chars.length)]!;
        if (random() < 0.5) s.splice(at, 1, c);
        else s.splice(at, 0, c);
      }
      const b64 = s.join('');
      const old = oldDecode(b64);
      if ('code' in old) rejected++;
      expect(newDecode(b64)).toEqual(old);
    }
    expect(rejected).toBeGreaterThan(1000);
  });

  it.each([
    '',
    'AA==',
    'AAA=',
    'AAAA',
    'A===',
    '====',
    'AA=A',
    'AAAA====',
    'QQ==QQ==',
    'Qf==',
    'Q/==',
  ])('decodes %j like the old decoder', (b64) => {
    expect(newDecode(b64)).toEqual(oldDecode(b64));
  });

  it('refuses a too small output buffer', () => {
    expect(() => decodeBase64StrictInto('AAAA', new Uint8Array(2))).toThrow(RangeError);
  });
});

describe('TwilioMediaSerializer against serializeTwilioOutbound', () => {
  const random = rng(42);

  it('writes exactly the same text for random payloads and stream ids', () => {
    const sids = ['MZ0123456789abcdef', 'MZ"quoted"\\and\u0001control', 'ünïcødé-\u2028', 'x'];
    for (const streamSid of sids) {
      const serializer = new TwilioMediaSerializer(streamSid);
      for (let round = 0; round < 200; round++) {
        const bytes = Buffer.alloc(Math.floor(random() * 320));
        for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
        const payload = bytes.toString('base64');
        expect(serializer.serialize(payload)).toBe(
          serializeTwilioOutbound({ event: 'media', streamSid, media: { payload } }),
        );
      }
    }
  });

  it('refuses an empty or non-string streamSid like serializeTwilioOutbound', () => {
    for (const streamSid of ['', 5 as unknown as string]) {
      let oldErr: unknown;
      try {
        serializeTwilioOutbound({ event: 'media', streamSid, media: { payload: '' } });
      } catch (err) {
        oldErr = err;
      }
      expect(() => new TwilioMediaSerializer(streamSid)).toThrow(
        expect.objectContaining({
          code: (oldErr as { code: string }).code,
          message: (oldErr as Error).message,
        }),
      );
    }
  });
});
