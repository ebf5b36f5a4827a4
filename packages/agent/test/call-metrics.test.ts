import { describe, expect, it } from 'vitest';
import { copyCallStats, type CallStats } from '../src/index.js';

function stats(values: Partial<CallStats> = {}): CallStats {
  return {
    framesIn: 0,
    framesOut: 0,
    lateFrames: 0,
    utterances: 0,
    marksSent: 0,
    marksPlayed: 0,
    marksCleared: 0,
    clears: 0,
    dtmfIn: 0,
    agentErrors: 0,
    droppedMs: 0,
    ...values,
  };
}

describe('copyCallStats', () => {
  it('adds only what grew since the last copy, to the counters asked for', () => {
    const added: string[] = [];
    const counters = {
      framesOut: (n: number) => void added.push(`framesOut+${n}`),
      marksCleared: (n: number) => void added.push(`marksCleared+${n}`),
    };
    const reported = stats();
    copyCallStats(stats({ framesOut: 3, framesIn: 9 }), reported, counters);
    expect(added).toEqual(['framesOut+3']);
    copyCallStats(stats({ framesOut: 3, framesIn: 9 }), reported, counters);
    expect(added).toEqual(['framesOut+3']);
    copyCallStats(stats({ framesOut: 5, marksCleared: 2 }), reported, counters);
    expect(added).toEqual(['framesOut+3', 'framesOut+2', 'marksCleared+2']);
    // Stats nobody counts are not tracked.
    expect(reported).toMatchObject({ framesOut: 5, marksCleared: 2, framesIn: 0 });
  });

  it('starts from a snapshot: what the call had before is not counted', () => {
    const added: number[] = [];
    const reported = stats({ lateFrames: 4 });
    copyCallStats(stats({ lateFrames: 6 }), reported, { lateFrames: (n) => void added.push(n) });
    expect(added).toEqual([2]);
  });
});
