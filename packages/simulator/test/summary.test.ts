import { describe, expect, it } from 'vitest';
import {
  computeReplies,
  detectSegments,
  firstSoundAfter,
  formatSummary,
  type CallSummary,
} from '../src/index.js';

/** 8 kHz PCM built from [ms, amplitude] runs (a square-ish signal of that amplitude). */
function signal(runs: Array<[number, number]>, rate = 8000): Int16Array {
  const out: number[] = [];
  for (const [ms, amp] of runs) {
    for (let i = 0; i < (ms * rate) / 1000; i++) out.push(i % 2 === 0 ? amp : -amp);
  }
  return Int16Array.from(out);
}

describe('detectSegments', () => {
  it.each([
    ['silence only', [[500, 0]], []],
    [
      'one burst',
      [
        [100, 0],
        [200, 5000],
        [100, 0],
      ],
      [{ startMs: 100, endMs: 300 }],
    ],
    [
      'two bursts 300 ms apart',
      [
        [200, 5000],
        [300, 0],
        [100, 5000],
      ],
      [
        { startMs: 0, endMs: 200 },
        { startMs: 500, endMs: 600 },
      ],
    ],
    [
      'a gap under 300 ms joins',
      [
        [200, 5000],
        [290, 0],
        [100, 5000],
      ],
      [{ startMs: 0, endMs: 590 }],
    ],
    [
      'low noise counts as silence',
      [
        [200, 5000],
        [400, 20],
        [100, 5000],
      ],
      [
        { startMs: 0, endMs: 200 },
        { startMs: 600, endMs: 700 },
      ],
    ],
  ] as const)('finds %s', (_what, runs, expected) => {
    expect(detectSegments(signal(runs.map((r) => [r[0], r[1]])), 8000)).toEqual(expected);
  });

  it('works at other rates', () => {
    expect(
      detectSegments(
        signal(
          [
            [100, 0],
            [100, 9000],
          ],
          16000,
        ),
        16000,
      ),
    ).toEqual([{ startMs: 100, endMs: 200 }]);
  });
});

describe('computeReplies', () => {
  const reply = signal([
    [500, 0],
    [200, 4000],
    [300, 0],
    [100, 4000],
  ]);
  it.each([
    ['a reply after the end', { startMs: 0, endMs: 200 }, 500, 300],
    ['the end inside a reply', { startMs: 0, endMs: 600 }, 600, 0],
    ['the next reply', { startMs: 0, endMs: 750 }, 1000, 250],
    ['no reply after the last one', { startMs: 0, endMs: 1100 }, null, null],
  ])('measures %s', (_what, segment, firstReplyMs, latencyMs) => {
    expect(computeReplies(reply, 8000, [segment])).toEqual([
      { utteranceIndex: 0, utteranceEndMs: segment.endMs, firstReplyMs, latencyMs },
    ]);
  });

  it('finds the onset inside a 10 ms window to the sample', () => {
    const audio = signal([
      [123.5, 0],
      [50, 4000],
    ]);
    expect(firstSoundAfter(audio, 8000, 0)).toBe(123.5);
  });
});

describe('formatSummary', () => {
  const base: CallSummary = {
    callSid: 'CA1',
    streamSid: 'MZ1',
    provider: 'twilio',
    durationMs: 5230,
    audioFramesSent: 261,
    audioFramesReceived: 90,
    audioMessagesReceived: 3,
    marksReceived: 2,
    marksAcked: 2,
    marksAckedOnClear: 1,
    clears: 1,
    dtmfSent: 1,
    replies: [
      { utteranceIndex: 0, utteranceEndMs: 1000, firstReplyMs: 1650, latencyMs: 650 },
      { utteranceIndex: 1, utteranceEndMs: 3000, firstReplyMs: null, latencyMs: null },
    ],
    protocolErrors: [{ code: 'PROTO_ERR_INVALID_MESSAGE', message: 'bad' }],
    closeCode: 1000,
    closeReason: '',
    closedBy: 'caller',
    replyAudio: new Int16Array(0),
    replyAudioSampleRate: 8000,
    customParameters: { callToken: 't' },
    streamSids: ['MZ1'],
    reconnects: 0,
    reconnectGapsMs: [],
    actionRequests: 0,
    actionResult: null,
  };

  it('shows audio each way, marks, clears, latencies and errors', () => {
    const text = formatSummary(base);
    expect(text).toContain('call CA1 (twilio), stream MZ1');
    expect(text).toContain('sent 261, received 90 in 3 audio messages');
    expect(text).toContain('received 2, acked 2 (1 on clear); clears 1');
    expect(text).toContain('#1 ended 1.00 s: reply at 1.65 s, latency 650 ms');
    expect(text).toContain('#2 ended 3.00 s: no reply heard');
    expect(text).toContain('PROTO_ERR_INVALID_MESSAGE: bad');
    expect(text).toContain('callToken=t');
  });

  it('shows reconnects through <Connect action> only when there were any', () => {
    expect(formatSummary(base)).not.toContain('reconnects');
    const text = formatSummary({
      ...base,
      streamSids: ['MZ0', 'MZ1'],
      reconnects: 1,
      reconnectGapsMs: [412],
      actionRequests: 1,
      actionResult: 'stream',
    });
    expect(text).toContain('reconnects  1 (action requests 1, last answer stream; gaps 412 ms)');
    expect(text).toContain('streams     MZ0, MZ1');
  });

  it('leaves marks out for SansPBX, which has none', () => {
    expect(formatSummary({ ...base, provider: 'sanspbx' })).not.toContain('marks');
  });
});
