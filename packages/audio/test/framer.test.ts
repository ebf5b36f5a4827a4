import { describe, expect, it } from 'vitest';
import { Framer, frameSamples } from '../src/index.js';

function ramp(from: number, length: number): Int16Array {
  return Int16Array.from({ length }, (_, i) => from + i);
}

describe('frameSamples', () => {
  it.each([
    [8000, 20, 160],
    [16000, 20, 320],
    [24000, 20, 480],
    [44100, 20, 882],
    [48000, 20, 960],
    [8000, 10, 80],
  ])('%i Hz × %i ms = %i samples', (rate, ms, samples) => {
    expect(frameSamples(rate, ms)).toBe(samples);
  });

  it('defaults to 20 ms', () => {
    expect(frameSamples(8000)).toBe(160);
  });

  it.each([
    [44100, 1],
    [8000, 0],
    [-8000, 20],
  ])('rejects %i Hz × %i ms', (rate, ms) => {
    expect(() => frameSamples(rate, ms)).toThrow(
      expect.objectContaining({ code: 'AUDIO_ERR_FRAME_SIZE' }),
    );
  });
});

describe('Framer', () => {
  it.each([
    ['exact frames', [8, 4], [2, 1]],
    ['small chunks', [3, 3, 3, 3], [0, 1, 1, 1]],
    ['one big chunk', [13], [3]],
    ['empty chunk', [0, 4, 0], [0, 1, 0]],
  ])('cuts %s into whole frames in order', (_name, sizes, framesPerPush) => {
    const framer = new Framer(4);
    let next = 0;
    const all: number[] = [];
    sizes.forEach((size, i) => {
      const frames = framer.push(ramp(next, size));
      next += size;
      expect(frames.length).toBe(framesPerPush[i]);
      for (const f of frames) {
        expect(f.length).toBe(4);
        all.push(...f);
      }
    });
    expect(all).toEqual(Array.from({ length: all.length }, (_, i) => i));
    expect(framer.pendingSamples).toBe(next - all.length);
  });

  it('returns frames the caller owns', () => {
    const framer = new Framer(2);
    const input = Int16Array.of(1, 2, 3);
    const [first] = framer.push(input);
    input[0] = 99;
    const [second] = framer.push(Int16Array.of(4));
    expect(Array.from(first!)).toEqual([1, 2]);
    expect(Array.from(second!)).toEqual([3, 4]);
  });

  it('flushes the remainder zero-padded, then nothing', () => {
    const framer = new Framer(4);
    framer.push(Int16Array.of(1, 2, 3, 4, 5, 6));
    expect(Array.from(framer.flush()!)).toEqual([5, 6, 0, 0]);
    expect(framer.flush()).toBeUndefined();
  });

  it('reset drops the remainder', () => {
    const framer = new Framer(4);
    framer.push(Int16Array.of(1, 2, 3));
    framer.reset();
    expect(framer.pendingSamples).toBe(0);
    expect(Array.from(framer.push(Int16Array.of(7, 8, 9, 10))[0]!)).toEqual([7, 8, 9, 10]);
  });

  it.each([0, -1, 1.5])('rejects frame size %s', (size) => {
    expect(() => new Framer(size)).toThrow(
      expect.objectContaining({ code: 'AUDIO_ERR_FRAME_SIZE' }),
    );
  });
});

describe('Framer.pushOwned', () => {
  it('hands a whole owned frame through without a copy, else frames like push', () => {
    const a = new Framer(4);
    const b = new Framer(4);
    const frame = Int16Array.of(1, 2, 3, 4);
    expect(a.pushOwned(frame)[0]).toBe(frame);
    const chunks = [
      Int16Array.of(1, 2, 3),
      Int16Array.of(4, 5, 6, 7),
      Int16Array.of(8),
      Int16Array.of(9, 10, 11, 12),
    ];
    for (const c of chunks) {
      expect(a.pushOwned(c.slice()).map((f) => Array.from(f))).toEqual(
        b.push(c).map((f) => Array.from(f)),
      );
    }
  });
});
