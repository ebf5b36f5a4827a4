import { mulawDecode, pcm16FromBytes, tone } from '@callgate/audio';
import { decodeBase64Strict, parseSansPbxOutbound, parseTwilioOutbound } from '@callgate/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SansPbxTransport, TwilioTransport } from '../src/index.js';

/** What a transport uses of its session: what it sends, the hang-ups, the marks it reports. */
function fakeSession() {
  const sent: string[] = [];
  const hangups: string[] = [];
  const marks: string[] = [];
  return {
    sent,
    hangups,
    marks,
    send: (t: string) => void sent.push(t),
    agentHungUp: (r: string) => void hangups.push(r),
    receiveMark: (name: string) => void marks.push(name),
  };
}

describe('TwilioTransport', () => {
  it('sends exactly what Twilio accepts: μ-law media, mark, clear', () => {
    const port = fakeSession();
    const t = new TwilioTransport('MZ1', port);
    const frame = tone([440], 20, 8000, 0.25);
    t.sendAudio(frame);
    t.sendMark('CA1-u1');
    t.sendClear();
    t.hangup('done');
    const [media, mark, clear] = port.sent.map((s) => parseTwilioOutbound(s)); // strict: no extra fields
    expect(media).toMatchObject({ event: 'media', streamSid: 'MZ1' });
    const decoded = mulawDecode(
      decodeBase64Strict((media as { media: { payload: string } }).media.payload),
    );
    expect(decoded).toHaveLength(160);
    for (let i = 0; i < 160; i++)
      expect(Math.abs(decoded[i]! - frame[i]!)).toBeLessThanOrEqual(512);
    expect(mark).toEqual({ event: 'mark', streamSid: 'MZ1', mark: { name: 'CA1-u1' } });
    expect(clear).toEqual({ event: 'clear', streamSid: 'MZ1' });
    expect(port.hangups).toEqual(['done']);
    expect(t.sampleRate).toBe(8000);
  });
});

describe('SansPbxTransport', () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  const identity = { callId: 'c1', streamId: 's1', channelId: 'SIP/1' };

  function make(sampleRate = 16000) {
    vi.useFakeTimers();
    const port = fakeSession();
    const t = new SansPbxTransport({
      identity,
      sampleRate,
      session: port,
      clock: () => Date.now(),
    });
    return { t, port, marks: port.marks };
  }

  it('sends PCM16 LE reverse-media with the call identity', () => {
    const { t, port } = make();
    const frame = tone([440], 20, 16000, 0.25);
    t.sendAudio(frame);
    const msg = parseSansPbxOutbound(port.sent[0]!);
    expect(msg).toMatchObject({ event: 'reverse-media', ...identity });
    expect(pcm16FromBytes(decodeBase64Strict(msg.payload))).toEqual(frame);
    expect(t.sampleRate).toBe(16000);
  });

  it('reports a mark once the audio before it has had its playing time', () => {
    const { t, marks } = make();
    for (let i = 0; i < 3; i++) t.sendAudio(new Int16Array(320)); // 60 ms sent at once
    t.sendMark('u1');
    vi.advanceTimersByTime(59);
    expect(marks).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(marks).toEqual(['u1']);
  });

  it('reports pending marks right after a clear (the Call counts them as cleared)', async () => {
    const { t, marks } = make();
    t.sendAudio(new Int16Array(320));
    t.sendMark('u1');
    t.sendClear();
    expect(marks).toEqual([]); // not inside the Call's clear()
    await Promise.resolve();
    expect(marks).toEqual(['u1']);
    vi.advanceTimersByTime(1000);
    expect(marks).toEqual(['u1']);
  });

  it('reports nothing after close', () => {
    const { t, marks } = make();
    t.sendAudio(new Int16Array(320));
    t.sendMark('u1');
    t.close();
    t.sendMark('u2');
    vi.advanceTimersByTime(1000);
    expect(marks).toEqual([]);
  });
});
