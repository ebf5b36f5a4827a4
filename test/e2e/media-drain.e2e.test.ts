import { simulateCall, type SimEvent } from '@callgate/simulator';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import {
  callSidsFor,
  entryPoints,
  noise,
  spawnProcess,
  type SpawnedProcess,
} from '../helpers/index.js';

// SIGTERM to a media worker in the middle of a call, through the real proxy.

const spawned: SpawnedProcess[] = [];

afterEach(async () => {
  await Promise.all(spawned.splice(0).map((p) => p.kill()));
});

async function spawn(
  name: string,
  entry: string,
  env: Record<string, string>,
): Promise<SpawnedProcess> {
  const p = await spawnProcess(name, entry, { env: { LOG_LEVEL: 'info', ...env } });
  spawned.push(p);
  return p;
}

async function stack(
  workerEnv: Record<string, string> = {},
  proxyEnv: Record<string, string> = {},
): Promise<{ worker: SpawnedProcess; proxy: SpawnedProcess }> {
  const worker = await spawn('media', entryPoints.media, workerEnv);
  const proxy = await spawn('proxy', entryPoints.proxy, {
    ADMIN_PORT: '0',
    MEDIA_BACKENDS: `127.0.0.1:${worker.port}`,
    ...proxyEnv,
  });
  return { worker, proxy };
}

/** Status of a WebSocket upgrade sent straight to `port` (101 when accepted). */
function upgradeStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    ws.on('error', () => undefined);
    ws.once('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.once('unexpected-response', (_req, res) => {
      res.resume();
      ws.terminate();
      resolve(res.statusCode ?? 0);
    });
    ws.once('error', reject);
  });
}

/** An `onEvent` for the simulator and a promise of its 'open' event (the call is up). */
function watchOpen(): { onEvent: (e: SimEvent) => void; opened: Promise<void> } {
  let resolve!: () => void;
  const opened = new Promise<void>((r) => {
    resolve = r;
  });
  return { onEvent: (e) => (e.type === 'open' ? resolve() : undefined), opened };
}

