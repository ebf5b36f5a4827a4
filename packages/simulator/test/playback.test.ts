import { describe, expect, it } from 'vitest';
import { Playback } from '../src/index.js';

function setup(samplesPerFrame = 4) {
  const echoes: Array<{ name: string; cleared: boolean; samplesPlayed: number }> = [];
  const playback: Playback = new Playback({
    samplesPerFrame,
    onMark: (name, cleared) =>
      echoes.push({ name, cleared, samplesPlayed: playback.samplesPlayed }),
  });
  return { playback, echoes };
}

const ramp = (from: number, n: number): Int16Array =>
  Int16Array.from({ length: n }, (_, i) => from + i);

describe('Playback', () => {
  it('plays one frame per tick in arrival order across chunk boundaries, silence on underrun', () => {
    const { playback } = setup();
    playback.enqueueAudio(ramp(1, 3));
    playback.enqueueAudio(ramp(4, 3));
    expect([...playback.playFrame()]).toEqual([1, 2, 3, 4]);
    expect(playback.bufferedSamples).toBe(2);
    expect([...playback.playFrame()]).toEqual([5, 6, 0, 0]);
    expect([...playback.playFrame()]).toEqual([0, 0, 0, 0]);
    expect(playback.samplesPlayed).toBe(6);
    expect(playback.framesPlayed).toBe(3);
  });

  it.each([
    // [audio before the mark, ticks until the echo]
    [0, 0],
    [4, 1],
    [5, 2],
    [8, 2],
    [9, 3],
  ])('echoes a mark behind %i samples after %i ticks', (samples, ticks) => {
    const { playback, echoes } = setup(4);
    playback.enqueueAudio(ramp(1, samples));
    playback.enqueueMark('m');
    playback.enqueueAudio(ramp(100, 10));
    let played = 0;
    while (echoes.length === 0 && played < 10) {
      playback.playFrame();
      played++;
    }
    expect(played).toBe(ticks);
    expect(echoes).toEqual([{ name: 'm', cleared: false, samplesPlayed: samples }]);
  });

  it('echoes consecutive marks in order and counts pending ones', () => {
    const { playback, echoes } = setup(4);
    playback.enqueueAudio(ramp(1, 4));
    playback.enqueueMark('a');
    playback.enqueueMark('b');
    playback.enqueueAudio(ramp(1, 4));
    playback.enqueueMark('c');
    expect(playback.pendingMarks).toBe(3);
    playback.playFrame();
    expect(echoes.map((e) => e.name)).toEqual(['a', 'b']);
    expect(playback.pendingMarks).toBe(1);
    playback.playFrame();
    expect(echoes.map((e) => e.name)).toEqual(['a', 'b', 'c']);
  });

  it('clear drops the buffer and echoes every pending mark at once', () => {
    const { playback, echoes } = setup(4);
    playback.enqueueAudio(ramp(1, 6));
    playback.enqueueMark('a');
    playback.enqueueAudio(ramp(1, 6));
    playback.enqueueMark('b');
    playback.playFrame();
    expect(playback.clear()).toEqual({ droppedSamples: 8, marks: ['a', 'b'] });
    expect(echoes).toEqual([
      { name: 'a', cleared: true, samplesPlayed: 4 },
      { name: 'b', cleared: true, samplesPlayed: 4 },
    ]);
    expect(playback.bufferedSamples).toBe(0);
    expect([...playback.playFrame()]).toEqual([0, 0, 0, 0]);
    // Audio after the clear plays normally.
    playback.enqueueAudio(ramp(7, 2));
    expect([...playback.playFrame()]).toEqual([7, 8, 0, 0]);
  });

  it('keeps a long stream in order while compacting its queue', () => {
    const { playback } = setup(2);
    for (let i = 0; i < 500; i++) playback.enqueueAudio(Int16Array.of(i * 2, i * 2 + 1));
    for (let i = 0; i < 500; i++) expect([...playback.playFrame()]).toEqual([i * 2, i * 2 + 1]);
  });

  it('rejects a frame size that is not a positive integer', () => {
    expect(() => new Playback({ samplesPerFrame: 0 })).toThrow(TypeError);
  });
});
