import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { mulawEncode } from '@callgate/audio';
import { parseTwilioInbound } from '@callgate/protocol';
import { describe, expect, it, onTestFinished } from 'vitest';
import { simulateCall, type SimEvent } from '../src/index.js';
import { loudTone, seq, startScriptedWorker, type WorkerConnection } from './scripted-worker.js';

const b64 = (pcm: Int16Array): string => Buffer.from(mulawEncode(pcm)).toString('base64');

async function worker(onConnection?: (c: WorkerConnection) => void) {
  const w = await startScriptedWorker(onConnection ? { onConnection } : {});
  onTestFinished(() => w.close());
  return w;
}

/**
 * A Twilio-side worker for a worker thread: answers `start` with `frames` media messages of
 * `payload`, paced against an absolute clock, `leadFrames` ahead of real time.
 */
const PACED_WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { WebSocketServer } = require('ws');
const { payload, frames, leadFrames } = workerData;
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('listening', () => parentPort.postMessage({ port: wss.address().port }));
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data) => {
    const m = JSON.parse(String(data));
    if (m.event !== 'start') return;
    const t0 = performance.now();
    let sent = 0;
    const tick = () => {
      const due = Math.floor((performance.now() - t0) / 20) + 1 + leadFrames;
      while (sent < frames && sent < due) {
        ws.send(JSON.stringify({ event: 'media', streamSid: m.streamSid, media: { payload } }));
        sent++;
      }
      if (sent < frames) setTimeout(tick, 20 - ((performance.now() - t0) % 20));
    };
    tick();
  });
});
`;

function streamSidOf(c: WorkerConnection): Promise<string> {
  return c.waitFor((m) => m['event'] === 'start').then((m) => String(m['streamSid']));
}

describe('simulateCall (twilio)', () => {
  it('sends connected, start, paced media, dtmf and stop with Twilio shapes and counters', async () => {
    const w = await worker();
    const summary = await simulateCall({
      url: `${w.origin}/media-stream/CA0123456789abcdef0123456789abcdef`,
      audio: loudTone(100),
      dtmf: [{ atMs: 100, digit: '5' }],
      customParameters: { callToken: 'tok' },
      hangupAfterMs: 300,
    });
    const conn = w.connections[0]!;
    const closed = await conn.closed;
    const msgs = conn.messages;

    // Every message is what the media worker's own parser accepts.
    for (const text of conn.raw) expect(() => parseTwilioInbound(text)).not.toThrow();
    expect(msgs[0]).toEqual({ event: 'connected', protocol: 'Call', version: '1.0.0' });
    const start = msgs[1]!;
    expect(start).toMatchObject({
      event: 'start',
      sequenceNumber: '1',
      start: {
        callSid: 'CA0123456789abcdef0123456789abcdef',
        tracks: ['inbound'],
        customParameters: { callToken: 'tok' },
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
    });
    const streamSid = String(start['streamSid']);
    expect(streamSid).toMatch(/^MZ[0-9a-f]{32}$/);
    expect((start['start'] as Record<string, unknown>)['streamSid']).toBe(streamSid);
    expect((start['start'] as Record<string, unknown>)['accountSid']).toMatch(/^AC[0-9a-f]{32}$/);

    // sequenceNumber counts every message after `connected`, as strings, without gaps.
    const rest = msgs.slice(1);
    rest.forEach((m, i) => {
      expect(typeof m['sequenceNumber']).toBe('string');
      expect(seq(m)).toBe(i + 1);
      expect(m['streamSid']).toBe(streamSid);
    });

    // 300 ms of call = 15 frames of 20 ms; chunk is its own counter, timestamps step by 20 ms.
    const media = msgs.filter((m) => m['event'] === 'media');
    expect(media).toHaveLength(15);
    media.forEach((m, i) => {
      const body = m['media'] as Record<string, string>;
      expect(body['track']).toBe('inbound');
      expect(body['chunk']).toBe(String(i + 1));
      expect(body['timestamp']).toBe(String(i * 20));
      expect(Buffer.from(body['payload']!, 'base64')).toHaveLength(160);
    });
    // chunk and sequenceNumber differ because start (and dtmf) took sequence numbers.
    expect(seq(media[0]!)).toBe(2);
    // After the 100 ms of audio the line carries μ-law silence (0xFF), like a real phone.
    const lastPayload = Buffer.from(
      (media[14]!['media'] as Record<string, string>)['payload']!,
      'base64',
    );
    expect([...lastPayload].every((b) => b === 0xff)).toBe(true);
    const firstPayload = Buffer.from(
      (media[0]!['media'] as Record<string, string>)['payload']!,
      'base64',
    );
    expect([...firstPayload].some((b) => b !== 0xff)).toBe(true);

    // The digit goes out on the tick at 100 ms: after chunk 5 (0..80 ms), before chunk 6 (100 ms).
    const dtmfIndex = msgs.findIndex((m) => m['event'] === 'dtmf');
    expect(msgs[dtmfIndex]).toMatchObject({ dtmf: { track: 'inbound_track', digit: '5' } });
    expect((msgs[dtmfIndex - 1]!['media'] as Record<string, string>)['chunk']).toBe('5');
    expect((msgs[dtmfIndex + 1]!['media'] as Record<string, string>)['chunk']).toBe('6');

    const stop = msgs.at(-1)!;
    expect(stop).toMatchObject({
      event: 'stop',
      stop: { callSid: 'CA0123456789abcdef0123456789abcdef' },
    });
    expect(closed.code).toBe(1000);

    expect(summary).toMatchObject({
      provider: 'twilio',
      callSid: 'CA0123456789abcdef0123456789abcdef',
      streamSid,
      audioFramesSent: 15,
      dtmfSent: 1,
      closedBy: 'caller',
      closeCode: 1000,
      customParameters: { callToken: 'tok' },
      replyAudioSampleRate: 8000,
      protocolErrors: [],
    });
    expect(summary.replyAudio.length).toBe(15 * 160);
  });

  it('echoes a mark only after the audio queued before it has played', async () => {
    const w = await worker((c) => {
      void streamSidOf(c).then((streamSid) => {
        // 10 frames in one message and 5 frames in five messages, each followed by a mark.
        c.sendJson({ event: 'media', streamSid, media: { payload: b64(loudTone(200)) } });
        c.sendJson({ event: 'mark', streamSid, mark: { name: 'first' } });
        for (let i = 0; i < 5; i++) {
          c.sendJson({ event: 'media', streamSid, media: { payload: b64(loudTone(20)) } });
        }
        c.sendJson({ event: 'mark', streamSid, mark: { name: 'second' } });
      });
    });
    const events: SimEvent[] = [];
    const summary = await simulateCall({
      url: `${w.origin}/media-stream`,
      hangupAfterMs: 600,
      onEvent: (e) => events.push(e),
    });
    const marks = events.filter((e) => e.type === 'mark');
    expect(marks).toEqual([
      expect.objectContaining({ name: 'first', cleared: false, samplesPlayed: 1600 }),
      expect.objectContaining({ name: 'second', cleared: false, samplesPlayed: 2400 }),
    ]);
    // The first echo comes after 10 ticks of playback at the earliest, not when it arrived.
    expect(marks[0]!.type === 'mark' && marks[0]!.atMs).toBeGreaterThanOrEqual(200);
    const firstEcho = events.findIndex((e) => e.type === 'mark');
    const lastMedia = events.findLastIndex((e) => e.type === 'media');
    expect(lastMedia).toBeLessThan(firstEcho);

    const conn = w.connections[0]!;
    await conn.closed;
    const echoes = conn.raw.filter((t) => t.includes('"mark"')).map((t) => parseTwilioInbound(t));
    expect(echoes).toEqual([
      {
        event: 'mark',
        sequenceNumber: expect.any(String),
        streamSid: summary.streamSid,
        mark: { name: 'first' },
      },
      {
        event: 'mark',
        sequenceNumber: expect.any(String),
        streamSid: summary.streamSid,
        mark: { name: 'second' },
      },
    ]);
    expect(summary).toMatchObject({
      audioFramesReceived: 15,
      audioMessagesReceived: 6,
      marksReceived: 2,
      marksAcked: 2,
      marksAckedOnClear: 0,
      clears: 0,
    });
  });

  it('on clear drops the buffered audio and echoes every pending mark at once', async () => {
    const w = await worker((c) => {
      void (async () => {
        const streamSid = await streamSidOf(c);
        c.sendJson({ event: 'media', streamSid, media: { payload: b64(loudTone(2000)) } });
        c.sendJson({ event: 'mark', streamSid, mark: { name: 'a' } });
        c.sendJson({ event: 'media', streamSid, media: { payload: b64(loudTone(1000)) } });
        c.sendJson({ event: 'mark', streamSid, mark: { name: 'b' } });
        await c.waitFor(
          (m) => m['event'] === 'media' && (m['media'] as Record<string, string>)['chunk'] === '5',
        );
        c.sendJson({ event: 'clear', streamSid });
        await c.waitFor(
          (m) => m['event'] === 'mark' && (m['mark'] as Record<string, string>)['name'] === 'b',
        );
        await c.waitFor(
          (m) => m['event'] === 'media' && (m['media'] as Record<string, string>)['chunk'] === '20',
        );
        c.ws.close(1000, 'agent done');
      })();
    });
    const events: SimEvent[] = [];
    const summary = await simulateCall({
      url: `${w.origin}/media-stream`,
      hangupAfterMs: 10_000,
      onEvent: (e) => events.push(e),
    });
    const clearIndex = events.findIndex((e) => e.type === 'clear');
    const clear = events[clearIndex]!;
    expect(clear).toMatchObject({ type: 'clear', marksAcked: 2 });
    expect(clear.type === 'clear' && clear.droppedSamples).toBeGreaterThan(8000);
    const marks = events.filter((e) => e.type === 'mark');
    expect(marks.map((m) => m.type === 'mark' && [m.name, m.cleared])).toEqual([
      ['a', true],
      ['b', true],
    ]);
    // Both echoes were sent at once, right before the 'clear' event, with nothing played between.
    expect(events.slice(clearIndex - 2, clearIndex).map((e) => e.type)).toEqual(['mark', 'mark']);
    expect(summary).toMatchObject({
      clears: 1,
      marksReceived: 2,
      marksAcked: 2,
      marksAckedOnClear: 2,
      closedBy: 'server',
      closeCode: 1000,
      closeReason: 'agent done',
    });
    // What the caller heard: audio up to the clear, then silence to the end of the call.
    const heard = summary.replyAudio;
    const playedBeforeClear = clear.type === 'clear' ? clear.atMs : 0;
    const tail = heard.subarray(Math.ceil(((playedBeforeClear + 20) * 8000) / 1000));
    expect(tail.length).toBeGreaterThan(0);
    expect(tail.every((s) => s === 0)).toBe(true);
    expect(heard.some((s) => Math.abs(s) > 4000)).toBe(true);
  });

  it('records every malformed worker message as a protocol error and keeps the call up', async () => {
    const w = await worker((c) => {
      void (async () => {
        const streamSid = await streamSidOf(c);
        const payload = b64(loudTone(20));
        c.sendJson({ event: 'media', streamSid, media: { payload, track: 'outbound' } });
        c.sendJson({ event: 'mark', streamSid, mark: {} });
        c.sendJson({ event: 'media', streamSid, media: { payload: 'not base64!' } });
        c.sendJson({ event: 'speak', streamSid });
        c.ws.send('{not json');
        c.ws.send(Buffer.from([1, 2, 3]));
        c.sendJson({ event: 'clear', streamSid: 'MZ00000000000000000000000000000000' });
        c.sendJson({ event: 'media', streamSid, media: { payload } });
        c.sendJson({ event: 'mark', streamSid, mark: { name: 'ok' } });
      })();
    });
    const summary = await simulateCall({ url: `${w.origin}/media-stream`, hangupAfterMs: 400 });
    expect(summary.protocolErrors.map((e) => e.code)).toEqual([
      'PROTO_ERR_INVALID_MESSAGE',
      'PROTO_ERR_INVALID_MESSAGE',
      'PROTO_ERR_BAD_BASE64',
      'PROTO_ERR_UNKNOWN_EVENT',
      'PROTO_ERR_INVALID_JSON',
      'PROTO_ERR_BINARY',
      'PROTO_ERR_INVALID_MESSAGE',
    ]);
    expect(summary.protocolErrors[0]!.message).toContain('track');
    expect(summary.protocolErrors[6]!.message).toContain('streamSid');
    // The valid messages after the bad ones still worked; the wrong-stream clear did nothing.
    expect(summary).toMatchObject({ audioMessagesReceived: 1, marksAcked: 1, clears: 0 });
  });

  it('measures the time from the end of each caller utterance to the first reply audio', async () => {
    const w = await worker((c) => {
      void (async () => {
        const streamSid = await streamSidOf(c);
        // Reply once the caller's frame at 300 ms is in: 100 ms after the utterance ended.
        await c.waitFor(
          (m) => m['event'] === 'media' && (m['media'] as Record<string, string>)['chunk'] === '16',
        );
        c.sendJson({ event: 'media', streamSid, media: { payload: b64(loudTone(200)) } });
      })();
    });
    const events: SimEvent[] = [];
    const audio = new Int16Array(3200); // 400 ms: 200 ms of tone, then digital silence
    audio.set(loudTone(200));
    const summary = await simulateCall({
      url: `${w.origin}/media-stream`,
      audio,
      hangupAfterMs: 900,
      onEvent: (e) => events.push(e),
    });
    expect(summary.replies).toHaveLength(1);
    const reply = summary.replies[0]!;
    expect(reply.utteranceIndex).toBe(0);
    expect(reply.utteranceEndMs).toBe(200);
    // The reply cannot play before the tick after chunk 16 (320 ms), so at least 120 ms.
    expect(reply.latencyMs).not.toBeNull();
    expect(reply.latencyMs!).toBeGreaterThanOrEqual(120);
    expect(reply.firstReplyMs).toBeCloseTo(reply.utteranceEndMs + reply.latencyMs!, 5);
    const replyStart = events.find((e) => e.type === 'reply-start');
    expect(replyStart).toMatchObject({ type: 'reply-start', utteranceIndex: 0 });
    expect(replyStart?.type === 'reply-start' && replyStart.atMs).toBeGreaterThanOrEqual(320);
  });

  it('does not hear its own stall as a gap in audio the worker sent in time', async () => {
    // The worker, on its own thread (its own event loop, like a real worker process), sends an
    // 800 ms tone in real time, 200 ms ahead (so its own hiccups on a busy machine are not heard).
    // Midway, the caller's thread blocks for 400 ms, longer than that lead. The worker's frames keep arriving meanwhile; the
    // caller must read them before it plays its overdue ticks, or it hears its own stall as a gap.
    const worker = new Worker(PACED_WORKER_SOURCE, {
      eval: true,
      workerData: { payload: b64(loudTone(20)), frames: 40, leadFrames: 10 },
    });
    onTestFinished(async () => {
      await worker.terminate();
    });
    const [{ port }] = (await once(worker, 'message')) as [{ port: number }];
    let stalled = false;
    const summary = await simulateCall({
      url: `ws://127.0.0.1:${port}/media-stream`,
      hangupAfterMs: 1600,
      onEvent: (e) => {
        if (e.type !== 'media' || e.audioMessagesReceived !== 20) return;
        stalled = true;
        const until = performance.now() + 400;
        while (performance.now() < until) {
          // Blocks this thread's event loop, as a GC pause or a busy CPU would.
        }
      },
    });
    expect(stalled).toBe(true);
    const frameRms = (i: number): number => {
      const f = summary.replyAudio.subarray(i * 160, (i + 1) * 160);
      return Math.sqrt(f.reduce((sum, x) => sum + x * x, 0) / f.length);
    };
    const loud = Array.from(
      { length: summary.replyAudio.length / 160 },
      (_, i) => frameRms(i) > 1000,
    );
    const first = loud.indexOf(true);
    const last = loud.lastIndexOf(true);
    expect(
      loud
        .map((x) => (x ? 'X' : '.'))
        .join('')
        .slice(first, last + 1),
    ).toBe('X'.repeat(40));
  });

  it('uses explicit segments instead of detecting them', async () => {
    const w = await worker();
    const summary = await simulateCall({
      url: `${w.origin}/media-stream`,
      audio: loudTone(200),
      segments: [
        { startMs: 0, endMs: 100 },
        { startMs: 100, endMs: 200 },
      ],
      hangupAfterMs: 200,
    });
    expect(summary.replies).toEqual([
      { utteranceIndex: 0, utteranceEndMs: 100, firstReplyMs: null, latencyMs: null },
      { utteranceIndex: 1, utteranceEndMs: 200, firstReplyMs: null, latencyMs: null },
    ]);
  });
});
