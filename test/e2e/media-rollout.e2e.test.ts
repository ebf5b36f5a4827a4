import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { simulateCall, type CallSummary, type SimEvent } from '@callgate/simulator';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import {
  callSidsFor,
  entryPoints,
  noise,
  spawnProcess,
  type SpawnedProcess,
} from '../helpers/index.js';

// A rolling restart of one media worker behind the real proxy, with the proxy's default health
// checks (a /readyz probe every 2 s, 1 s timeout) and the workers' default ACCEPT_GRACE_MS.
// Between the SIGTERM and the proxy's next probe, the proxy still picks the draining worker for
// new calls: the worker must serve them, not answer 503.

const spawned: SpawnedProcess[] = [];

afterEach(async () => {
  await Promise.all(spawned.splice(0).map((p) => p.kill()));
});

interface Relay {
  port: number;
  /** Resolves when the next health probe that passes through has finished. */
  nextProbe(): Promise<void>;
}

/**
 * A byte relay in front of a worker, so the test sees when the proxy probes it: the SIGTERM is
 * sent right after a probe, which leaves a whole probe interval in which the proxy still thinks
 * the worker is up (without it the window would start anywhere in the proxy's 2 s cycle).
 */
async function relayTo(port: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  let waiters: (() => void)[] = [];
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    for (const [socket, other] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(socket);
      socket.on('error', () => other.destroy());
      socket.on('close', () => {
        sockets.delete(socket);
        other.destroy();
      });
      socket.pipe(other);
    }
    client.once('data', (chunk: Buffer) => {
      if (!chunk.toString('latin1').startsWith('GET /readyz ')) return;
      client.once('close', () => {
        const wake = waiters;
        waiters = [];
        for (const w of wake) w();
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    port: (server.address() as AddressInfo).port,
    nextProbe: () => new Promise<void>((resolve) => waiters.push(resolve)),
  };
}

async function spawn(
  name: string,
  entry: string,
  env: Record<string, string>,
): Promise<SpawnedProcess> {
  const p = await spawnProcess(name, entry, { env: { LOG_LEVEL: 'info', ...env } });
  spawned.push(p);
  return p;
}

let sidCounter = 0;
function callSid(): string {
  sidCounter++;
  return `CA${String(Date.now()).padStart(16, '0')}${String(sidCounter).padStart(16, '0')}`;
}

/** A Twilio call through the proxy; `opened` resolves once the upgrade succeeded. */
function call(
  proxy: SpawnedProcess,
  hangupAfterMs: number,
  sid = callSid(),
): { sid: string; opened: Promise<void>; done: Promise<CallSummary> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  const done = simulateCall({
    url: `ws://127.0.0.1:${proxy.port}/media-stream/${sid}`,
    callSid: sid,
    audio: noise(600, sidCounter),
    segments: [{ startMs: 0, endMs: 600 }],
    hangupAfterMs,
    onEvent: (e: SimEvent) => (e.type === 'open' ? open() : undefined),
  });
  return { sid, opened, done };
}

function expectCompleted(summary: CallSummary): void {
  expect(summary.closedBy).toBe('caller');
  expect(summary.protocolErrors).toEqual([]);
  // The parrot answered: the call was really served, not just accepted.
  expect(summary.replies[0]?.firstReplyMs).toEqual(expect.any(Number));
}

/** The worker whose log says it started the call `sid`. */
function workerOf(workers: SpawnedProcess[], sid: string): Promise<SpawnedProcess> {
  return vi.waitFor(
    () => {
      const worker = workers.find((w) =>
        w.logs.some((l) => l.msg === 'call started' && l.callSid === sid),
      );
      if (!worker) throw new Error(`no worker started ${sid}`);
      return worker;
    },
    { timeout: 10_000, interval: 20 },
  );
}

describe('rolling a media worker behind the proxy', () => {
  it('loses no call between the SIGTERM and the proxy noticing the drain', async () => {
    const workers = await Promise.all(
      ['media-1', 'media-2'].map((name) => spawn(name, entryPoints.media, { WORKER_ID: name })),
    );
    const relays = await Promise.all(workers.map((w) => relayTo(w.port)));
    const proxy = await spawn('proxy', entryPoints.proxy, {
      ADMIN_PORT: '0',
      MEDIA_BACKENDS: relays.map((r) => `127.0.0.1:${r.port}`).join(','),
    });

    // Three live calls, placed by the CallSid hash: two on one worker (B) and one on the other
    // (A), the worker being rolled. A keeps listening while its call goes on.
    const ids = relays.map((r) => `127.0.0.1:${r.port}`);
    const [toA, toB] = [ids[0]!, ids[1]!];
    const sidsA = callSidsFor(toA, ids, 3, 'a');
    const held: ReturnType<typeof call>[] = [];
    for (const sid of [...callSidsFor(toB, ids, 2, 'b'), sidsA[0]!]) {
      const c = call(proxy, 8000, sid);
      await c.opened;
      held.push(c);
    }
    const owners = await Promise.all(held.map((c) => workerOf(workers, c.sid)));
    const [a, b] = [workers[0]!, workers[1]!];
    expect(owners.filter((o) => o === a)).toHaveLength(1);
    expect(owners.filter((o) => o === b)).toHaveLength(2);

    // Right after a probe found A ready, so the proxy keeps it `up` for a whole interval.
    await relays[workers.indexOf(a)]!.nextProbe();
    a.signal('SIGTERM');
    await a.waitForLog((l) => l.msg === 'stream server draining');
    // The proxy has not probed A since: a CallSid that hashes to A goes to A.
    // Without the accept grace, A would answer it with 503 (the proxy then retries it on B).
    const first = call(proxy, 2500, sidsA[1]);
    await Promise.race([first.opened, first.done]);
    const second = call(proxy, 2500);
    const [firstDone, secondDone] = await Promise.all([first.done, second.done]);
    expectCompleted(firstDone);
    expectCompleted(secondDone);
    const firstWorker = await workerOf(workers, first.sid);
    expect(firstWorker).toBe(a);

    // Once A stops accepting, the proxy has long marked it draining: calls go to B.
    await a.waitForLog((l) => l.msg === 'accept grace over, refusing new sessions');
    // Even a CallSid that hashes to A: A is draining, no longer a candidate.
    const late = call(proxy, 1500, sidsA[2]);
    expectCompleted(await late.done);
    expect(await workerOf(workers, late.sid)).toBe(b);

    // A finished its calls, the one it accepted during the grace included, then exited cleanly.
    for (const c of held) expectCompleted(await c.done);
    expect(await a.exited).toBe(0);
    expect(a.logs.find((l) => l.msg === 'call ended' && l.callSid === first.sid)).toMatchObject({
      reason: 'caller-hangup',
    });
    expect(a.logs.some((l) => l.msg === 'drained')).toBe(true);
    expect(a.logs.some((l) => l.code === 'RUNTIME_ERR_DRAINING')).toBe(false);
    expect(
      proxy.logs.some((l) => l.msg === 'upgrade' && l.code === 'PROXY_ERR_UPSTREAM_REJECTED'),
    ).toBe(false);

    // The worker's lines join the proxy's on tunnelId, and every line says which process it is.
    const upgrade = proxy.logs.find(
      (l) => l.msg === 'upgrade' && l.path === `/media-stream/${first.sid}`,
    );
    expect(upgrade?.tunnelId).toEqual(expect.any(String));
    const started = a.logs.find((l) => l.msg === 'call started' && l.callSid === first.sid);
    expect(started?.tunnelId).toBe(upgrade?.tunnelId);
    expect(a.logs.filter((l) => l.service !== 'media-worker')).toEqual([]);
    expect(a.logs.filter((l) => l.workerId !== 'media-1' && l.workerId !== 'media-2')).toEqual([]);
  });
});
