// Media worker benchmark: how many Twilio calls one worker process carries, for the `echo` and
// `parrot` agents and a parrot at 16 kHz (test/bench/agents/parrot-16k.js: every frame resampled
// 8k → 16k → 8k). For each agent it climbs a ladder of concurrent calls, a fresh worker per step,
// and finds the most calls the worker holds with:
//   - outbound frame lateness p99 under 5 ms: how late the worker's timers (its 20 ms pacer ticks,
//     which send the frames) fire, from a 1 ms event-loop delay probe preloaded into the worker
//     (lib/loop-probe.js) over the steady window; the callers also time every frame they receive
//     (how much later than 20 ms after the previous one it came), shown as "caller-side", and
//   - no inbound gap (every caller frame reached the worker: `media_audio_messages_in_total` equals the
//     frames sent, and `media_inbound_gaps_total` stayed 0), and no failed or dropped call.
// Per step it reports the worker's CPU per call-second (utime+stime from /proc over the steady
// window) and RSS per call (VmRSS growth over the idle worker), and, once the calls have ended,
// what is left of their memory: the worker's heap and external memory after a full GC, over the
// idle worker's (a leak shows here; RSS does not go back down, as freed memory stays with the
// allocator). The callers are a light raw-socket generator in its own process
// (test/bench/lib/twilio-load.js); its CPU is reported too.
//
//   npm run bench:media                       # full ladder, 6 s windows (~5 min)
//   npm run bench:media -- --quick            # shorter ladder and windows (~2 min)
//   npm run bench:media -- --agents=parrot --calls=100,300,500
//   npm run bench:media -- --smoke            # 3 calls per agent, 1 s (the smoke test)
// Build first (`npm run build`). Writes test/bench/results/media-latest.md (or --out=).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { rssBytes } from './lib/proc.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));
const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    agents: { type: 'string' },
    calls: { type: 'string' },
    out: { type: 'string' },
    // Extra node flags for the worker, e.g. --node-args=--max-semi-space-size=1.
    'node-args': { type: 'string', default: '' },
  },
});
const mode = args.smoke ? 'smoke' : args.quick ? 'quick' : 'full';
const pick = (full, quick, smoke) => ({ full, quick, smoke })[mode];

const LATENESS_P99_MS = 5;
const AGENTS = {
  echo: { env: { AGENT: 'echo' } },
  parrot: { env: { AGENT: 'parrot' } },
  'parrot-16k': { env: { AGENT_MODULE: join(here, 'agents/parrot-16k.js') } },
};
const agents = (args.agents ?? Object.keys(AGENTS).join(',')).split(',');
for (const a of agents) if (!(a in AGENTS)) throw new Error(`unknown agent ${a}`);
const ladder = (
  args.calls ??
  process.env.BENCH_CALLS ??
  pick('50,100,200,300,400,500,600,800', '50,150,300,500', '3')
)
  .split(',')
  .map(Number);
const step = {
  rampMs: pick(2000, 1500, 300),
  warmMs: pick(2000, 1500, 500),
  windowMs: Number(process.env.BENCH_CALL_MS ?? pick(6000, 3000, 1000)),
};
const outMd = args.out ?? join(here, 'results/media-latest.md');

const live = new Set();
process.once('exit', () => {
  for (const c of live) c.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => process.exit(130));
}
function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}
const delay = (ms) => new Promise((r) => setTimeout(r, ms));

const nodeArgs = args['node-args'].split(' ').filter((a) => a !== '');

async function startWorker(agent, maxCalls, tmp) {
  const log = join(tmp, 'worker.log');
  const out = openSync(log, 'w');
  const child = track(
    // Launched as in production (package.json start:media, compose, Kubernetes).
    spawn(
      process.execPath,
      // --expose-gc only lets the probe collect garbage once the calls ended; nothing else calls it.
      ['--max-semi-space-size=1', '--expose-gc', ...nodeArgs, 'workers/media/dist/main.js'],
      {
        cwd: root,
        env: {
          PATH: process.env.PATH ?? '',
          HOST: '127.0.0.1',
          PORT: '0',
          MAX_CALLS: String(maxCalls + 10),
          // Production logging (two lines per call), to a file: no pipe reader on the callers' core.
          LOG_LEVEL: 'info',
          NODE_OPTIONS: `--import=${pathToFileURL(join(here, 'lib/loop-probe.js')).href}`,
          BENCH_LOOP_PROBE_FILE: join(tmp, 'loop.json'),
          ...AGENTS[agent].env,
        },
        stdio: ['ignore', out, out],
      },
    ),
  );
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`worker exited: ${readFileSync(log, 'utf8')}`);
    if (i > 300) throw new Error('worker did not start within 15 s');
    const line = readFileSync(log, 'utf8')
      .split('\n')
      .find((l) => l.includes('"listening"'));
    if (line) return { child, port: JSON.parse(line).port };
    await delay(50);
  }
}

