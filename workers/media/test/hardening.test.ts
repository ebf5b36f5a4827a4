import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  TestClient,
  newSids,
  scriptAgent,
  startTwilioCall,
  startWorker,
  twilio,
  waitForLog,
} from './helpers.js';

/** Keeps a started call fed with caller audio every 20 ms, as Twilio does. */
function feed(client: TestClient, streamSid: string): () => void {
  let chunk = 0;
  const timer = setInterval(() => {
    if (client.ws.readyState === WebSocket.OPEN) client.send(twilio.media(streamSid, chunk++));
  }, 20);
  return () => clearInterval(timer);
}

describe('capacity belongs to real calls', () => {
  it('sockets that never start hold no call slot; the oldest idle one is pushed out', async () => {
    const h = await startWorker({ maxCalls: 2, maxUnstartedStreams: 4, startTimeoutMs: 60_000 });
    // A squatter opens far more sockets than there are call slots, and never sends `start`.
    const squatters: TestClient[] = [];
    for (let i = 0; i < 12; i++)
      squatters.push(await TestClient.connect(`${h.wsUrl}/media-stream`));
    // Real calls still start: the slots are for started calls.
    const a = await startTwilioCall(h);
    const stopA = feed(a.client, a.sids.streamSid);
    // A socket opened while a slot is free, that starts only after the last slot was taken…
    const sids = newSids();
    const late = await TestClient.connect(`${h.wsUrl}/media-stream/${sids.callSid}`);
    const b = await startTwilioCall(h);
    const stopB = feed(b.client, b.sids.streamSid);
    // At most maxUnstartedStreams idle sockets are ever held; the rest were closed 1013.
    const evicted = await Promise.all(
      squatters.slice(0, 8).map(async (s) => (await s.closed).code),
    );
    expect(evicted.every((code) => code === 1013)).toBe(true);
    expect(
      await h.metric('media_errors_total', { code: 'RUNTIME_ERR_UNSTARTED_EVICTED' }),
    ).toBeGreaterThanOrEqual(8);
    // …is refused at its `start` with 1013 (try again later): the slot count is exact.
    late.send(twilio.connected());
    late.send(twilio.start(sids));
    expect(await late.closed).toEqual({ code: 1013, reason: 'MEDIA_ERR_TOO_MANY_CALLS' });
    // And with both slots taken, a new upgrade is answered 503 (the proxy tries another worker).
    await expect(
      TestClient.connect(`${h.wsUrl}/media-stream/${newSids().callSid}`),
    ).rejects.toThrow(/503/);
    stopA();
    stopB();
  });

  it("evicts the squatter's own idle sockets, not a real call waiting for its start", async () => {
    const h = await startWorker({ maxCalls: 4, maxUnstartedStreams: 4, startTimeoutMs: 60_000 });
    // A real call's socket is open (from the proxy, for client 198.51.100.7) and its `start` is
    // still on its way…
    const sids = newSids();
    const real = await TestClient.connect(`${h.wsUrl}/media-stream/${sids.callSid}`, {
      'X-Forwarded-For': '198.51.100.7',
    });
    // …when a squatter at another address opens many sockets it never starts.
    const squatters: TestClient[] = [];
    for (let i = 0; i < 10; i++) {
      squatters.push(
        await TestClient.connect(`${h.wsUrl}/media-stream`, { 'X-Forwarded-For': '203.0.113.9' }),
      );
    }
    // Per client address at most maxUnstartedStreams wait: the squatter's 6 oldest went.
    const evicted = await Promise.all(
      squatters.slice(0, 6).map(async (s) => (await s.closed).code),
    );
    expect(evicted).toEqual(Array(6).fill(1013));
    // The real call was never the one pushed out: it starts and is served.
    real.send(twilio.connected());
    real.send(twilio.start(sids));
    await waitForLog(h, (l) => l.msg === 'call started' && l.callSid === sids.callSid);
    expect(real.ws.readyState).toBe(WebSocket.OPEN);
    const line = h.logs.find((l) => l.code === 'RUNTIME_ERR_UNSTARTED_EVICTED');
    expect(line).toMatchObject({ client: '203.0.113.9' });
  });

  it('caps idle sockets of all clients together at four times the per-client bound', async () => {
    const h = await startWorker({ maxCalls: 4, maxUnstartedStreams: 2, startTimeoutMs: 60_000 });
    const open = (client: string): Promise<TestClient> =>
      TestClient.connect(`${h.wsUrl}/media-stream`, { 'X-Forwarded-For': client });
    // Many addresses, each within its own bound (2): 8 idle sockets in all, the cap.
    const spread: TestClient[] = [];
    for (const client of ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4']) {
      spread.push(await open(client), await open(client));
    }
    // One more pushes out the oldest socket of a client holding the most: 192.0.2.1's first.
    const more = await open('192.0.2.5');
    expect((await spread[0]!.closed).code).toBe(1013);
    expect(spread.slice(1).every((c) => c.ws.readyState === WebSocket.OPEN)).toBe(true);
    expect(more.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('ends a started stream that sends no media with 1008 MEDIA_ERR_NO_MEDIA', async () => {
    const h = await startWorker({ noMediaTimeoutMs: 300, heartbeatIntervalMs: 600_000 });
    const { client, sids } = await startTwilioCall(h);
    const startedAt = Date.now();
    expect(await client.closed).toEqual({ code: 1008, reason: 'MEDIA_ERR_NO_MEDIA' });
    expect(Date.now() - startedAt).toBeLessThan(2000);
    await waitForLog(h, (l) => l.msg === 'call ended' && l.callSid === sids.callSid);
    // A call that keeps sending media is not touched.
    const live = await startTwilioCall(h);
    const stop = feed(live.client, live.sids.streamSid);
    await new Promise((resolve) => setTimeout(resolve, 900));
    expect(live.client.ws.readyState).toBe(WebSocket.OPEN);
    stop();
  });
});

describe('a stuck reader is shed without the heartbeat', () => {
  it('closes 1013, reason slow-reader, when a mark is not acked within STUCK_READER_MS', async () => {
    const script = scriptAgent();
    const h = await startWorker(
      { stuckReaderMs: 400, heartbeatIntervalMs: 600_000, noMediaTimeoutMs: 60_000 },
      script.agent,
    );
    const { client, sids } = await startTwilioCall(h);
    const stop = feed(client, sids.streamSid);
    // The agent speaks (100 ms + a mark); this caller never echoes the mark, like one whose
    // socket stopped being read: the kernel would absorb its audio for a long time.
    client.send(twilio.dtmf(sids.streamSid, '1'));
    await client.next((m) => m.event === 'mark');
    const closed = await client.closed;
    stop();
    expect(closed.code).toBe(1013);
    const ended = await waitForLog(h, (l) => l.msg === 'call ended' && l.callSid === sids.callSid);
    expect(ended).toMatchObject({ reason: 'slow-reader', closeCode: 1013 });
    expect(await h.metric('media_sessions_shed_total')).toBe(1);
    expect(
      await h.metric('media_calls_finished_total', { provider: 'twilio', reason: 'slow-reader' }),
    ).toBe(1);
    expect(h.logs.find((l) => l.code === 'RUNTIME_ERR_SLOW_READER')).toMatchObject({
      msg: 'slow reader, shedding session',
      stuckReaderMs: 400,
    });
  });

  it('leaves a caller that echoes its marks alone', async () => {
    const script = scriptAgent();
    const h = await startWorker({ stuckReaderMs: 400, noMediaTimeoutMs: 60_000 }, script.agent);
    const { client, sids } = await startTwilioCall(h);
    const stop = feed(client, sids.streamSid);
    client.ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { event: string; mark?: { name: string } };
      if (msg.event === 'mark') client.send(twilio.mark(sids.streamSid, msg.mark!.name));
    });
    for (let i = 0; i < 3; i++) {
      client.send(twilio.dtmf(sids.streamSid, '1'));
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    stop();
  });
});

describe('log floods', () => {
  it('counts unknown marks as bad messages and logs a bounded number of lines', async () => {
    const h = await startWorker({ maxBadMessages: 100_000, noMediaTimeoutMs: 60_000 });
    const { client, sids } = await startTwilioCall(h);
    const before = h.logs.length;
    for (let i = 0; i < 3000; i++) client.send(twilio.mark(sids.streamSid, `forged-${i}`));
    await vi_waitFor(
      async () =>
        (await h.metric('media_errors_total', { code: 'MEDIA_ERR_UNKNOWN_MARK' })) === 3000,
    );
    const added = h.logs.slice(before).filter((l) => l.level === 'warn' || l.level === 'error');
    // The first few lines of the flood, then (per interval) one count.
    expect(added.length).toBeLessThanOrEqual(10);
    expect(added[0]).toMatchObject({ msg: 'bad message ignored', code: 'MEDIA_ERR_UNKNOWN_MARK' });
  });

  it('closes a stream whose unknown marks pass MAX_BAD_MESSAGES', async () => {
    const h = await startWorker({ maxBadMessages: 5, noMediaTimeoutMs: 60_000 });
    const { client, sids } = await startTwilioCall(h);
    for (let i = 0; i < 10; i++) client.send(twilio.mark(sids.streamSid, `forged-${i}`));
    expect(await client.closed).toEqual({
      code: 1008,
      reason: 'MEDIA_ERR_TOO_MANY_BAD_MESSAGES',
    });
  });
});

async function vi_waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
