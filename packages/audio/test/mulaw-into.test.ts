import { describe, expect, it } from 'vitest';
import { mulawDecode, mulawDecodeInto, mulawEncode, mulawEncodeInto } from '../src/index.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('μ-law into reused buffers, against the allocating codec', () => {
  const random = rng(7);

  it('encodes random PCM of random lengths byte for byte the same, reusing one buffer', () => {
    const out = new Uint8Array(400);
    for (let round = 0; round < 500; round++) {
      const pcm = new Int16Array(Math.floor(random() * 400));
      for (let i = 0; i < pcm.length; i++) pcm[i] = Math.floor(random() * 65536) - 32768;
      const n = mulawEncodeInto(pcm, out);
      expect(n).toBe(pcm.length);
      expect(Array.from(out.subarray(0, n))).toEqual(Array.from(mulawEncode(pcm)));
    }
  });

  it('decodes every byte value and random frames the same, reusing one buffer', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    const out = new Int16Array(400);
    mulawDecodeInto(all, 256, out);
    expect(Array.from(out.subarray(0, 256))).toEqual(Array.from(mulawDecode(all)));
    for (let round = 0; round < 500; round++) {
      const bytes = new Uint8Array(400);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      const n = Math.floor(random() * 400);
      mulawDecodeInto(bytes, n, out);
      expect(Array.from(out.subarray(0, n))).toEqual(Array.from(mulawDecode(bytes.subarray(0, n))));
    }
  });

  it('round-trips PCM through both paths to the same samples', () => {
    const pcm = Int16Array.from({ length: 1000 }, () => Math.floor(random() * 65536) - 32768);
    const bytes = new Uint8Array(1000);
    const back = new Int16Array(1000);
    mulawDecodeInto(bytes, mulawEncodeInto(pcm, bytes), back);
    expect(Array.from(back)).toEqual(Array.from(mulawDecode(mulawEncode(pcm))));
  });

  it('refuses buffers that are too small', () => {
    expect(() => mulawEncodeInto(new Int16Array(10), new Uint8Array(9))).toThrow(RangeError);
    expect(() => mulawDecodeInto(new Uint8Array(10), 10, new Int16Array(9))).toThrow(RangeError);
  });
});
