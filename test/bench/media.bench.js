// Media worker benchmark: N concurrent simulated Twilio calls against one built media worker
// running the echo agent (every caller frame comes straight back, so both directions carry a full
// 50 frames/s per call). For each N it reports, from the worker's own /metrics:
//   - outbound late-frame ratio (pacer ticks > 10 ms late / frames sent),
//   - inbound processing time per media message (parse, μ-law decode, agent, recording),
//   - worker CPU per call and RSS per call,
// each against a baseline of 1 call measured in the same run.
// Build first (`npx tsc -b`), then: node test/bench/media.bench.js
// Env: BENCH_CALLS=1,20,50,100 (the first is the baseline), BENCH_CALL_MS=6000.
// The simulated callers run in this process, on the other core of a 2-core machine; their own
// timing noise is not counted (only the worker's figures are).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { simulateCall } from '../../packages/simulator/dist/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const COUNTS = (process.env.BENCH_CALLS ?? '1,20,50,100').split(',').map(Number);
const CALL_MS = Number(process.env.BENCH_CALL_MS ?? 6000);
const RATE = 8000;
const STAGGER_MS = 500;

function noise(ms, seed) {
  const out = new Int16Array((ms * RATE) / 1000);
  let x = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = Math.round((x / 2 ** 32 - 0.5) * 0.4 * 32767);
  }
  return out;
}

async function startWorker() {
  const child = spawn(process.execPath, ['workers/media/dist/main.js'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      PORT: '0',
      AGENT: 'echo',
      // info: the listening line carries the port; per call there are only two lines.
      LOG_LEVEL: 'info',
      MAX_CALLS: String(Math.max(...COUNTS) + 10),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', (code, sig) => resolve(code ?? sig)));
  // Never leave the worker behind, whatever ends this script.
  process.once('exit', () => child.kill('SIGKILL'));
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      child.kill('SIGKILL');
      process.exit(130);
    });
  }
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('media worker did not start'));
    }, 15_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const msg = JSON.parse(line);
        if (msg.msg === 'listening') {
          clearTimeout(timer);
          resolve(msg.port);
        }
      } catch {
        // Not a log line.
      }
    });
    void exited.then((code) => reject(new Error(`media worker exited (${code})`)));
  });
  return { child, port, exited };
}

/** Sums every series of each metric name in a Prometheus text page. */
async function scrape(port) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sums = {};
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})? ([-+\d.eE]+|NaN)$/.exec(line);
    if (!m) continue;
    sums[m[1]] = (sums[m[1]] ?? 0) + Number(m[2]);
  }
  return sums;
}

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function phase(port, calls) {
  const before = await scrape(port);
  const t0 = performance.now();
  const callersCpu0 = process.cpuUsage();
  const audio = noise(CALL_MS, calls);
  const running = Array.from({ length: calls }, async (_, i) => {
    await delay(calls === 1 ? 0 : (i / calls) * STAGGER_MS);
    const n = String(calls * 1000 + i).padStart(32, '0');
    return simulateCall({
      url: `ws://127.0.0.1:${port}/media-stream/CA${n}`,
      callSid: `CA${n}`,
      audio,
      segments: [{ startMs: 0, endMs: CALL_MS }],
      hangupAfterMs: CALL_MS,
    });
  });
  // Memory while every call is live.
  await delay(STAGGER_MS + CALL_MS * 0.7);
  const mid = await scrape(port);
  const summaries = await Promise.allSettled(running);
  const wallS = (performance.now() - t0) / 1000;
  const callersCpu = process.cpuUsage(callersCpu0);
  const after = await scrape(port);
  const d = (name) => (after[name] ?? 0) - (before[name] ?? 0);
  const failed = summaries.filter(
    (s) =>
      s.status === 'rejected' || s.value.closedBy !== 'caller' || s.value.protocolErrors.length > 0,
  ).length;
  const framesOut = d('media_frames_out_total');
  const framesIn = d('media_frames_in_total');
  return {
    calls,
    failed,
    liveCalls: mid.media_calls_active ?? 0,
    framesIn,
    framesOut,
    lateRatio: framesOut === 0 ? 0 : d('media_late_frames_total') / framesOut,
    inboundUs:
      framesIn === 0
        ? 0
        : (d('media_inbound_processing_seconds_sum') /
            d('media_inbound_processing_seconds_count')) *
          1e6,
    cpuCores: d('process_cpu_seconds_total') / wallS,
    callersCores: (callersCpu.user + callersCpu.system) / 1e6 / wallS,
    loopLagP99Ms: (mid.nodejs_eventloop_lag_p99_seconds ?? 0) * 1000,
    rssMb: (mid.process_resident_memory_bytes ?? 0) / 2 ** 20,
    wallS,
  };
}

const worker = await startWorker();
let exitCode = 0;
try {
  // One short call to warm up JIT and the agent before anything is measured.
  await phase(worker.port, 1).catch(() => undefined);
  const results = [];
  for (const calls of COUNTS) {
    const r = await phase(worker.port, calls);
    results.push(r);
    if (r.failed > 0) exitCode = 1;
    console.log(
      `${String(calls).padStart(4)} calls: late ${(r.lateRatio * 100).toFixed(2)}% ` +
        `| inbound ${r.inboundUs.toFixed(1)} µs/msg | worker CPU ${(r.cpuCores * 100).toFixed(1)}% ` +
        `of a core (${((r.cpuCores / calls) * 100).toFixed(2)}%/call) | RSS ${r.rssMb.toFixed(1)} MB ` +
        `| worker loop lag p99 ${r.loopLagP99Ms.toFixed(1)} ms | callers CPU ` +
        `${(r.callersCores * 100).toFixed(0)}% | live ${r.liveCalls}/${calls} | failed ${r.failed}`,
    );
  }
  const base = results[0];
  const ratio = (a, b) => (b === 0 ? (a === 0 ? '1.00' : 'inf') : (a / b).toFixed(2));
  console.log(`\nagainst the ${base.calls}-call baseline of this run:`);
  for (const r of results.slice(1)) {
    const extra = r.calls - base.calls;
    console.log(
      `${String(r.calls).padStart(4)} calls: late ratio ${(r.lateRatio * 100).toFixed(2)}% vs ` +
        `${(base.lateRatio * 100).toFixed(2)}% | inbound time/msg x${ratio(r.inboundUs, base.inboundUs)} | ` +
        `CPU/call x${ratio(r.cpuCores / r.calls, base.cpuCores / base.calls)} | ` +
        `RSS +${(r.rssMb - base.rssMb).toFixed(1)} MB = ${((r.rssMb - base.rssMb) / extra).toFixed(2)} MB per extra call`,
    );
  }
  console.log(
    '\nLate frames with low worker CPU and low loop lag mean the machine, not the worker, is ' +
      'short of CPU (the callers share it).',
  );
} catch (err) {
  console.error(err);
  exitCode = 1;
} finally {
  worker.child.kill('SIGTERM');
  await worker.exited;
}
process.exit(exitCode);
