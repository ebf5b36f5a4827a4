import { simulateCall, type CallSummary, type SimEvent } from '@callgate/simulator';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  entryPoints,
  noise,
  spawnProcess,
  type LogLine,
  type SpawnedProcess,
} from '../helpers/index.js';

// Calls outlive their media worker: the proxy moves a live call to another worker when its
// worker dies (no close frame), closes it with 1012 at its drain deadline, hangs (health checks
// mark it down) or is rolled. Real processes: the built proxy, three media workers with the echo
// agent (every caller frame comes straight back, so a caller hears a steady 20 ms stream and any
// hole in it is the move), and simulated Twilio callers that validate every message as Twilio
// does (valid outbound JSON, media/mark/clear only, the call's own streamSid).

const CALL_TOKEN_SECRET = 'e2e-continuity-secret-0123456789abcdef';
/** Longest hole a caller may hear when its call moves. */
const MAX_GAP_MS = 1000;

const spawned: SpawnedProcess[] = [];
const callers: Caller[] = [];

afterEach(async () => {
  // Callers first (a hang-up waits for the close handshake), then every process.
  for (const c of callers) c.hangup();
  await Promise.allSettled(callers.splice(0).map((c) => c.done));
  await Promise.all(spawned.splice(0).map((p) => p.kill()));
});

function startWorker(name: string, env: Record<string, string> = {}): Promise<SpawnedProcess> {
  return track(
    spawnProcess(name, entryPoints.media, {
      env: { LOG_LEVEL: 'info', WORKER_ID: name, AGENT: 'echo', CALL_TOKEN_SECRET, ...env },
    }),
  );
}

/**
 * The proxy in front of `workers`, with fast health checks: a probe every 200 ms, two failures
 * make a worker `down`, two successes `up` again (a replacement is picked up within ~0.5 s).
 * The probe timeout is 1 s, so a loaded 2-core machine does not declare a live worker down (which
 * would move its calls, correctly, but not where the test expects them); the hang case sets 300 ms.
 */
function startProxy(
  workers: SpawnedProcess[],
  env: Record<string, string> = {},
): Promise<SpawnedProcess> {
  return track(
    spawnProcess('proxy', entryPoints.proxy, {
      env: {
        LOG_LEVEL: 'info',
        ADMIN_PORT: '0',
        MEDIA_BACKENDS: workers.map(backendId).join(','),
        CALL_TOKEN_SECRET,
        HEALTH_CHECK_INTERVAL_MS: '200',
        HEALTH_CHECK_TIMEOUT_MS: '1000',
        HEALTH_CHECK_UNHEALTHY_THRESHOLD: '2',
        HEALTH_CHECK_HEALTHY_THRESHOLD: '2',
        ...env,
      },
    }),
  );
}

async function track(p: Promise<SpawnedProcess>): Promise<SpawnedProcess> {
  const proc = await p;
  spawned.push(proc);
  return proc;
}

function backendId(worker: SpawnedProcess): string {
  return `127.0.0.1:${worker.port}`;
}

interface Caller {
  sid: string;
  /** Resolves once the caller's socket is closed, with the simulator's summary. */
  done: Promise<CallSummary>;
  /** Media messages received so far. */
  readonly media: number;
  /** Longest time between two media messages received (wall clock, ms). */
  readonly maxGapMs: number;
  /** Resolves once `n` more media messages than now have arrived. */
  moreMedia(n: number, timeoutMs?: number): Promise<void>;
  hangup(): void;
}

let sidCounter = 0;

/**
 * A Twilio call through the proxy, token from the voice webhook (through the proxy too), noise
 * the whole time (the echo agent sends it back frame by frame). It lasts until `hangup()`.
 */
