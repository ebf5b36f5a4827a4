import { once } from 'node:events';
import { dbfs, frameSamples, normalizedCrossCorrelation, tone } from '@callgate/audio';
import { describe, expect, it, onTestFinished } from 'vitest';
import { Call } from '../src/call.js';
import type { AgentError } from '../src/errors.js';
import type { Agent, AgentCall, AgentSession } from '../src/types.js';
import { FakeTransport, captureLogs, chunks, concat, feed, makeCall } from './helpers.js';

interface Recorded {
  call: AgentCall | undefined;
  frames: Int16Array[];
  digits: string[];
  played: string[];
  ends: string[];
}

/** An agent that records every callback; `session` overrides individual callbacks. */
function recordingAgent(
  options: { sampleRate?: number; session?: (rec: Recorded) => AgentSession } = {},
): { agent: Agent; rec: Recorded } {
  const rec: Recorded = { call: undefined, frames: [], digits: [], played: [], ends: [] };
  const agent: Agent = {
    name: 'recorder',
    ...(options.sampleRate === undefined ? {} : { sampleRate: options.sampleRate }),
    start(call) {
      rec.call = call;
      return {
        onAudio: (frame) => void rec.frames.push(frame),
        onDtmf: (digit) => void rec.digits.push(digit),
        onPlayed: (id) => void rec.played.push(id),
        onEnd: (reason) => void rec.ends.push(reason),
        ...options.session?.(rec),
      };
    },
  };
  return { agent, rec };
}

function ramp(n: number, start = 1): Int16Array {
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = start + i;
  return out;
}