/** Sums every series of each metric name in a Prometheus text page. */
async function scrape(port) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sums = {};
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})? ([-+\d.eE]+|NaN)$/.exec(line);
    if (m) sums[m[1]] = (sums[m[1]] ?? 0) + Number(m[2]);
  }
  return sums;
}

/** Heap and external memory of the worker after a full GC (the loop probe, on SIGWINCH). */
async function memoryAfterGc(worker, tmp) {
  const file = join(tmp, 'loop.json.mem.json');
  rmSync(file, { force: true });
  worker.child.kill('SIGWINCH');
  for (let i = 0; i < 100; i++) {
    await delay(50);
    try {
      const m = JSON.parse(readFileSync(file, 'utf8'));
      if (!m.collected) throw new Error('the worker has no gc() (--expose-gc)');
      return m;
    } catch (err) {
      if (err.code !== 'ENOENT' && !(err instanceof SyntaxError)) throw err;
    }
  }
  throw new Error('the worker did not report its memory within 5 s');
}

let runTag = 1;
async function runStep(agent, calls) {
  const tmp = mkdtempSync(join(tmpdir(), 'callgate-media-bench-'));
  let worker;
  try {
    worker = await startWorker(agent, calls, tmp);
    await delay(300);
    const rssIdle = rssBytes(worker.child.pid);
    const memIdle = await memoryAfterGc(worker, tmp);
    const before = await scrape(worker.port);
    const gen = track(
      spawn(
        process.execPath,
        [
          join(here, 'lib/twilio-load.js'),
          JSON.stringify({
            calls,
            port: worker.port,
            workerPid: worker.child.pid,
            runTag: runTag++,
            ...step,
          }),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      ),
    );
    const timer = setTimeout(() => gen.kill('SIGKILL'), 120_000);
    const result = await new Promise((resolve, reject) => {
      createInterface({ input: gen.stdout }).on('line', (l) => {
        if (l.startsWith('{')) resolve(JSON.parse(l));
      });
      gen.once('exit', (code) => reject(new Error(`caller generator exited (${code})`)));
    });
    clearTimeout(timer);
    await once(gen, 'exit');
    await delay(300); // the worker counts the last frames and the stops
    let after = await scrape(worker.port);
    for (let i = 0; i < 50 && (after.media_calls_active ?? 0) > 0; i++) {
      await delay(100);
      after = await scrape(worker.port);
    }
    const memEnd = await memoryAfterGc(worker, tmp);
    const rssEnd = rssBytes(worker.child.pid);
    const d = (name) => (after[name] ?? 0) - (before[name] ?? 0);
    const framesIn = d('media_audio_messages_in_total');
    const loop = JSON.parse(readFileSync(join(tmp, 'loop.json'), 'utf8'));
    const r = {
      agent,
      calls,
      ...result,
      workerLateP50: loop.p50,
      workerLateP99: loop.p99,
      workerLateMax: loop.max,
      framesIn,
      inboundMissing: result.sentMedia - framesIn,
      inboundGaps: d('media_inbound_gaps_total'),
      lateFramesWorker: d('media_late_frames_total'),
      cpuMsPerCallSecond: ((result.workerCpuS / result.windowS) * 1000) / calls,
      rssKiBPerCall: (result.rss - rssIdle) / calls / 1024,
      callsActiveAfter: after.media_calls_active ?? 0,
      leftMiB:
        (memEnd.heapUsed + memEnd.external - (memIdle.heapUsed + memIdle.external)) / 2 ** 20,
      rssAfterKiBPerCall: (rssEnd - rssIdle) / calls / 1024,
    };
    r.pass =
      r.failed === 0 &&
      r.dropped === 0 &&
      r.live === calls &&
      r.workerLateP99 < LATENESS_P99_MS &&
      r.inboundMissing <= 0 &&
      r.inboundGaps === 0;
    return r;
  } finally {
    if (worker) {
      worker.child.kill('SIGKILL');
      if (worker.child.exitCode === null) await once(worker.child, 'exit');
    }
    rmSync(tmp, { recursive: true, force: true });
  }
}

const f = (x, d = 1) =>
  Number.isFinite(x)
    ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d })
    : '—';
