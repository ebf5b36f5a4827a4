import { pcm16ToBytes, tone } from '@callgate/audio';
import { decodeBase64Strict, encodeBase64 } from '@callgate/protocol';
import { describe, expect, it, vi } from 'vitest';
import { signCallToken } from '../src/index.js';
import {
  SILENCE_FRAME,
  TONE_FRAME,
  TestClient,
  httpRequest,
  newSids,
  scriptAgent,
  startTwilioCall,
  startWorker,
  twilio,
  waitForLog,
  type WorkerHarness,
} from './helpers.js';

type Sids = { callSid: string; streamSid: string };

/** Proves a call still works: a DTMF `1` gets a 100 ms reply (5 media messages) and its mark. */
async function expectCallWorks(client: TestClient, sids: Sids): Promise<void> {
  const marksBefore = client.count('mark');
  client.send(twilio.dtmf(sids.streamSid, '1'));
  await client.next((m) => m.event === 'mark' && client.count('mark') > marksBefore);
  expect(client.ws.readyState).toBe(client.ws.OPEN);
}

async function waitForMetric(
  h: WorkerHarness,
  name: string,
  labels: Record<string, string>,
  value: number,
): Promise<void> {
  await vi.waitFor(async () => expect(await h.metric(name, labels)).toBe(value), {
    timeout: 5000,
    interval: 10,
  });
}