describe('a draining media worker', () => {
  it('finishes its live call, refuses new ones with 503, then exits 0', async () => {
    // No accept grace: new upgrades are refused from the SIGTERM on (media-rollout.e2e covers
    // the grace).
    const { worker, proxy } = await stack({ ACCEPT_GRACE_MS: '0' });
    const { onEvent, opened } = watchOpen();
    const sid = 'CA0000000000000000000000000000d001';
    const call = simulateCall({
      url: `ws://127.0.0.1:${proxy.port}/media-stream/${sid}`,
      callSid: sid,
      audio: noise(700, 9),
      segments: [{ startMs: 0, endMs: 700 }],
      hangupAfterMs: 3500,
      onEvent,
    });
    await opened;
    await worker.waitForLog((l) => l.msg === 'call started' && l.callSid === sid);
    worker.signal('SIGTERM');
    await worker.waitForLog((l) => l.msg === 'draining');

    const ready = await fetch(`http://127.0.0.1:${worker.port}/readyz`);
    expect(ready.status).toBe(503);
    expect(
      await upgradeStatus(worker.port, '/media-stream/CA0000000000000000000000000000d002'),
    ).toBe(503);

    const summary = await call;
    // The call went on to its normal end, and the parrot still answered during the drain.
    expect(summary.closedBy).toBe('caller');
    expect(summary.replies[0]?.firstReplyMs).toEqual(expect.any(Number));
    expect(await worker.exited).toBe(0);
    expect(worker.logs.some((l) => l.msg === 'call ended' && l.reason === 'caller-hangup')).toBe(
      true,
    );
  });

  it('closes a call still going at DRAIN_TIMEOUT_MS with 1012, then exits 0', async () => {
    // A plain relay, so the worker's 1012 reaches the caller: with call continuity (the default)
    // the proxy would swallow it and move the call (call-continuity.e2e.test.ts), and with no
    // other worker close it with 1011 after CALL_MOVE_TIMEOUT_MS.
    const { worker, proxy } = await stack(
      { DRAIN_TIMEOUT_MS: '800' },
      { CALL_CONTINUITY: 'false' },
    );
    const { onEvent, opened } = watchOpen();
    const sid = 'CA0000000000000000000000000000d003';
    const call = simulateCall({
      url: `ws://127.0.0.1:${proxy.port}/media-stream/${sid}`,
      callSid: sid,
      hangupAfterMs: 20_000,
      onEvent,
    });
    await opened;
    await worker.waitForLog((l) => l.msg === 'call started' && l.callSid === sid);
    worker.signal('SIGTERM');
    const summary = await call;
    expect(summary.closeCode).toBe(1012);
    expect(summary.closedBy).toBe('server');
    expect(summary.durationMs).toBeLessThan(10_000);
    expect(await worker.exited).toBe(0);
    expect(worker.logs.some((l) => l.msg === 'call ended' && l.reason === 'service-restart')).toBe(
      true,
    );
  });

  it('refuses a new call, which the proxy gives to another worker, unnoticed by the caller', async () => {
    // Two workers with no accept grace, and a proxy that does not probe again during the test:
    // it learns that the drained worker refuses only from that worker's 503.
    const workers = await Promise.all(
      ['media-a', 'media-b'].map((name) =>
        spawn(name, entryPoints.media, { WORKER_ID: name, ACCEPT_GRACE_MS: '0' }),
      ),
    );
    const proxy = await spawn('proxy', entryPoints.proxy, {
      ADMIN_PORT: '0',
      MEDIA_BACKENDS: workers.map((w) => `127.0.0.1:${w.port}`).join(','),
      HEALTH_CHECK_INTERVAL_MS: '600000',
    });
    const ownerOf = (sid: string): SpawnedProcess | undefined =>
      workers.find((w) => w.logs.some((l) => l.msg === 'call started' && l.callSid === sid));
    // Three live calls, placed by the CallSid hash: two on one worker, one on the other (the one
    // drained next), and a fourth CallSid that hashes to the drained worker.
    const ids = workers.map((w) => `127.0.0.1:${w.port}`);
    const [toDrained, toOther] = [ids[0]!, ids[1]!];
    const drainedSids = callSidsFor(toDrained, ids, 2, 'd');
    const heldSids = [...callSidsFor(toOther, ids, 2, 'e'), drainedSids[0]!];
    const held = heldSids.map((sid) => {
      const { onEvent, opened } = watchOpen();
      const done = simulateCall({
        url: `ws://127.0.0.1:${proxy.port}/media-stream/${sid}`,
        callSid: sid,
        hangupAfterMs: 6000,
        onEvent,
      });
      return { sid, opened, done };
    });
    for (const c of held) await c.opened;
    for (const c of held) {
      await Promise.race(
        workers.map((w) => w.waitForLog((l) => l.msg === 'call started' && l.callSid === c.sid)),
      );
    }
    const owners = held.map((c) => ownerOf(c.sid));
    const drained = workers.find((w) => owners.filter((o) => o === w).length === 1)!;
    const other = workers.find((w) => w !== drained)!;
    expect(drained).toBe(workers[0]);
    drained.signal('SIGTERM');
    await drained.waitForLog((l) => l.msg === 'draining');

    const sid = drainedSids[1]!;
    const summary = await simulateCall({
      url: `ws://127.0.0.1:${proxy.port}/media-stream/${sid}`,
      callSid: sid,
      audio: noise(700, 10),
      segments: [{ startMs: 0, endMs: 700 }],
      hangupAfterMs: 2500,
    });
    // The caller had an ordinary call, with the worker that was not draining.
    expect(summary.closedBy).toBe('caller');
    expect(summary.closeCode).toBe(1000);
    expect(summary.replies[0]?.firstReplyMs).toEqual(expect.any(Number));
    expect(ownerOf(sid)).toBe(other);
    // The drained worker did refuse it, and the proxy tried the next one.
    expect(drained.logs.some((l) => l.code === 'RUNTIME_ERR_DRAINING')).toBe(true);
    expect(proxy.logs.find((l) => l.code === 'PROXY_ERR_BACKEND_BUSY')).toMatchObject({
      msg: 'backend answered 503, trying the next one',
      backend: `127.0.0.1:${drained.port}`,
      markedFull: true,
    });
    expect(
      proxy.logs.find((l) => l.msg === 'upgrade' && l.path === `/media-stream/${sid}`),
    ).toMatchObject({
      outcome: 'ok',
      status: 101,
      backend: `127.0.0.1:${other.port}`,
    });
    for (const c of held) expect((await c.done).closedBy).toBe('caller');
    expect(await drained.exited).toBe(0);
  });
});
