import { simulateCall, type SimEvent } from '@callgate/simulator';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { entryPoints, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

// SIGTERM to a media worker in the middle of a call, through the real proxy.

const RATE = 8000;
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
): Promise<{ worker: SpawnedProcess; proxy: SpawnedProcess }> {
  const worker = await spawn('media', entryPoints.media, workerEnv);
  const proxy = await spawn('proxy', entryPoints.proxy, {
    ADMIN_PORT: '0',
    MEDIA_BACKENDS: `127.0.0.1:${worker.port}`,
  });
  return { worker, proxy };
}

function noise(ms: number, seed: number): Int16Array {
  const out = new Int16Array((ms * RATE) / 1000);
  let x = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = Math.round((x / 2 ** 32 - 0.5) * 0.6 * 32767);
  }
  return out;
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
    expect(worker.logs.some((l) => l.msg === 'call ended' && l.outcome === 'stop')).toBe(true);
  });

  it('closes a call still going at DRAIN_TIMEOUT_MS with 1012, then exits 0', async () => {
    const { worker, proxy } = await stack({ DRAIN_TIMEOUT_MS: '800' });
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
    expect(worker.logs.some((l) => l.msg === 'call ended' && l.outcome === 'service-restart')).toBe(
      true,
    );
  });
});