describe('MediaSession', () => {
  describe('a Twilio call', () => {
    it('feeds caller audio to the agent and sends a paced reply with one mark, played on echo', async () => {
      const script = scriptAgent();
      const h = await startWorker({}, script.agent);
      const { client, sids } = await startTwilioCall(h);
      for (let i = 1; i <= 5; i++) client.send(twilio.media(sids.streamSid, i, TONE_FRAME));
      await vi.waitFor(() => expect(script.frames.get(sids.callSid)).toBe(5));

      client.send(twilio.dtmf(sids.streamSid, '1'));
      const mark = await client.next((m) => m.event === 'mark');
      const media = client.messages.filter((m) => m.event === 'media');
      expect(media).toHaveLength(5);
      for (const m of media) {
        expect(Object.keys(m).sort()).toEqual(['event', 'media', 'streamSid']);
        expect(m.streamSid).toBe(sids.streamSid);
        const payload = (m.media as { payload: string }).payload;
        expect(decodeBase64Strict(payload).byteLength).toBe(160);
      }
      expect(client.messages.indexOf(mark)).toBe(5); // after the last frame of the utterance
      const name = (mark.mark as { name: string }).name;

      client.send(twilio.mark(sids.streamSid, name));
      await waitForMetric(
        h,
        'media_marks_acked_total',
        { provider: 'twilio', outcome: 'played' },
        1,
      );
      expect(await h.metric('media_audio_messages_in_total', { provider: 'twilio' })).toBe(5);
      expect(await h.metric('media_audio_messages_out_total', { provider: 'twilio' })).toBe(5);
      expect(await h.metric('media_marks_sent_total', { provider: 'twilio' })).toBe(1);
      expect(await h.metric('media_calls_active', { provider: 'twilio' })).toBe(1);

      client.send(twilio.stop(sids));
      expect(await client.closed).toEqual({ code: 1000, reason: 'stop received' });
      await waitForMetric(
        h,
        'media_calls_finished_total',
        { provider: 'twilio', reason: 'caller-hangup' },
        1,
      );
      expect(await h.metric('media_calls_active', { provider: 'twilio' })).toBe(0);
      expect(script.events).toEqual([`start:${sids.callSid}`, `end:${sids.callSid}:caller-hangup`]);
      const ended = await waitForLog(h, (l) => l.msg === 'call ended');
      expect(ended).toMatchObject({
        callSid: sids.callSid,
        streamSid: sids.streamSid,
        reason: 'caller-hangup',
      });
    });

    it('does not count a mark echoed because of a clear as played', async () => {
      const h = await startWorker();
      const { client, sids } = await startTwilioCall(h);
      client.send(twilio.dtmf(sids.streamSid, '1'));
      const mark = await client.next((m) => m.event === 'mark');
      client.send(twilio.dtmf(sids.streamSid, '2')); // a long reply, then barge-in
      await client.next((m) => m.event === 'media' && client.count('media') > 5);
      client.send(twilio.dtmf(sids.streamSid, '*'));
      await client.next((m) => m.event === 'clear');
      // Twilio echoes every pending mark on clear, although that audio was never heard.
      client.send(twilio.mark(sids.streamSid, (mark.mark as { name: string }).name));
      await waitForMetric(
        h,
        'media_marks_acked_total',
        { provider: 'twilio', outcome: 'cleared' },
        1,
      );
      expect(
        await h.metric('media_marks_acked_total', { provider: 'twilio', outcome: 'played' }),
      ).toBe(0);
      expect(await h.metric('media_clears_total', { provider: 'twilio' })).toBe(1);
      expect(client.count('mark')).toBe(1); // the cleared 2 s utterance never got its mark out
    });

    it('closes with 1000 when the agent hangs up', async () => {
      const h = await startWorker();
      const { client, sids } = await startTwilioCall(h);
      client.send(twilio.dtmf(sids.streamSid, '#'));
      expect(await client.closed).toEqual({ code: 1000, reason: 'call ended by the agent' });
      await waitForMetric(
        h,
        'media_calls_finished_total',
        { provider: 'twilio', reason: 'agent-hangup' },
        1,
      );
    });

    it("keeps the agent's own hang-up reason out of the reason label", async () => {
      const h = await startWorker();
      const { client, sids } = await startTwilioCall(h);
      client.send(twilio.dtmf(sids.streamSid, '#'));
      await client.closed;
      const ended = await waitForLog(h, (l) => l.msg === 'call ended');
      // The script agent hangs up with a free-text reason: logged, never a label value.
      expect(ended).toMatchObject({ reason: 'agent-hangup', endReason: 'caller pressed #' });
      const metric = await h.worker.registry.getSingleMetric('media_calls_finished_total')?.get();
      expect(metric?.values.map((v) => v.labels.reason)).toEqual(['agent-hangup']);
    });

    it('counts inbound gaps from media.timestamp', async () => {
      const script = scriptAgent();
      const h = await startWorker({}, script.agent);
      const { client, sids } = await startTwilioCall(h);
      client.send(twilio.media(sids.streamSid, 1, SILENCE_FRAME, 20));
      client.send(twilio.media(sids.streamSid, 2, SILENCE_FRAME, 40));
      client.send(twilio.media(sids.streamSid, 3, SILENCE_FRAME, 120)); // 60..120 missing
      await waitForMetric(h, 'media_inbound_gap_ms_total', { provider: 'twilio' }, 60);
      expect(await h.metric('media_inbound_gaps_total', { provider: 'twilio' })).toBe(1);
      // The agent hears the hole as silence, so its sense of time stays right: 3 frames + 3 filled.
      await vi.waitFor(() => expect(script.frames.get(sids.callSid)).toBe(6));
    });

    it('counts a throwing agent and keeps the call going', async () => {
      const h = await startWorker();
      const { client, sids } = await startTwilioCall(h);
      client.send(twilio.dtmf(sids.streamSid, '!'));
      await waitForMetric(h, 'media_agent_errors_total', { provider: 'twilio' }, 1);
      expect(await h.metric('media_errors_total', { code: 'AGENT_ERR_CALLBACK' })).toBe(1);
      await expectCallWorks(client, sids);
    });
  });

  describe('bad input', () => {
    interface BadCase {
      name: string;
      /** 'fresh': nothing sent yet; 'started': connected + start already accepted. */
      setup: 'fresh' | 'started';
      send(client: TestClient, sids: Sids): void;
      close?: { code: number; reason: string };
      errors: Record<string, number>;
    }
    const tooMany = { code: 1008, reason: 'MEDIA_ERR_TOO_MANY_BAD_MESSAGES' };
    const cases: BadCase[] = [
      {
        name: 'a binary message',
        setup: 'fresh',
        send: (c) => c.ws.send(Buffer.from([1, 2, 3]), { binary: true }),
        close: { code: 1003, reason: 'PROTO_ERR_BINARY' },
        errors: { PROTO_ERR_BINARY: 1 },
      },
      {
        name: 'invalid JSON, past the limit',
        setup: 'fresh',
        send: (c) => {
          for (let i = 0; i < 4; i++) c.send('{not json');
        },
        close: tooMany,
        errors: { PROTO_ERR_INVALID_JSON: 4, MEDIA_ERR_TOO_MANY_BAD_MESSAGES: 1 },
      },
      {
        name: 'one invalid JSON message (ignored)',
        setup: 'started',
        send: (c) => c.send('[1,'),
        errors: { PROTO_ERR_INVALID_JSON: 1 },
      },
      {
        name: 'unknown events, past the limit',
        setup: 'started',
        send: (c, s) => {
          for (let i = 0; i < 4; i++) c.send({ event: 'bogus', streamSid: s.streamSid });
        },
        close: tooMany,
        errors: { PROTO_ERR_UNKNOWN_EVENT: 4 },
      },
      {
        name: 'a message missing a field',
        setup: 'started',
        send: (c, s) =>
          c.send({ event: 'media', sequenceNumber: '2', streamSid: s.streamSid, media: {} }),
        errors: { PROTO_ERR_INVALID_MESSAGE: 1 },
      },
      {
        name: 'media before start',
        setup: 'fresh',
        send: (c, s) => {
          c.send(twilio.connected());
          c.send(twilio.media(s.streamSid, 1));
        },
        close: { code: 1008, reason: 'MEDIA_ERR_NOT_STARTED' },
        errors: { MEDIA_ERR_NOT_STARTED: 1 },
      },
      {
        name: 'a wrong streamSid (ignored)',
        setup: 'started',
        send: (c) => c.send(twilio.media('MZ-someone-else', 1)),
        errors: { MEDIA_ERR_WRONG_STREAM_SID: 1 },
      },
      {
        name: 'bad base64 (ignored)',
        setup: 'started',
        send: (c, s) => c.send(twilio.media(s.streamSid, 1, '!!!notbase64')),
        errors: { PROTO_ERR_BAD_BASE64: 1 },
      },
      {
        name: 'a second start on one stream (ignored)',
        setup: 'started',
        send: (c, s) => c.send(twilio.start(s)),
        errors: { MEDIA_ERR_ALREADY_STARTED: 1 },
      },
      {
        name: 'media faster than real time (a flood)',
        setup: 'started',
        send: (c, s) => {
          for (let i = 1; i <= 300; i++) c.send(twilio.media(s.streamSid, i)); // 6 s at once
        },
        close: tooMany,
        errors: { MEDIA_ERR_TOO_FAST: 4 },
      },
      {
        name: 'an oversized message',
        setup: 'started',
        send: (c, s) => c.send(twilio.media(s.streamSid, 1, 'A'.repeat(70_000))),
        close: { code: 1009, reason: '' },
        errors: { RUNTIME_ERR_MESSAGE_TOO_LARGE: 1 },
      },
      {
        name: 'a start whose CallSid differs from the path',
        setup: 'fresh',
        send: (c, s) => c.send(twilio.start({ ...s, callSid: `${s.callSid}X` })),
        close: { code: 1008, reason: 'MEDIA_ERR_CALLSID_MISMATCH' },
        errors: { MEDIA_ERR_CALLSID_MISMATCH: 1 },
      },
      {
        name: 'a start with another media format',
        setup: 'fresh',
        send: (c, s) =>
          c.send(
            twilio.start(s, {}, { encoding: 'audio/x-mulaw', sampleRate: 16000, channels: 1 }),
          ),
        close: { code: 1008, reason: 'MEDIA_ERR_MEDIA_FORMAT' },
        errors: { MEDIA_ERR_MEDIA_FORMAT: 1 },
      },
    ];

    it.each(cases)(
      '$name: counted and logged with its code; another call is undisturbed',
      async (c) => {
        const h = await startWorker({ maxBadMessages: 3 });
        const other = await startTwilioCall(h);
        let client: TestClient;
        let sids: Sids;
        if (c.setup === 'started') {
          ({ client, sids } = await startTwilioCall(h));
        } else {
          sids = newSids();
          client = await TestClient.connect(`${h.wsUrl}/media-stream/${sids.callSid}`);
        }
        c.send(client, sids);
        if (c.close) expect(await client.closed).toEqual(c.close);
        for (const [code, n] of Object.entries(c.errors)) {
          await waitForMetric(h, 'media_errors_total', { code }, n);
          expect(h.logs.some((l) => l.code === code)).toBe(true);
        }
        if (!c.close) await expectCallWorks(client, sids);
        await expectCallWorks(other.client, other.sids);
        other.client.send(twilio.stop(other.sids));
        expect(await other.client.closed).toEqual({ code: 1000, reason: 'stop received' });
      },
    );

    it('closes a socket that never sends start', async () => {
      const h = await startWorker({ startTimeoutMs: 200 });
      const client = await TestClient.connect(`${h.wsUrl}/media-stream`);
      client.send(twilio.connected());
      expect(await client.closed).toEqual({ code: 1008, reason: 'MEDIA_ERR_START_TIMEOUT' });
      expect(await h.metric('media_errors_total', { code: 'MEDIA_ERR_START_TIMEOUT' })).toBe(1);
    });

    it.each([
      '/media-stream/',
      '/media-stream/a/b',
      '/media',
      '/test-agent/x',
      '/media-stream/a%2Fb',
    ])('refuses an upgrade on %s with 404', async (path) => {
      const h = await startWorker();
      await expect(TestClient.connect(`${h.wsUrl}${path}`)).rejects.toThrow(
        'upgrade refused with 404',
      );
      expect(await h.metric('media_errors_total', { code: 'MEDIA_ERR_NO_ROUTE' })).toBe(1);
    });
  });

  describe('call token', () => {
    const secret = 'a-test-secret-of-32-characters!!';
    const cases: Array<{
      name: string;
      token: (callSid: string) => string | undefined;
      reason: string;
    }> = [
      { name: 'missing', token: () => undefined, reason: 'missing' },
      { name: 'malformed', token: () => 'v1.not-a-token', reason: 'malformed' },
      {
        name: 'for another call',
        token: () => signCallToken({ secret, callSid: 'CAother', ttlSeconds: 60 }),
        reason: 'bad-signature',
      },
      {
        name: 'signed with another secret',
        token: (callSid) => signCallToken({ secret: `${secret}x`, callSid, ttlSeconds: 60 }),
        reason: 'bad-signature',
      },
      {
        name: 'expired',
        token: (callSid) =>
          signCallToken({ secret, callSid, ttlSeconds: 60, nowMs: Date.now() - 120_000 }),
        reason: 'expired',
      },
    ];

    it.each(cases)('closes 1008 MEDIA_ERR_BAD_CALL_TOKEN for a token $name', async (c) => {
      const script = scriptAgent();
      const h = await startWorker({ callTokenSecret: secret }, script.agent);
      const sids = newSids();
      const client = await TestClient.connect(`${h.wsUrl}/media-stream/${sids.callSid}`);
      const token = c.token(sids.callSid);
      client.send(twilio.connected());
      client.send(twilio.start(sids, token === undefined ? {} : { callToken: token }));
      expect(await client.closed).toEqual({ code: 1008, reason: 'MEDIA_ERR_BAD_CALL_TOKEN' });
      expect(await h.metric('media_errors_total', { code: 'MEDIA_ERR_BAD_CALL_TOKEN' })).toBe(1);
      const line = await waitForLog(
        h,
        (l) => l.code === 'MEDIA_ERR_BAD_CALL_TOKEN' && l.msg === 'closing session',
      );
      expect(line.reason).toBe(c.reason);
      expect(script.events).toEqual([]); // no agent ever started
    });

    it('accepts a valid token and hides it from the agent', async () => {
      const script = scriptAgent();
      const h = await startWorker({ callTokenSecret: secret }, script.agent);
      const sids = newSids();
      const token = signCallToken({ secret, callSid: sids.callSid, ttlSeconds: 60 });
      await startTwilioCall(h, { sids, customParameters: { callToken: token, lang: 'en' } });
      await vi.waitFor(() => expect(script.calls).toHaveLength(1));
      expect(script.calls[0]!.info.customParameters).toEqual({ lang: 'en' });
    });
  });

  describe('a second stream for the same CallSid', () => {
    it('replaces the older stream: 4409, its agent ends before the new one starts', async () => {
      const script = scriptAgent();
      const h = await startWorker({}, script.agent);
      const first = await startTwilioCall(h);
      const secondSids = { callSid: first.sids.callSid, streamSid: `${first.sids.streamSid}2` };
      const second = await TestClient.connect(`${h.wsUrl}/media-stream/${secondSids.callSid}`);
      second.send(twilio.connected());
      second.send(twilio.start(secondSids));
      expect(await first.client.closed).toEqual({
        code: 4409,
        reason: 'replaced by a newer stream for this call',
      });
      await vi.waitFor(() => expect(script.events).toHaveLength(3));
      const id = first.sids.callSid;
      expect(script.events).toEqual([`start:${id}`, `end:${id}:replaced`, `start:${id}`]);
      await expectCallWorks(second, secondSids);
      expect(await h.metric('media_streams_replaced_total')).toBe(1);
      await waitForMetric(
        h,
        'media_calls_finished_total',
        { provider: 'twilio', reason: 'replaced' },
        1,
      );
      expect(await h.metric('media_calls_active', { provider: 'twilio' })).toBe(1);
      expect(h.worker.activeCalls).toBe(1);
    });
  });

  describe('limits and drain', () => {
    it('refuses upgrades past MAX_CALLS with 503', async () => {
      const h = await startWorker({ maxCalls: 1 });
      await startTwilioCall(h);
      await expect(TestClient.connect(`${h.wsUrl}/media-stream/CAextra`)).rejects.toThrow(
        'upgrade refused with 503',
      );
    });

    it('keeps live calls while draining, refuses new ones, and closes once they end', async () => {
      const h = await startWorker();
      const { client, sids } = await startTwilioCall(h);
      h.worker.beginDrain();
      expect((await httpRequest(`${h.url}/readyz`)).status).toBe(503);
      await expect(TestClient.connect(`${h.wsUrl}/media-stream/CAnew`)).rejects.toThrow(
        'upgrade refused with 503',
      );
      let closed = false;
      const closing = h.worker.close().then(() => {
        closed = true;
      });
      await expectCallWorks(client, sids);
      expect(closed).toBe(false);
      client.send(twilio.stop(sids));
      expect((await client.closed).code).toBe(1000);
      await closing;
    });

    it('keeps accepting calls during the accept grace while readiness is already 503', async () => {
      const h = await startWorker({ acceptGraceMs: 60_000 });
      h.worker.beginDrain();
      expect(h.worker.isDraining).toBe(true);
      expect(h.worker.isAccepting).toBe(true);
      expect((await httpRequest(`${h.url}/readyz`)).status).toBe(503);
      // A call the proxy sent before its next probe is served, not refused.
      const { client, sids } = await startTwilioCall(h);
      await expectCallWorks(client, sids);
      await h.worker.destroy();
      expect(h.worker.isAccepting).toBe(false);
      expect(await client.closed).toEqual({ code: 1012, reason: 'service restart' });
    });

    it('refuses new calls with 503 once the accept grace is over', async () => {
      const h = await startWorker({ acceptGraceMs: 50 });
      h.worker.beginDrain();
      await waitForLog(h, (l) => l.msg === 'accept grace over, refusing new sessions');
      expect(h.worker.isAccepting).toBe(false);
      await expect(TestClient.connect(`${h.wsUrl}/media-stream/CAlate`)).rejects.toThrow(
        'upgrade refused with 503',
      );
      await h.worker.close();
    });

    it('closes live calls with 1012 on destroy', async () => {
      const h = await startWorker();
      const { client } = await startTwilioCall(h);
      await h.worker.destroy();
      expect(await client.closed).toEqual({ code: 1012, reason: 'service restart' });
      expect(
        await h.metric('media_calls_finished_total', {
          provider: 'twilio',
          reason: 'service-restart',
        }),
      ).toBe(1);
    });
  });

  describe('a SansPBX call', () => {
    const ids = { streamId: 'stream-1', channelId: 'SIP/test-0001', callId: 'sans-call-1' };
    const pcmFrame = encodeBase64(pcm16ToBytes(tone([440], 20, 8000, 0.25)));

    it('runs on the bare path with reverse-media and marks reported after playout', async () => {
      const script = scriptAgent();
      const h = await startWorker({}, script.agent);
      const client = await TestClient.connect(`${h.wsUrl}/media-stream`);
      client.send({ event: 'connected' });
      client.send({ event: 'answer', ...ids });
      client.send({ event: 'start', channelId: ids.channelId, mediaFormat: { sampleRate: 8000 } });
      for (let i = 1; i <= 3; i++) client.send({ event: 'media', chunk: i, payload: pcmFrame });
      await vi.waitFor(() => expect(script.frames.get(ids.callId)).toBe(3));
      client.send({ event: 'dtmf', digit: '1' });
      await vi.waitFor(() => expect(client.count('reverse-media')).toBe(5));
      for (const m of client.messages) {
        expect(m).toMatchObject({ event: 'reverse-media', ...ids });
        expect(decodeBase64Strict(m.payload as string).byteLength).toBe(320);
      }
      await waitForMetric(
        h,
        'media_marks_acked_total',
        { provider: 'sanspbx', outcome: 'played' },
        1,
      );
      await vi.waitFor(() => expect(script.calls[0]!.isSpeaking).toBe(false));
      client.send({ event: 'stop', callId: ids.callId, disconnectedBy: 'caller' });
      expect(await client.closed).toEqual({ code: 1000, reason: 'stop received' });
      await waitForMetric(
        h,
        'media_calls_finished_total',
        { provider: 'sanspbx', reason: 'caller-hangup' },
        1,
      );
    });

    it('refuses SansPBX when it is turned off', async () => {
      const h = await startWorker({ sansPbxEnabled: false });
      const client = await TestClient.connect(`${h.wsUrl}/media-stream`);
      client.send({ event: 'answer', ...ids });
      expect(await client.closed).toEqual({ code: 1008, reason: 'MEDIA_ERR_PROVIDER_DISABLED' });
    });

    it('closes media before answer with 1008', async () => {
      const h = await startWorker();
      const client = await TestClient.connect(`${h.wsUrl}/media-stream`);
      client.send({ event: 'media', chunk: 1, payload: pcmFrame });
      expect(await client.closed).toEqual({ code: 1008, reason: 'MEDIA_ERR_NOT_STARTED' });
    });
  });
});