console.log(
  `media worker benchmark (${mode}): agents ${agents.join(', ')}, ladder ${ladder.join(', ')} calls, ` +
    `${step.windowMs / 1000} s windows; pass = lateness p99 < ${LATENESS_P99_MS} ms, no inbound gap`,
);
const steps = [];
const summary = [];
for (const agent of agents) {
  let best;
  let lastRun;
  for (const calls of ladder) {
    let r;
    try {
      r = await runStep(agent, calls);
    } catch (err) {
      console.log(`${agent} ${calls} calls: FAILED ${err.message}`);
      break;
    }
    steps.push(r);
    lastRun = r;
    console.log(
      `${agent.padEnd(10)} ${String(calls).padStart(4)} calls: ${r.pass ? 'pass' : 'FAIL'} | ` +
        `lateness p50 ${f(r.workerLateP50, 2)} p99 ${f(r.workerLateP99, 2)} max ${f(r.workerLateMax, 0)} ms ` +
        `(caller-side p99 ${f(r.latenessP99, 2)} max ${f(r.latenessMax, 0)}) | ` +
        `worker ${f(r.cpuMsPerCallSecond, 2)} ms CPU per call-second, ${f(r.rssKiBPerCall)} KiB RSS per call | ` +
        `after the calls ended: ${f(r.leftMiB, 2)} MiB left on the heap after a full GC ` +
        `(${r.callsActiveAfter} calls active), RSS ${f(r.rssAfterKiBPerCall)} KiB per call over idle | ` +
        `inbound missing ${r.inboundMissing}, gaps ${r.inboundGaps} | frames out ${r.framesOut} | ` +
        `live ${r.live}/${calls}, failed ${r.failed}, dropped ${r.dropped} | callers ` +
        `${f((r.generatorCpuS / r.windowS) * 100, 0)} % CPU, ELU ${f(r.generatorElu * 100, 0)} % | machine ` +
        `${f(r.machineBusy * 100, 0)} % busy`,
    );
    if (!r.pass) break;
    best = r;
  }
  // CPU per call-second from the largest passing step (else the last one run).
  const ref = best ?? lastRun;
  summary.push({ agent, best, ref, topOfLadder: best !== undefined && best === lastRun });
}

const lines = [
  `| agent | calls held (lateness p99 < ${LATENESS_P99_MS} ms, no inbound gap) | calls per core from CPU | worker CPU ms per call-second | RSS KiB per call | left after the calls ended, MiB | lateness p99 ms (caller-side) | callers CPU % | machine busy % |`,
  '|---|---|---|---|---|---|---|---|---|',
];
for (const s of summary) {
  const r = s.ref;
  const held = s.best
    ? `${s.best.calls}${s.topOfLadder ? '+ (top of ladder)' : ''}`
    : `< ${ladder[0]}`;
  lines.push(
    `| ${s.agent} | ${held} | ${r ? f(1000 / r.cpuMsPerCallSecond, 0) : '—'} | ${r ? f(r.cpuMsPerCallSecond, 2) : '—'} | ` +
      `${r ? f(r.rssKiBPerCall) : '—'} | ${r ? f(r.leftMiB, 2) : '—'} | ` +
      `${r ? `${f(r.workerLateP99, 2)} (${f(r.latenessP99, 2)})` : '—'} | ` +
      `${r ? f((r.generatorCpuS / r.windowS) * 100, 0) : '—'} | ${r ? f(r.machineBusy * 100, 0) : '—'} |`,
  );
}
const maxBusy = Math.max(0, ...steps.map((s) => s.machineBusy)) * 100;
const notes = [
  `Measured ${new Date().toISOString()} (${mode} mode), node ${process.version}, ${cpus().length} cores; ` +
    `a fresh worker per step; CPU, RSS and lateness are of the largest passing step (else the first).`,
  '"left after the calls ended": the worker\'s heap and external memory after a full GC once every ' +
    "call had ended, minus the idle worker's: the code the first calls compiled (a MiB or two " +
    'whatever the number of calls); calls that leak show as a figure growing with the calls ' +
    '(compare the steps).',
  '"calls per core from CPU" is 1000 ms ÷ the worker CPU per call-second: what one fully busy core ' +
    'would carry if nothing else limited it; "calls held" is what this machine showed, with the callers ' +
    'on the same cores.',
  maxBusy > 85
    ? `WARNING: the machine was up to ${maxBusy.toFixed(0)} % busy during a window: "calls held" measures contention too.`
    : `The machine was at most ${maxBusy.toFixed(0)} % busy during any window.`,
];
const md = `${lines.join('\n')}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
console.log(`\n${md}`);
mkdirSync(dirname(outMd), { recursive: true });
writeFileSync(outMd, md);
writeFileSync(
  outMd.replace(/\.md$/, '.json'),
  `${JSON.stringify({ mode, step, steps }, null, 2)}\n`,
);
console.log(`written to ${outMd}`);
process.exit(summary.every((s) => s.ref !== undefined) ? 0 : 1);
