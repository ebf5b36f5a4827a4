#!/usr/bin/env node
// Soak: some hundreds of short calls through the built proxy and two media workers, while an
// attacker on 127.0.0.2 keeps squatting sockets that never start and flooding a call with forged
// marks. After a settle, every process's memory and open file descriptors must be back to where
// they were after the warm-up. Not part of `npm test` (it takes a minute or two); run it with
//
//   npm run soak                                  # 300 calls, 20 at a time
//   SOAK_CALLS=900 SOAK_CONCURRENCY=30 npm run soak
//
// A short warm-up, then two halves of the calls with the attacker running, each followed by a
// settle. It prints one JSON line per process (RSS after each half, RSS growth per call over the
// second half, fds idle and at the end) and exits 1 when a call failed, fds did not come back to
// the idle count (more than 4 extra), or RSS grew more than 4 KiB per call in the second half
// beyond 16 MiB of slack. Linux only (it reads /proc/<pid>/fd).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { simulateCall } from '@callgate/simulator';
import { WebSocket } from 'ws';

const CALLS = Number(process.env.SOAK_CALLS ?? 300);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 20);
const WARMUP = Math.min(40, Math.floor(CALLS / 5));
const SETTLE_MS = Number(process.env.SOAK_SETTLE_MS ?? 5000);
const root = fileURLToPath(new URL('../../', import.meta.url));

/** Starts a built process with PORT=0 and resolves with its pid and `listening` line. */
async function start(name, entry, env) {
  // The proxy and the media workers run with the flag they have in production (package.json).
  const flags = entry.startsWith('workers/test-agent/') ? [] : ['--max-semi-space-size=1'];
  const child = spawn(process.execPath, ['--expose-gc', ...flags, entry], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const listening = await new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code}`)));
    lines.on('line', (text) => {
      try {
        const line = JSON.parse(text);
        if (line.msg === 'listening') resolve(line);
      } catch {
        // not JSON
      }
    });
  });
  // Drain stdout from here on.
  lines.on('line', () => undefined);
  return { name, child, port: Number(listening.port) };
}

function sample(p) {
  const status = readFileSync(`/proc/${p.child.pid}/status`, 'utf8');
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return { rss: rssKb * 1024, fds: readdirSync(`/proc/${p.child.pid}/fd`).length };
}

let sidCounter = 0;
function callSid() {
  sidCounter++;
  return `CA${String(Date.now()).padStart(16, '0')}${String(sidCounter).padStart(16, '0')}`;
}

/** 600 ms of noise: enough for the agent to answer. */
function utterance() {
  const out = new Int16Array(4800);
  for (let i = 0; i < out.length; i++) out[i] = Math.round((Math.random() * 2 - 1) * 8000);
  return out;
}

async function runCalls(proxy, count) {
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      const sid = callSid();
      try {
        const s = await simulateCall({
          url: `ws://127.0.0.1:${proxy.port}/media-stream/${sid}`,
          twimlUrl: `http://127.0.0.1:${proxy.port}/media-stream/twiml`,
          callSid: sid,
          audio: utterance(),
          hangupAfterMs: 1200,
        });
        if (s.closedBy !== 'caller') {
          failed++;
          console.error(
            JSON.stringify({ failedCall: sid, closeCode: s.closeCode, closeReason: s.closeReason }),
          );
        }
      } catch (err) {
        failed++;
        console.error(JSON.stringify({ failedCall: sid, error: String(err) }));
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return failed;
}

/** The attacker: keeps up to 40 sockets open that never start, reconnecting when closed. */
function squat(proxy) {
  let stopped = false;
  const sockets = new Set();
  const open = () => {
    if (stopped) return;
    const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/media-stream/${callSid()}`, {
      localAddress: '127.0.0.2',
      perMessageDeflate: false,
    });
    sockets.add(ws);
    ws.on('error', () => undefined);
    ws.once('close', () => {
      sockets.delete(ws);
      setTimeout(open, 250);
    });
  };
  for (let i = 0; i < 40; i++) open();
  return () => {
    stopped = true;
    for (const ws of sockets) ws.terminate();
  };
}

async function main() {
  const workers = await Promise.all(
    ['soak-media-1', 'soak-media-2'].map((name) =>
      start(name, 'workers/media/dist/main.js', {
        WORKER_ID: name,
        AGENT: 'echo',
        MAX_CALLS: String(CONCURRENCY),
        // Below the squatter's share of sockets (so evictions happen all the time) and above a
        // burst of this soak's own calls waiting for their start (up to CONCURRENCY / 2 each).
        MAX_UNSTARTED_STREAMS: '16',
        START_TIMEOUT_MS: '2000',
      }),
    ),
  );
  const proxy = await start('soak-proxy', 'proxy/dist/main.js', {
    HOST: '127.0.0.1',
    ADMIN_PORT: '0',
    MEDIA_BACKENDS: workers.map((w) => `127.0.0.1:${w.port}`).join(','),
  });
  const all = [proxy, ...workers];
  try {
    // Idle fds before any traffic; memory once the heaps have grown to the load (first half).
    await runCalls(proxy, WARMUP);
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const idle = all.map(sample);
    const half = Math.ceil(CALLS / 2);
    const stopFirst = squat(proxy);
    let failed = await runCalls(proxy, half);
    stopFirst();
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const before = all.map(sample);
    const stopSecond = squat(proxy);
    failed += await runCalls(proxy, CALLS - half);
    stopSecond();
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const after = all.map(sample);
    const measured = CALLS - half;
    let ok = true;
    all.forEach((p, i) => {
      const growthPerCall = (after[i].rss - before[i].rss) / measured;
      const fdsBack = after[i].fds <= idle[i].fds + 4;
      const rssOk = after[i].rss - before[i].rss <= 16 * 1024 * 1024 || growthPerCall <= 4096;
      ok &&= fdsBack && rssOk;
      console.log(
        JSON.stringify({
          process: p.name,
          calls: CALLS,
          rssWarmMiB: +(before[i].rss / 1048576).toFixed(1),
          rssAfterMiB: +(after[i].rss / 1048576).toFixed(1),
          rssGrowthPerCallBytes: Math.round(growthPerCall),
          fdsIdle: idle[i].fds,
          fdsAfter: after[i].fds,
          ok: fdsBack && rssOk,
        }),
      );
    });
    console.log(
      JSON.stringify({ warmupCalls: WARMUP, calls: CALLS, measuredCalls: measured, failed }),
    );
    if (failed > 0) ok = false;
    process.exitCode = ok ? 0 : 1;
  } finally {
    for (const p of all) p.child.kill('SIGKILL');
    await Promise.all(all.map((p) => (p.child.exitCode === null ? once(p.child, 'exit') : 0)));
  }
}

// A soak that hangs is a failure too.
const watchdog = setTimeout(
  () => {
    console.error('soak: no result within the time limit');
    process.exit(1);
  },
  Number(process.env.SOAK_TIMEOUT_MS ?? 15 * 60_000),
);
watchdog.unref();
await main();