describe('Call', () => {
  describe('outbound', () => {
    it('sends 20 ms frames at the transport rate, zero-pads the last one, then the mark', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport, pacer } = makeCall(agent);
      await call.start();
      const pcm = ramp(1000); // 125 ms at 8 kHz
      const id = rec.call!.say(pcm);
      expect(id).toBe('CA1-u1');
      expect(pacer().running).toBe(true);
      pacer().drain();
      expect(pacer().running).toBe(false);
      const frames = transport.frames;
      expect(frames).toHaveLength(7);
      for (const frame of frames) expect(frame.length).toBe(160);
      const sent = concat(frames);
      expect(Array.from(sent.subarray(0, 1000))).toEqual(Array.from(pcm));
      expect(sent.subarray(1000).every((s) => s === 0)).toBe(true);
      expect(transport.log.at(-1)).toEqual({ type: 'mark', name: 'CA1-u1' });
      expect(transport.log.at(-2)?.type).toBe('audio');
      expect(call.stats).toMatchObject({ framesOut: 7, marksSent: 1, utterances: 1 });
    });

    it('sends exactly one frame per tick and restarts the pacer on the next say', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport, pacer } = makeCall(agent);
      await call.start();
      rec.call!.say(new Int16Array(480));
      for (let n = 1; n <= 3; n++) {
        pacer().tick();
        expect(transport.count('audio')).toBe(n);
      }
      expect(transport.marks).toEqual(['CA1-u1']);
      expect(pacer().running).toBe(false);
      expect(rec.call!.say(new Int16Array(160))).toBe('CA1-u2');
      expect(pacer().running).toBe(true);
      pacer().drain();
      expect(transport.marks).toEqual(['CA1-u1', 'CA1-u2']);
    });

    it('streams pieces of one utterance under one id and one mark', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport, pacer } = makeCall(agent);
      await call.start();
      const says: Array<[string, number, boolean]> = [];
      call.on('say', (id, samples, final) => says.push([id, samples.length, final]));
      const a = rec.call!.say(ramp(100), { final: false });
      const b = rec.call!.say(ramp(100, 101), { final: false });
      pacer().drain();
      expect(transport.marks).toEqual([]); // the utterance is still open
      const c = rec.call!.say(ramp(50, 201));
      expect(new Set([a, b, c])).toEqual(new Set(['CA1-u1']));
      pacer().drain();
      expect(transport.marks).toEqual(['CA1-u1']);
      expect(Array.from(transport.audio().subarray(0, 250))).toEqual(Array.from(ramp(250)));
      expect(says).toEqual([
        ['CA1-u1', 100, false],
        ['CA1-u1', 100, false],
        ['CA1-u1', 50, true],
      ]);
      expect(call.stats.utterances).toBe(1);
    });

    it('is speaking from the first say until the mark is echoed, then reports it played', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport, pacer } = makeCall(agent);
      await call.start();
      const played: string[] = [];
      call.on('played', (id) => played.push(id));
      expect(call.isSpeaking).toBe(false);
      const id = rec.call!.say(new Int16Array(320));
      expect(rec.call!.isSpeaking).toBe(true);
      pacer().drain();
      expect(transport.marks).toEqual([id]);
      expect(call.isSpeaking).toBe(true); // sent, not yet heard
      call.receiveMark(id);
      expect(call.isSpeaking).toBe(false);
      expect(rec.played).toEqual([id]);
      expect(played).toEqual([id]);
      expect(call.stats).toMatchObject({ marksSent: 1, marksPlayed: 1, marksCleared: 0 });
    });

    it('emits frame-out with every frame handed to the transport', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport, pacer } = makeCall(agent);
      await call.start();
      const out: Int16Array[] = [];
      call.on('frame-out', (frame) => out.push(frame));
      rec.call!.say(ramp(700));
      pacer().drain();
      expect(out).toEqual(transport.frames);
    });

    it('counts ticks more than 10 ms late', async () => {
      const { agent, rec } = recordingAgent();
      const { call, pacer } = makeCall(agent);
      await call.start();
      rec.call!.say(new Int16Array(800));
      pacer().tick(2);
      pacer().lateMs = 25;
      pacer().tick(2);
      pacer().lateMs = 5;
      pacer().drain();
      expect(call.stats).toMatchObject({ framesOut: 5, lateFrames: 2 });
    });

    it('paces with the real Pacer until the mark is played', async () => {
      const { agent, rec } = recordingAgent();
      const transport = new FakeTransport(8000);
      const call = new Call({
        info: { callId: 'CA9', transport: 'twilio', customParameters: {} },
        agent,
        transport,
        logger: captureLogs().logger,
      });
      onTestFinished(() => call.end('test-finished'));
      transport.echoTo = call;
      await call.start();
      const played = once(call, 'played');
      const id = rec.call!.say(tone([440], 100, 8000, 0.5));
      expect(await played).toEqual([id]);
      expect(transport.frames.map((f) => f.length)).toEqual([160, 160, 160, 160, 160]);
      expect(call.stats).toMatchObject({ framesOut: 5, marksSent: 1, marksPlayed: 1 });
    });
  });

  describe('playback lead', () => {
    /** Frames handed to the transport after each of `ticks` ticks. */
    function framesPerTick(t: ReturnType<typeof makeCall>, ticks: number): number[] {
      const counts: number[] = [];
      for (let i = 0; i < ticks; i++) {
        const before = t.transport.count('audio');
        t.pacer().tick();
        counts.push(t.transport.count('audio') - before);
      }
      return counts;
    }

    it.each([
      { leadMs: 0, expected: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1] },
      { leadMs: 60, expected: [4, 1, 1, 1, 1, 1, 1] },
      { leadMs: 100, expected: [6, 1, 1, 1, 1] },
      { leadMs: 90, expected: [6, 1, 1, 1, 1] }, // rounded to whole 20 ms frames
      { leadMs: 400, expected: [10] },
    ])('sends $leadMs ms ahead at the start of a run, then one frame per tick', async (row) => {
      const { agent, rec } = recordingAgent();
      const t = makeCall(agent, { extra: { playbackLeadMs: row.leadMs } });
      await t.call.start();
      rec.call!.say(new Int16Array(1600)); // 10 frames
      expect(framesPerTick(t, row.expected.length)).toEqual(row.expected);
      expect(t.transport.log.at(-1)).toEqual({ type: 'mark', name: 'CA1-u1' });
      expect(t.pacer().running).toBe(false);
    });

    it('keeps the lead after a stall: every due tick sends one frame, never more than the lead', async () => {
      const { agent, rec } = recordingAgent();
      const t = makeCall(agent, { extra: { playbackLeadMs: 40 } });
      await t.call.start();
      rec.call!.say(new Int16Array(160 * 20));
      // A stall: the pacer delivers five overdue ticks back to back (as the real Pacer does).
      t.pacer().lateMs = 80;
      expect(framesPerTick(t, 5)).toEqual([3, 1, 1, 1, 1]);
      expect(t.call.stats.lateFrames).toBe(7);
    });

    it('refills the whole lead after a clear and after the queue ran dry', async () => {
      const { agent, rec } = recordingAgent();
      const t = makeCall(agent, { extra: { playbackLeadMs: 40 } });
      await t.call.start();
      rec.call!.say(new Int16Array(160 * 10));
      expect(framesPerTick(t, 2)).toEqual([3, 1]);
      rec.call!.clear();
      rec.call!.say(new Int16Array(160 * 10));
      expect(framesPerTick(t, 2)).toEqual([3, 1]);
      t.pacer().drain();
      rec.call!.say(new Int16Array(160 * 2));
      expect(framesPerTick(t, 1)).toEqual([2]);
      expect(t.transport.marks).toEqual(['CA1-u2', 'CA1-u3']); // u1 was cleared before its mark
    });

    it('puts the mark right behind the last frame even when the lead sends it early', async () => {
      const { agent, rec } = recordingAgent();
      const t = makeCall(agent, { extra: { playbackLeadMs: 100 } });
      await t.call.start();
      const a = rec.call!.say(new Int16Array(320));
      const b = rec.call!.say(new Int16Array(320));
      t.pacer().tick();
      expect(t.transport.log.map((e) => e.type)).toEqual([
        'audio',
        'audio',
        'mark',
        'audio',
        'audio',
        'mark',
      ]);
      expect(t.transport.marks).toEqual([a, b]);
    });

    it.each([-20, 2020, Number.NaN])('rejects a lead of %s ms', (leadMs) => {
      const { agent } = recordingAgent();
      expect(() => makeCall(agent, { extra: { playbackLeadMs: leadMs } })).toThrow(
        /playbackLeadMs must be between 0 and 2000/,
      );
    });
  });

  describe('clear', () => {
    it('drops queued audio, sends clear, and counts echoes of sent marks as cleared', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport, pacer } = makeCall(agent);
      await call.start();
      const clears: number[] = [];
      call.on('clear', () => clears.push(transport.log.length));
      const first = rec.call!.say(new Int16Array(320)); // 2 frames, then its mark
      const second = rec.call!.say(new Int16Array(1600)); // 10 frames
      pacer().tick(4);
      expect(transport.marks).toEqual([first]);
      rec.call!.clear();
      expect(transport.log.at(-1)).toEqual({ type: 'clear' });
      expect(clears).toHaveLength(1);
      expect(call.isSpeaking).toBe(false);
      expect(pacer().running).toBe(false);
      pacer().tick(20);
      expect(transport.count('audio')).toBe(4);
      // Twilio echoes the pending mark after a clear: it was not heard.
      call.receiveMark(first);
      expect(rec.played).toEqual([]);
      expect(transport.marks).not.toContain(second);
      expect(call.stats).toMatchObject({
        clears: 1,
        marksSent: 1,
        marksPlayed: 0,
        marksCleared: 1,
      });
    });

    it('closes the open utterance and starts a fresh one after clear', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport, pacer } = makeCall(agent);
      await call.start();
      const open = rec.call!.say(ramp(100), { final: false });
      rec.call!.clear();
      const next = rec.call!.say(ramp(100, 1000));
      expect(next).not.toBe(open);
      pacer().drain();
      // The 100 samples held back for the open utterance were dropped with it.
      expect(Array.from(transport.audio().subarray(0, 100))).toEqual(Array.from(ramp(100, 1000)));
      expect(transport.marks).toEqual([next]);
    });

    it('warns about unknown marks and ignores them', async () => {
      const { agent, rec } = recordingAgent();
      const { call, logs } = makeCall(agent);
      await call.start();
      const problems: string[] = [];
      call.on('problem', (err) => problems.push(err.code));
      call.receiveMark('not-ours');
      expect(logs.codes()).toEqual(['AGENT_ERR_UNKNOWN_MARK']);
      expect(problems).toEqual(['AGENT_ERR_UNKNOWN_MARK']);
      expect(rec.played).toEqual([]);
      expect(call.stats.marksPlayed).toBe(0);
    });

    it('on a resumed call, ignores unknown marks quietly (an earlier worker sent them)', async () => {
      const { agent, rec } = recordingAgent();
      const info = { callId: 'CA1', transport: 'twilio' as const, customParameters: {} };
      const { call, logs, transport, pacer } = makeCall(agent, {
        extra: { info: { ...info, resumed: { attempt: 1 } } },
      });
      await call.start();
      expect(rec.call!.info.resumed).toEqual({ attempt: 1 });
      const problems: string[] = [];
      call.on('problem', (err) => problems.push(err.code));
      expect(call.receiveMark('from-the-old-worker')).toBe('unknown');
      expect(logs.codes()).toEqual([]);
      expect(problems).toEqual([]);
      // Its own marks are still played.
      const id = rec.call!.say(new Int16Array(160));
      pacer().drain();
      expect(transport.marks).toEqual([id]);
      expect(call.receiveMark(id)).toBe('played');
      expect(rec.played).toEqual([id]);
    });
  });

  describe('resampling', () => {
    it('hands a 16 kHz agent 20 ms frames of 8 kHz caller audio at the same level', async () => {
      const { agent, rec } = recordingAgent({ sampleRate: 16000 });
      const { call } = makeCall(agent, { transportRate: 8000 });
      await call.start();
      expect(rec.call!.sampleRate).toBe(16000);
      const input = tone([440], 1000, 8000, 0.5);
      feed(call, input, 123); // chunk boundaries that match no frame size
      expect(rec.frames.length).toBeGreaterThanOrEqual(48);
      expect(rec.frames.length).toBeLessThanOrEqual(50);
      for (const frame of rec.frames) expect(frame.length).toBe(frameSamples(16000));
      const steady = concat(rec.frames.slice(5, 45));
      expect(dbfs(steady)).toBeCloseTo(dbfs(input), 0);
      const reference = tone([440], 800, 16000, 0.5);
      expect(normalizedCrossCorrelation(reference, steady, 40).coefficient).toBeGreaterThan(0.99);
      expect(call.stats.framesIn).toBe(rec.frames.length);
    });

    it('sends a 16 kHz agent voice as 8 kHz 20 ms frames at the same level', async () => {
      const { agent, rec } = recordingAgent({ sampleRate: 16000 });
      const { call, transport, pacer } = makeCall(agent, { transportRate: 8000 });
      await call.start();
      const speech = tone([440], 1000, 16000, 0.5);
      for (const piece of chunks(speech, 777)) rec.call!.say(piece, { final: false });
      rec.call!.say(new Int16Array(0));
      pacer().drain();
      const frames = transport.frames;
      for (const frame of frames) expect(frame.length).toBe(160);
      // 1 s plus the filter's few milliseconds of delay, rounded up to a frame.
      expect(frames.length).toBeGreaterThanOrEqual(50);
      expect(frames.length).toBeLessThanOrEqual(51);
      const steady = concat(frames.slice(5, 45));
      expect(dbfs(steady)).toBeCloseTo(dbfs(speech), 0);
      const reference = tone([440], 800, 8000, 0.5);
      expect(normalizedCrossCorrelation(reference, steady, 20).coefficient).toBeGreaterThan(0.99);
      expect(transport.marks).toEqual(['CA1-u1']);
    });
  });

  describe('inbound', () => {
    it('reframes any chunk size into exact 20 ms frames without losing samples', async () => {
      const { agent, rec } = recordingAgent();
      const { call } = makeCall(agent);
      await call.start();
      const input = ramp(1600);
      feed(call, input, 37);
      expect(rec.frames).toHaveLength(10);
      expect(rec.frames.every((f) => f.length === 160)).toBe(true);
      expect(Array.from(concat(rec.frames))).toEqual(Array.from(input));
    });

    it('holds caller audio and digits that arrive while the agent is starting', async () => {
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      const frames: Int16Array[] = [];
      const digits: string[] = [];
      const agent: Agent = {
        name: 'slow',
        async start() {
          await gate;
          return { onAudio: (f) => void frames.push(f), onDtmf: (d) => void digits.push(d) };
        },
      };
      const { call } = makeCall(agent);
      const started = call.start();
      feed(call, ramp(480));
      call.receiveDtmf('4');
      expect(frames).toHaveLength(0);
      release();
      await started;
      expect(frames).toHaveLength(3);
      expect(digits).toEqual(['4']);
    });

    it('passes digits to the agent and emits dtmf', async () => {
      const { agent, rec } = recordingAgent();
      const { call } = makeCall(agent);
      await call.start();
      const seen: string[] = [];
      call.on('dtmf', (d) => seen.push(d));
      call.receiveDtmf('1');
      call.receiveDtmf('#');
      expect(rec.digits).toEqual(['1', '#']);
      expect(seen).toEqual(['1', '#']);
      expect(call.stats.dtmfIn).toBe(2);
    });
  });

  describe('queue bound', () => {
    it('drops audio beyond maxQueuedMs and still closes the utterance', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport, pacer, logs } = makeCall(agent, { extra: { maxQueuedMs: 100 } });
      await call.start();
      const id = rec.call!.say(new Int16Array(2400)); // 300 ms
      pacer().drain();
      expect(transport.count('audio')).toBe(5);
      expect(transport.marks).toEqual([id]);
      expect(call.stats.droppedMs).toBe(200);
      expect(logs.codes()).toEqual(['AGENT_ERR_QUEUE_FULL']);
      // Once played out, there is room again.
      rec.call!.say(new Int16Array(800));
      pacer().drain();
      expect(transport.count('audio')).toBe(10);
      expect(call.stats.droppedMs).toBe(200);
    });
  });

  describe('agent errors', () => {
    it('counts, logs and emits a throwing callback, and the call goes on', async () => {
      const { agent, rec } = recordingAgent({
        session: () => ({
          onAudio: () => {
            throw new Error('agent bug');
          },
        }),
      });
      const { call, transport, logs } = makeCall(agent);
      await call.start();
      const errors: AgentError[] = [];
      call.on('agent-error', (err) => errors.push(err));
      feed(call, new Int16Array(480));
      call.receiveDtmf('7');
      expect(rec.digits).toEqual(['7']);
      expect(call.isEnded).toBe(false);
      expect(call.stats.agentErrors).toBe(3);
      expect(errors.map((e) => e.code)).toEqual(Array(3).fill('AGENT_ERR_CALLBACK'));
      expect((errors[0]!.cause as Error).message).toBe('agent bug');
      expect(logs.codes()).toEqual(Array(3).fill('AGENT_ERR_CALLBACK'));
      expect(transport.count('hangup')).toBe(0);
    });

    it('counts a rejected promise from a callback', async () => {
      const { agent } = recordingAgent({
        session: () => ({ onDtmf: () => Promise.reject(new Error('async bug')) as never }),
      });
      const { call } = makeCall(agent);
      await call.start();
      const error = once(call, 'agent-error');
      call.receiveDtmf('1');
      const [err] = (await error) as [AgentError];
      expect(err.code).toBe('AGENT_ERR_CALLBACK');
      expect(call.stats.agentErrors).toBe(1);
    });

    it('hangs up with agent-error after more than maxAgentErrors', async () => {
      const { agent, rec } = recordingAgent({
        session: (r) => ({
          onAudio: () => {
            throw new Error('again');
          },
          onEnd: (reason) => void r.ends.push(reason),
        }),
      });
      const { call, transport, logs } = makeCall(agent, { extra: { maxAgentErrors: 2 } });
      await call.start();
      feed(call, new Int16Array(160 * 5));
      expect(call.stats.agentErrors).toBe(3);
      expect(transport.log).toEqual([{ type: 'hangup', reason: 'agent-error' }]);
      expect(call.isEnded).toBe(true);
      expect(rec.ends).toEqual(['agent-error']);
      expect(logs.codes()).toContain('AGENT_ERR_TOO_MANY_ERRORS');
    });

    it.each([
      [
        'throws',
        () => {
          throw new Error('no start');
        },
      ],
      ['rejects', () => Promise.reject(new Error('no start'))],
      ['returns nothing', () => undefined as unknown as AgentSession],
    ])('hangs up with agent-error when start %s', async (_label, start) => {
      const agent: Agent = { name: 'broken', start };
      const { call, transport, logs } = makeCall(agent);
      const ended = once(call, 'end');
      await call.start();
      expect(await ended).toEqual(['agent-error']);
      expect(transport.log).toEqual([{ type: 'hangup', reason: 'agent-error' }]);
      expect(logs.codes()).toEqual(['AGENT_ERR_START']);
      expect(call.stats.agentErrors).toBe(1);
    });

    it('fails start for an agent rate the resampler does not take', async () => {
      const { agent } = recordingAgent({ sampleRate: 50 });
      const { call, transport, logs } = makeCall(agent);
      await call.start();
      expect(call.endReason).toBe('agent-error');
      expect(transport.log).toEqual([{ type: 'hangup', reason: 'agent-error' }]);
      expect(logs.codes()).toEqual(['AGENT_ERR_START']);
    });
  });

  describe('end and hangup', () => {
    it('is idempotent and nothing reaches the agent or the transport afterwards', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport, pacer, logs } = makeCall(agent);
      await call.start();
      const ends: string[] = [];
      call.on('end', (r) => ends.push(r));
      rec.call!.say(new Int16Array(1600));
      pacer().tick(2);
      call.end('caller-hung-up');
      call.end('again');
      expect(ends).toEqual(['caller-hung-up']);
      expect(rec.ends).toEqual(['caller-hung-up']);
      expect(call.endReason).toBe('caller-hung-up');
      expect(pacer().running).toBe(false);
      const before = transport.log.length;
      const id = rec.call!.say(new Int16Array(160));
      expect(typeof id).toBe('string');
      expect(pacer().running).toBe(false);
      rec.call!.clear();
      rec.call!.hangup('late');
      feed(call, new Int16Array(480));
      call.receiveDtmf('1');
      call.receiveMark('CA1-u1');
      pacer().tick(5);
      expect(transport.log.length).toBe(before);
      expect(rec.frames).toEqual([]);
      expect(rec.digits).toEqual([]);
      expect(logs.lines.some((l) => l.msg === 'say after the call ended ignored')).toBe(true);
    });

    it('hangs up through the transport when the agent asks', async () => {
      const { agent, rec } = recordingAgent();
      const { call, transport } = makeCall(agent);
      await call.start();
      const hangups: string[] = [];
      call.on('hangup', (r) => hangups.push(r));
      rec.call!.hangup('done');
      expect(hangups).toEqual(['done']);
      expect(transport.log).toEqual([{ type: 'hangup', reason: 'done' }]);
      expect(rec.ends).toEqual(['done']);
      expect(call.isEnded).toBe(true);
      call.end('socket-closed');
      expect(rec.ends).toEqual(['done']);
    });

    it('tells an agent that finishes starting after the call ended', async () => {
      let release: () => void = () => {};
      const gate = new Promise<void>((resolve) => (release = resolve));
      const ends: string[] = [];
      const agent: Agent = {
        name: 'slow',
        async start() {
          await gate;
          return { onEnd: (r) => void ends.push(r) };
        },
      };
      const { call, transport } = makeCall(agent);
      const started = call.start();
      call.end('caller-hung-up');
      release();
      await started;
      expect(ends).toEqual(['caller-hung-up']);
      expect(transport.log).toEqual([]);
    });
  });
});
