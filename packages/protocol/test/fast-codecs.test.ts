import { describe, expect, it } from 'vitest';
import {
  TwilioMediaSerializer,
  base64MaxDecodedLength,
  decodeBase64Strict,
  decodeBase64StrictInto,
  parseTwilioInbound,
  serializeTwilioOutbound,
  validateTwilioInbound,
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

describe('parseTwilioInbound fast path for media, against JSON.parse + validateTwilioInbound', () => {
  const random = rng(2024);
  const general = (text: string): unknown => {
    try {
      return validateTwilioInbound(JSON.parse(text) as unknown);
    } catch (err) {
      return { code: (err as { code?: string }).code ?? 'json', message: (err as Error).message };
    }
  };
  const fast = (text: string): unknown => {
    try {
      return parseTwilioInbound(text);
    } catch (err) {
      // parseJsonText wraps JSON.parse's error; compare the validator's own errors exactly.
      const code = (err as { code?: string }).code;
      return {
        code: code === 'PROTO_ERR_INVALID_JSON' ? 'json' : code,
        message: code === 'PROTO_ERR_INVALID_JSON' ? undefined : (err as Error).message,
      };
    }
  };
  const same = (text: string): void => {
    const g = general(text);
    const f = fast(text);
    if ((g as { code?: string }).code === 'json')
      expect((f as { code?: string }).code).toBe('json');
    else expect(f).toEqual(g);
  };
  const canonical = (): string => {
    const bytes = Buffer.alloc(Math.floor(random() * 200));
    for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
    const track = random() < 0.8 ? 'inbound' : 'outbound';
    return `{"event":"media","sequenceNumber":"${Math.floor(random() * 1e6)}","media":{"track":"${track}","chunk":"${Math.floor(random() * 1e5)}","timestamp":"${Math.floor(random() * 1e7)}","payload":"${bytes.toString('base64')}"},"streamSid":"MZ${Math.floor(random() * 1e9).toString(16)}"}`;
  };

  it('gives the same message for canonical media', () => {
    for (let i = 0; i < 500; i++) {
      const text = canonical();
      expect(parseTwilioInbound(text)).toEqual(validateTwilioInbound(JSON.parse(text) as unknown));
      expect(Object.keys(parseTwilioInbound(text))).toEqual(
        Object.keys(validateTwilioInbound(JSON.parse(text) as unknown)),
      );
    }
  });

  it('gives the same message or error for randomly edited media', () => {
    const chars = Array.from('"\\{}:,0123456789aZ+/= \n\t\u0001\u00e9\u2028ux-.');
    for (let i = 0; i < 20000; i++) {
      const s = Array.from(canonical());
      const edits = 1 + Math.floor(random() * 2);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(random() * s.length);
        const r = random();
        if (r < 0.4) s.splice(at, 1, chars[Math.floor(random() * chars.length)]!);
        else if (r < 0.7) s.splice(at, 0, chars[Math.floor(random() * chars.length)]!);
        else s.splice(at, 1);
      }
      same(s.join(''));
    }
  });

  it.each([
    '{"event":"media","sequenceNumber":"1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"AA\\/A"},"streamSid":"MZ1"}',
    '{"event":"media","sequenceNumber":"1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"AAAA"},"streamSid":"MZ\\"1"}',
    '{"event":"media","sequenceNumber":"12345678901234567","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":""},"streamSid":"MZ1"}',
    '{"event":"media","sequenceNumber":"1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":""},"streamSid":""}',
    '{"event":"media","sequenceNumber":"1","media":{"track":"both","chunk":"1","timestamp":"0","payload":""},"streamSid":"MZ"}',
    '{"event":"media","sequenceNumber":"1","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":""},"streamSid":"MZ","x":1}',
  ])('handles %s like the general path', (text) => {
    same(text);
  });
});