function placeCall(proxy: SpawnedProcess): Caller {
  sidCounter++;
  const sid = `CA${String(Date.now()).padStart(16, '0')}${String(sidCounter).padStart(16, '0')}`;
  const abort = new AbortController();
  let media = 0;
  let last: number | undefined;
  let maxGapMs = 0;
  let waiters: { at: number; resolve: () => void }[] = [];
  const onEvent = (e: SimEvent): void => {
    if (e.type !== 'media') return;
    const now = performance.now();
    if (last !== undefined) maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    media++;
    const due = waiters.filter((w) => media >= w.at);
    waiters = waiters.filter((w) => media < w.at);
    for (const w of due) w.resolve();
  };
  const done = simulateCall({
    url: `ws://127.0.0.1:${proxy.port}/media-stream/${sid}`,
    twimlUrl: `http://127.0.0.1:${proxy.port}/media-stream/twiml`,
    callSid: sid,
    // Longer than any case here; the test hangs up first.
    audio: noise(30_000, sidCounter),
    hangupAfterMs: 30_000,
    signal: abort.signal,
    onEvent,
  });
  const caller: Caller = {
    sid,
    done,
    get media() {
      return media;
    },
    get maxGapMs() {
      return maxGapMs;
    },
    moreMedia(n, timeoutMs = 10_000) {
      const at = media + n;
      return new Promise<void>((resolve, reject) => {
        const settle = (err?: Error): void => {
          clearTimeout(timer);
          waiters = waiters.filter((w) => w !== waiter);
          if (err) reject(err);
          else resolve();
        };
        const waiter = { at, resolve: () => settle() };
        const timer = setTimeout(
          () => settle(new Error(`${sid}: ${media}/${at} media messages after ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push(waiter);
        void done.then(
          () => settle(new Error(`${sid}: the call ended while waiting for media`)),
          (err: unknown) => settle(err as Error),
        );
      });
    },
    hangup: () => abort.abort(),
  };
  callers.push(caller);
  return caller;
}

/** Places `n` calls and waits until every one has heard 1.2 s of echo (a mark included). */
async function placeCalls(proxy: SpawnedProcess, n: number): Promise<Caller[]> {
  const placed = Array.from({ length: n }, () => placeCall(proxy));
  await Promise.all(placed.map((c) => c.moreMedia(60)));
  return placed;
}

const startedLine = (sid: string) => (l: LogLine) => l.msg === 'call started' && l.callSid === sid;
const endedLine = (sid: string) => (l: LogLine) => l.msg === 'call ended' && l.callSid === sid;
const movedLine = (sid: string) => (l: LogLine) =>
  l.msg === 'call moved' && l.path === `/media-stream/${sid}`;

/** The calls each worker has now (its `call started` line, no `call ended` yet). */
async function callsOn(
  worker: SpawnedProcess,
  all: SpawnedProcess[],
  calls: Caller[],
): Promise<Caller[]> {
  // Log lines travel through pipes: wait until every call's current worker has said so.
  await vi.waitFor(
    () => {
      for (const c of calls) {
        if (!all.some((w) => w.logs.some(startedLine(c.sid)) && !w.logs.some(endedLine(c.sid))))
          throw new Error(`no worker has ${c.sid}`);
      }
    },
    { timeout: 10_000, interval: 20 },
  );
  return calls.filter(
    (c) => worker.logs.some(startedLine(c.sid)) && !worker.logs.some(endedLine(c.sid)),
  );
}

/** The worker with the most calls now, and its calls (least-tunnels spreads them evenly). */
async function busiest(
  workers: SpawnedProcess[],
  calls: Caller[],
): Promise<{ victim: SpawnedProcess; moving: Caller[] }> {
  const counts = await Promise.all(workers.map((w) => callsOn(w, workers, calls)));
  const i = counts.reduce((best, c, j) => (c.length > counts[best]!.length ? j : best), 0);
  return { victim: workers[i]!, moving: counts[i]! };
}

/** The proxy's view of its backends so far, for a failure message. */
function backendHistory(proxy: SpawnedProcess): string {
  return proxy.logs
    .filter((l) => /^backend state$|^moving call/.test(String(l.msg)))
    .map((l) => `${String(l.msg)} ${String(l.backend)} ${String(l.to ?? l.reason)}`)
    .join('\n');
}

/** Waits for the proxy's `call moved` line of each call, after `fromIndex` in its log. */
async function waitMoved(
  proxy: SpawnedProcess,
  calls: Caller[],
  reason: string,
  fromIndex = 0,
): Promise<void> {
  await Promise.all(
    calls.map((c) =>
      proxy.waitForLog(
        (l) => movedLine(c.sid)(l) && l.reason === reason && proxy.logs.indexOf(l) >= fromIndex,
        10_000,
      ),
    ),
  );
}

/** Hangs every call up and checks what each caller got. */
async function hangUpAndCheck(all: Caller[], maxGapMs = MAX_GAP_MS): Promise<void> {
  for (const c of all) c.hangup();
  const summaries = await Promise.all(all.map((c) => c.done));
  all.forEach((c, i) => {
    const s = summaries[i]!;
    // The caller hung up: no socket was closed under it.
    expect(s.closedBy, c.sid).toBe('caller');
    expect(s.closeCode, c.sid).toBe(1000);
    // Every message parsed as Twilio outbound (media/mark/clear) for this call's streamSid.
    expect(s.protocolErrors, c.sid).toEqual([]);
    // One agent at a time: the echo agent sends one message per caller frame, so two agents
    // on one call would send more than the caller did.
    expect(s.audioMessagesReceived, c.sid).toBeLessThanOrEqual(s.audioFramesSent);
    expect(c.maxGapMs, c.sid).toBeLessThanOrEqual(maxGapMs);
    // The echo agent closes an utterance (a mark) every second of audio: marks went both ways.
    expect(s.marksReceived, c.sid).toBeGreaterThan(0);
    expect(s.marksAcked, c.sid).toBeGreaterThan(0);
  });
}

/**
 * Never two agents on one call: each worker process started each call at most once, the call
 * started once more per move (the proxy's `call moved` lines), every move left a worker that
 * no longer has the call (dead, or its `call ended` line), and no move went back where it was.
 */
async function expectOneAgentAtATime(
  proxy: SpawnedProcess,
  workers: SpawnedProcess[],
  all: Caller[],
): Promise<void> {
  for (const c of all) {
    const starts = workers.map((w) => w.logs.filter(startedLine(c.sid)).length);
    for (const n of starts) expect(n, c.sid).toBeLessThanOrEqual(1);
    const moves = proxy.logs.filter(movedLine(c.sid));
    expect(
      starts.reduce((a, b) => a + b, 0),
      c.sid,
    ).toBe(1 + moves.length);
    for (const m of moves) expect(m.to, c.sid).not.toBe(m.from);
    // Every worker the call was on has let it go: dead (SIGKILL, or exited after its drain), or
    // its `call ended` line (the woken SIGSTOP worker; after the hang-up, the last one).
    const holders = workers.filter((w) => w.logs.some(startedLine(c.sid)));
    const gone = await Promise.all(
      holders.map((w) =>
        w.child.exitCode !== null || w.child.signalCode !== null
          ? true
          : w.waitForLog(endedLine(c.sid), 5000).then(
              () => true,
              () => false,
            ),
      ),
    );
    expect(gone.every(Boolean), c.sid).toBe(true);
  }
}

/** One console line per case: the gaps the callers heard, and the proxy's own measure. */
function report(label: string, proxy: SpawnedProcess, moved: Caller[], all: Caller[]): void {
  const stats = (xs: number[]): string => {
    const s = [...xs].sort((a, b) => a - b);
    const median = s[Math.floor((s.length - 1) / 2)] ?? NaN;
    return `median ${Math.round(median)} ms, max ${Math.round(s.at(-1) ?? NaN)} ms`;
  };
  const moves = proxy.logs.filter((l) => l.msg === 'call moved');
  console.log(
    `[call-continuity] ${label}: ${moved.length} calls moved (${moves.length} moves); ` +
      `longest gap per moved caller: ${stats(moved.map((c) => c.maxGapMs))}; ` +
      `all ${all.length} callers: ${stats(all.map((c) => c.maxGapMs))}; ` +
      `proxy gapMs: ${stats(moves.map((l) => Number(l.gapMs)))}`,
  );
}

describe('calls outlive their media worker', () => {
  it('SIGKILL: a dead worker’s calls continue on the others', async () => {
    const workers = await Promise.all(['media-1', 'media-2', 'media-3'].map((n) => startWorker(n)));
    const proxy = await startProxy(workers);
    const calls = await placeCalls(proxy, 20);
    const { victim, moving } = await busiest(workers, calls);
    expect(moving.length, backendHistory(proxy)).toBeGreaterThan(0);

    victim.signal('SIGKILL');
    await waitMoved(proxy, moving, 'backend-closed');
    // A second of audio (and a mark) from the new worker, for every call.
    await Promise.all(calls.map((c) => c.moreMedia(50)));

    await hangUpAndCheck(calls);
    await expectOneAgentAtATime(proxy, workers, calls);
    report('SIGKILL', proxy, moving, calls);
  });

  it('drain past its deadline: calls closed with 1012 move instead of ending', async () => {
    const workers = await Promise.all(
      ['media-1', 'media-2', 'media-3'].map((n) => startWorker(n, { DRAIN_TIMEOUT_MS: '1500' })),
    );
    const proxy = await startProxy(workers);
    const calls = await placeCalls(proxy, 20);
    const { victim, moving } = await busiest(workers, calls);
    expect(moving.length, backendHistory(proxy)).toBeGreaterThan(0);

    victim.signal('SIGTERM');
    await waitMoved(proxy, moving, 'service-restart');
    // Every call it had was still going at its deadline; it closed them with 1012, exited 0.
    expect(await victim.exited).toBe(0);
    for (const c of moving) {
      expect(victim.logs.find(endedLine(c.sid)), c.sid).toMatchObject({
        reason: 'service-restart',
        closeCode: 1012,
      });
    }
    await Promise.all(calls.map((c) => c.moreMedia(50)));

    await hangUpAndCheck(calls);
    await expectOneAgentAtATime(proxy, workers, calls);
    report('drain deadline (1012)', proxy, moving, calls);
  });

  it('SIGSTOP: a hung worker’s calls move once health checks mark it down; awake, it never talks to them again', async () => {
    const workers = await Promise.all(['media-1', 'media-2', 'media-3'].map((n) => startWorker(n)));
    // A hang is found by health checks alone: probes time out after 300 ms, two in a row
    // make the worker `down`.
    const proxy = await startProxy(workers, { HEALTH_CHECK_TIMEOUT_MS: '300' });
    const calls = await placeCalls(proxy, 20);
    const { victim, moving } = await busiest(workers, calls);
    expect(moving.length, backendHistory(proxy)).toBeGreaterThan(0);

    victim.signal('SIGSTOP');
    await waitMoved(proxy, moving, 'backend-down');
    await Promise.all(calls.map((c) => c.moreMedia(50)));

    // Awake again: it finds the sockets of its calls destroyed and ends them, starting nothing.
    const mediaBefore = calls.map((c) => c.media);
    victim.signal('SIGCONT');
    for (const c of moving) {
      expect(await victim.waitForLog(endedLine(c.sid), 10_000), c.sid).toMatchObject({
        reason: 'caller-disconnected',
      });
    }
    await Promise.all(calls.map((c) => c.moreMedia(50)));
    for (const [i, c] of calls.entries()) expect(c.media).toBeGreaterThan(mediaBefore[i]!);

    // The gap a hang costs is the health checks' detection time, not the move's: two failed
    // probes, rounds 200 ms apart that each wait out the 300 ms timeout, so up to
    // 2 × (200 + 300) = 1 s after the last good probe, plus the move itself. Bound: 1.5 s.
    await hangUpAndCheck(calls, 1500);
    await expectOneAgentAtATime(proxy, workers, calls);
    for (const c of moving) expect(victim.logs.filter(startedLine(c.sid))).toHaveLength(1);
    report('SIGSTOP (health checks)', proxy, moving, calls);
  });

  it('rolling deploy of all three workers under 30 live calls cuts none', async () => {
    const env = { DRAIN_TIMEOUT_MS: '1500' };
    const first = await Promise.all(
      ['media-1', 'media-2', 'media-3'].map((n) => startWorker(n, env)),
    );
    const workers = [...first];
    const proxy = await startProxy(first);
    const calls = await placeCalls(proxy, 30);
    const moved = new Set<Caller>();

    // One worker after the other, like a Deployment: SIGTERM, its calls move at its drain
    // deadline, it exits, its replacement starts on the same address (the proxy's static
    // MEDIA_BACKENDS list) and the next worker goes only once the proxy sees it up.
    for (const [i, old] of first.entries()) {
      const moving = await callsOn(old, workers, calls);
      expect(moving.length, `${old.name}\n${backendHistory(proxy)}`).toBeGreaterThan(0);
      const mark = proxy.logs.length;
      old.signal('SIGTERM');
      await waitMoved(proxy, moving, 'service-restart', mark);
      for (const c of moving) moved.add(c);
      expect(await old.exited).toBe(0);

      const upMark = proxy.logs.length;
      const replacement = await startWorker(`media-${i + 1}b`, { ...env, PORT: String(old.port) });
      workers.push(replacement);
      await proxy.waitForLog(
        (l) =>
          l.msg === 'backend state' &&
          l.backend === backendId(replacement) &&
          l.to === 'up' &&
          proxy.logs.indexOf(l) >= upMark,
        10_000,
      );
    }
    await Promise.all(calls.map((c) => c.moreMedia(50)));

    await hangUpAndCheck(calls);
    await expectOneAgentAtATime(proxy, workers, calls);
    // Every call was on a rolled worker at some point: all 30 moved at least once.
    expect(moved.size).toBe(30);
    report('rolling deploy', proxy, [...moved], calls);
  });
});
