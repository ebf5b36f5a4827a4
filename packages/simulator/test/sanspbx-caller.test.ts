import { parseSansPbxInbound } from '@callgate/protocol';
import { describe, expect, it, onTestFinished } from 'vitest';
import { simulateCall, type SimEvent } from '../src/index.js';
import { loudTone, startScriptedWorker, type WorkerConnection } from './scripted-worker.js';

const pcmB64 = (pcm: Int16Array): string =>
  Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength).toString('base64');

async function worker(onConnection?: (c: WorkerConnection) => void) {
  const w = await startScriptedWorker(onConnection ? { onConnection } : {});
  onTestFinished(() => w.close());
  return w;
}

describe('simulateCall (sanspbx)', () => {
  it('sends connected, answer, start, PCM16 media, dtmf and stop in the SansPBX shapes', async () => {
    const w = await worker();
    const summary = await simulateCall({
      url: `${w.origin}/media-stream`,
      provider: 'sanspbx',
      sansPbxSampleRate: 16000,
      audio: loudTone(100, 8000),
      audioSampleRate: 8000,
      dtmf: [{ atMs: 40, digit: '#' }],
      hangupAfterMs: 200,
    });
    const conn = w.connections[0]!;
    await conn.closed;
    expect(conn.request.url).toBe('/media-stream');
    for (const text of conn.raw) expect(() => parseSansPbxInbound(text)).not.toThrow();
    const msgs = conn.messages;
    expect(msgs.map((m) => m['event']).slice(0, 3)).toEqual(['connected', 'answer', 'start']);
    const answer = msgs[1]!;
    expect(answer).toEqual({
      event: 'answer',
      streamId: summary.streamSid,
      channelId: expect.stringMatching(/^SIP\/callgate-\d{4}$/),
      callId: summary.callSid,
    });
    expect(msgs[2]).toEqual({
      event: 'start',
      channelId: answer['channelId'],
      mediaFormat: { encoding: 'audio/x-l16', sampleRate: 16000, channels: 1 },
    });
    const media = msgs.filter((m) => m['event'] === 'media');
    expect(media).toHaveLength(10);
    media.forEach((m, i) => {
      expect(Object.keys(m).sort()).toEqual(['chunk', 'event', 'payload']);
      expect(m['chunk']).toBe(i + 1);
      // 20 ms of PCM16 at 16 kHz = 320 samples = 640 bytes.
      expect(Buffer.from(String(m['payload']), 'base64')).toHaveLength(640);
    });
    const dtmf = msgs.find((m) => m['event'] === 'dtmf');
    expect(dtmf).toEqual({ event: 'dtmf', digit: '#', dtfDurationMs: 250 });
    expect(msgs.at(-1)).toEqual({
      event: 'stop',
      callId: summary.callSid,
      disconnectedBy: 'caller',
      timestamp: expect.any(Number),
    });
    expect(summary).toMatchObject({
      provider: 'sanspbx',
      audioFramesSent: 10,
      dtmfSent: 1,
      closeCode: 1000,
    });
  });

  it('plays reverse-media in real time and rejects other worker messages', async () => {
    const w = await worker((c) => {
      void (async () => {
        const answer = await c.waitFor((m) => m['event'] === 'answer');
        const ids = {
          streamId: answer['streamId'],
          channelId: answer['channelId'],
          callId: answer['callId'],
        };
        c.sendJson({ event: 'reverse-media', payload: pcmB64(loudTone(200, 16000)), ...ids });
        c.sendJson({
          event: 'reverse-media',
          payload: pcmB64(loudTone(20, 16000)),
          ...ids,
          callId: 'other',
        });
        c.sendJson({
          event: 'reverse-media',
          payload: pcmB64(loudTone(20, 16000)),
          ...ids,
          extra: 1,
        });
        c.sendJson({ event: 'mark', streamSid: ids.streamId, mark: { name: 'x' } });
      })();
    });
    const events: SimEvent[] = [];
    const summary = await simulateCall({
      url: `${w.origin}/media-stream`,
      provider: 'sanspbx',
      sansPbxSampleRate: 16000,
      hangupAfterMs: 500,
      onEvent: (e) => events.push(e),
    });
    expect(summary.protocolErrors.map((e) => e.code)).toEqual([
      'PROTO_ERR_INVALID_MESSAGE',
      'PROTO_ERR_INVALID_MESSAGE',
      'PROTO_ERR_UNKNOWN_EVENT',
    ]);
    expect(summary.protocolErrors[0]!.message).toContain('callId');
    expect(summary).toMatchObject({
      audioMessagesReceived: 1,
      audioFramesReceived: 10,
      marksAcked: 0,
    });
    // Played one 20 ms frame per tick: 200 ms of audio over 10 ticks, then silence.
    const media = events.find((e) => e.type === 'media');
    expect(media).toMatchObject({ samples: 3200, samplesPlayed: 0 });
    expect(summary.replyAudioSampleRate).toBe(8000);
    expect(summary.replyAudio.length).toBe(25 * 160);
    const loud = summary.replyAudio.filter((s) => Math.abs(s) > 2000).length;
    expect(loud).toBeGreaterThan(800);
    expect(events.some((e) => e.type === 'reply-start')).toBe(true);
  });
});
