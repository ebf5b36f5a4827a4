import { simulateCall, type SimEvent } from '@callgate/simulator';
import { afterEach, describe, expect, it } from 'vitest';
import {
  entryPoints,
  noise,
  spawnProcess,
  tcpForwarder,
  type SpawnedProcess,
} from '../helpers/index.js';

// The second layer of call continuity: a proxy that must go (a restart, a node drained) closes
// each media call toward Twilio with a close frame (1012) at its drain deadline; Twilio requests
// the TwiML's <Connect action> URL through the public address, which now reaches another proxy
// replica, and the voice webhook hands the call a fresh stream.
//
// The public address (PUBLIC_URL) is a TCP forwarder: to proxy 1 first, to proxy 2 once proxy 1
// is told to stop.

const spawned: SpawnedProcess[] = [];
const closers: Array<() => Promise<void>> = [];

afterEach(async () => {
  await Promise.all(spawned.splice(0).map((p) => p.kill()));
  await Promise.all(closers.splice(0).map((close) => close()));
});

describe('proxy restart under a live call', () => {
  it('brings the call back through another proxy within 3 s, and the agent answers again', async () => {
    let publicTarget = 0;
    const router = await tcpForwarder(() => publicTarget);
    closers.push(router.close);
    const secret = 'e2e-proxy-restart-secret-0123456';
    const authToken = 'e2e-proxy-restart-auth-token';
    const workerEnv = {
      LOG_LEVEL: 'info',
      PUBLIC_URL: `http://127.0.0.1:${router.port}`,
      CALL_TOKEN_SECRET: secret,
      TWILIO_AUTH_TOKEN: authToken,
      STREAM_RECONNECT_LIMIT: '3',
    };
    const workers = await Promise.all(
      ['media-a', 'media-b'].map((name) =>
        spawnProcess(name, entryPoints.media, { env: { ...workerEnv, WORKER_ID: name } }),
      ),
    );
    spawned.push(...workers);
    const proxyEnv = {
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      ADMIN_PORT: '0',
      MEDIA_BACKENDS: workers.map((w) => `127.0.0.1:${w.port}`).join(','),
      CALL_TOKEN_SECRET: secret,
      DRAIN_TIMEOUT_MS: '300',
    };
    const [first, second] = await Promise.all(
      ['proxy-1', 'proxy-2'].map((name) =>
        spawnProcess(name, entryPoints.proxy, { env: proxyEnv }),
      ),
    );
    spawned.push(first!, second!);
    const proxy1 = first!;
    const proxy2 = second!;
    publicTarget = proxy1.port;

    const sid = 'CA0000000000000000000000000000e5a1';
    const audio = new Int16Array(5700 * 8);
    audio.set(noise(700, 31), 0);
    audio.set(noise(700, 32), 5000 * 8);
    const events: SimEvent[] = [];
    let firstReply!: () => void;
    const repliedOnce = new Promise<void>((resolve) => (firstReply = resolve));
    const call = simulateCall({
      url: `ws://127.0.0.1:${router.port}/media-stream/${sid}`,
      callSid: sid,
      twimlUrl: `http://127.0.0.1:${router.port}/media-stream/twiml`,
      authToken,
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

    await repliedOnce;
    publicTarget = proxy2.port;
    proxy1.signal('SIGTERM');
    const summary = await call;

    // Proxy 1 closed the call with 1012 at its deadline (a close frame, not a cut) and exited.
    expect(events.find((e) => e.type === 'stream-end')).toMatchObject({ code: 1012 });
    await proxy1.exited;
    expect(
      proxy1.logs.some(
        (l) =>
          l.msg === 'tunnel closed' && l.code === 'PROXY_ERR_DRAIN_FORCED' && l.pool === 'media',
      ),
    ).toBe(true);
    // Twilio (the simulator) followed <Connect action> through proxy 2 and got a new stream.
    expect(summary).toMatchObject({
      reconnects: 1,
      actionRequests: 1,
      actionResult: 'stream',
      closedBy: 'caller',
      protocolErrors: [],
    });
    expect(summary.streamSids).toHaveLength(2);
    expect(summary.reconnectGapsMs[0]).toBeLessThan(3000);
    console.log(`proxy restart: call back after ${Math.round(summary.reconnectGapsMs[0]!)} ms`);
    await proxy2.waitForLog((l) => l.msg === 'upgrade' && l.route === 'media-stream');
    // The agent answered before the restart and again after it.
    expect(summary.replies.map((r) => r.firstReplyMs !== null)).toEqual([true, true]);
    const reconnectAt = events.find((e) => e.type === 'reconnect')?.atMs ?? Infinity;
    expect(summary.replies[1]!.firstReplyMs!).toBeGreaterThan(reconnectAt);
  });
});
