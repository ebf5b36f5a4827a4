import { simulateCall, type SimEvent } from '@callgate/simulator';
import { afterEach, describe, expect, it } from 'vitest';
import {
  entryPoints,
  noise,
  spawnProcess,
  tcpForwarder,
  type SpawnedProcess,
} from '../helpers/index.js';

// The second layer of call continuity, without the proxy: a media worker that reaches its drain
// deadline closes the call with 1012; Twilio (the simulator) requests the TwiML's
// <Connect action> URL and the call continues on another worker.
//
// PUBLIC_URL of both workers is a tiny TCP forwarder to worker B, standing in for the public
// load balancer. The voice webhook and the action URL go through it (so Twilio signatures over
// PUBLIC_URL check out); the first stream is sent straight to worker A.

const spawned: SpawnedProcess[] = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(spawned.splice(0).map((p) => p.kill()));
  await Promise.all(closers.splice(0).map((close) => close()));
});

describe('<Connect action> after a media worker drain (no proxy)', () => {
  it('moves the call to worker B within 3 s and the agent answers again', async () => {
    let portB = 0;
    const router = await tcpForwarder(() => portB);
    closers.push(router.close);
    const routerPort = router.port;
    const env = {
      LOG_LEVEL: 'info',
      PUBLIC_URL: `http://127.0.0.1:${routerPort}`,
      CALL_TOKEN_SECRET: 'e2e-connect-action-secret-0123',
      TWILIO_AUTH_TOKEN: 'e2e-connect-action-auth-token',
      ACCEPT_GRACE_MS: '0',
      DRAIN_TIMEOUT_MS: '300',
      STREAM_RECONNECT_LIMIT: '3',
    };
    const [a, b] = await Promise.all(
      ['media-a', 'media-b'].map((name) =>
        spawnProcess(name, entryPoints.media, { env: { ...env, WORKER_ID: name } }),
      ),
    );
    spawned.push(a!, b!);
    const workerA = a!;
    const workerB = b!;
    portB = workerB.port;

    const sid = 'CA0000000000000000000000000000ac01';
    // Two utterances: one answered by A, one after the move (answered by B).
    const audio = new Int16Array(5700 * 8);
    audio.set(noise(700, 21), 0);
    audio.set(noise(700, 22), 5000 * 8);
    const events: SimEvent[] = [];
    let firstReply!: () => void;
    const repliedOnce = new Promise<void>((resolve) => (firstReply = resolve));
    const call = simulateCall({
      url: `ws://127.0.0.1:${workerA.port}/media-stream/${sid}`,
      callSid: sid,
      twimlUrl: `http://127.0.0.1:${routerPort}/media-stream/twiml`,
      authToken: env.TWILIO_AUTH_TOKEN,
      audio,
      segments: [
        { startMs: 0, endMs: 700 },
        { startMs: 5000, endMs: 5700 },
      ],
      hangupAfterMs: 8000,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'reply-start' && e.utteranceIndex === 0) firstReply();
      },
    });

    await workerA.waitForLog((l) => l.msg === 'call started' && l.callSid === sid);
    await repliedOnce;
    workerA.signal('SIGTERM');

    const summary = await call;
    // A closed the call with 1012 at its deadline and exited cleanly.
    expect(await workerA.exited).toBe(0);
    expect(
      workerA.logs.some(
        (l) => l.msg === 'call ended' && l.callSid === sid && l.reason === 'service-restart',
      ),
    ).toBe(true);
    expect(events.find((e) => e.type === 'stream-end')).toMatchObject({ code: 1012 });

    // The simulator followed the action URL; B offered a new stream and took the call.
    expect(summary).toMatchObject({
      reconnects: 1,
      actionRequests: 1,
      actionResult: 'stream',
      closedBy: 'caller',
      protocolErrors: [],
    });
    expect(summary.streamSids).toHaveLength(2);
    expect(summary.reconnectGapsMs[0]).toBeLessThan(3000);
    const offered = await workerB.waitForLog((l) => l.msg === 'stream action: new stream offered');
    expect(offered).toMatchObject({ callSid: sid, reconnect: 1, stateSigned: true });
    const started = await workerB.waitForLog((l) => l.msg === 'call started' && l.callSid === sid);
    expect(started.streamSid).toBe(summary.streamSids[1]);

    // The agent answered on both workers: once before the move, once after it.
    expect(summary.replies.map((r) => r.firstReplyMs !== null)).toEqual([true, true]);
    const reconnectAt = events.find((e) => e.type === 'reconnect')?.atMs ?? Infinity;
    expect(summary.replies[1]!.firstReplyMs!).toBeGreaterThan(reconnectAt);
    await workerB.waitForLog((l) => l.msg === 'call ended' && l.callSid === sid);
  });
});
