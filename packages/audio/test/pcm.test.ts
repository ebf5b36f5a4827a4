import { describe, expect, it } from 'vitest';
import { concatPcm, pcm16FromBytes, pcm16FromFloat, pcm16ToBytes } from '../src/index.js';

describe('pcm16', () => {
  it.each([
    ['aligned', 0],
    ['unaligned', 1],
  ])('reads little-endian samples from %s bytes', (_name, offset) => {
    const backing = new Uint8Array(offset + 6);
    backing.set([0x01, 0x00, 0xff, 0xff, 0x00, 0x80], offset);
    const pcm = pcm16FromBytes(backing.subarray(offset));
    expect(Array.from(pcm)).toEqual([1, -1, -32768]);
  });

  it('rejects an odd number of bytes', () => {
    expect(() => pcm16FromBytes(new Uint8Array(3))).toThrow(
      expect.objectContaining({ code: 'AUDIO_ERR_ARGUMENT' }),
    );
  });

  it('writes little-endian bytes into a copy', () => {
    const pcm = Int16Array.of(1, -1, 32767);
    const bytes = pcm16ToBytes(pcm);
    expect(Array.from(bytes)).toEqual([0x01, 0x00, 0xff, 0xff, 0xff, 0x7f]);
    pcm[0] = 5;
    expect(bytes[0]).toBe(1);
  });

  it('round-trips a subarray view', () => {
    const pcm = Int16Array.of(9, 8, 7, 6).subarray(1, 3);
    expect(Array.from(pcm16FromBytes(pcm16ToBytes(pcm)))).toEqual([8, 7]);
  });

  it('concatenates chunks', () => {
    expect(
      Array.from(concatPcm([Int16Array.of(1), new Int16Array(0), Int16Array.of(2, 3)])),
    ).toEqual([1, 2, 3]);
  });

  it.each([
    [0, 0],
    [1, 32767],
    [-1, -32767],
    [2, 32767],
    [-2, -32768],
    [0.5, 16384],
  ])('converts float %f to %i', (f, s) => {
    expect(pcm16FromFloat([f])[0]).toBe(s);
  });
});
