#!/usr/bin/env node
// ProxyServer benchmark: what forwarding Twilio-shaped WebSocket traffic costs, through the callgate proxy
// (media route with signature checks on, and the test-agent route), through nginx (one worker, when
// installed) and straight to the echo backend, in ONE run. Targets alternate, every run starts fresh
// processes (echo backend, target, load generator), and the table shows medians and callgate ÷ nginx.
// Loopback only; every phase is bounded in count and time, and the script stops by itself.
//
//   npm run bench:proxy                        # full: 3 runs of every scenario and target (~15 min)
//   npm run bench:proxy -- --quick             # shorter windows, fewer upgrades (~8 min)
//   npm run bench:proxy -- --quick --runs=1    # one run of each (~3 min)
//   npm run bench:proxy -- --only=cpu200 --targets=callgate-media,nginx --runs=5
//   npm run bench:proxy -- --smoke             # a few calls for a few seconds (the smoke test)
//
// Build first (`npm run build`): callgate runs as `node proxy/dist/main.js`. See test/bench/README.md
// for what every figure means. Writes test/bench/results/latest.md and latest.json (or --out=).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { childPids, machineTicks } from './lib/proc.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    smoke: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    targets: { type: 'string' },
    out: { type: 'string' },
    'max-minutes': { type: 'string', default: '40' },
    // Extra node flags for the callgate proxy, e.g. --node-args="--cpu-prof --cpu-prof-dir=/tmp/p".
    'node-args': { type: 'string', default: '' },
    from: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\nimport ')[0]);
  process.exit(0);
}

// ---- what is measured --------------------------------------------------------------------------

const SIGN_TOKEN = 'bench-twilio-auth-token';
const SIGN_ORIGIN = 'wss://callgate.bench';

/**
 * The targets, in the order of the table. To measure another proxy configuration in the same run
 * (e.g. the media route with call continuity on), add a callgate target with its own `env`.
 */
const nodeArgs = args['node-args'].split(' ').filter((a) => a !== '');
const PROXY_NODE_FLAGS = ['--max-semi-space-size=1'];

const TARGETS = [
  { name: 'direct', label: 'direct', kind: 'direct', route: 'media' },
  {
    name: 'callgate-media',
    label: 'callgate media',
    kind: 'callgate',
    route: 'media',
    // Everything on: Twilio signature checks at the edge on every upgrade.
    env: {
      PUBLIC_URL: 'https://callgate.bench',
      TWILIO_AUTH_TOKEN: SIGN_TOKEN,
      TWILIO_SIGNATURE_MODE: 'enforce',
    },
  },
  {
    name: 'callgate-test-agent',
    label: 'callgate test-agent',
    kind: 'callgate',
    route: 'test-agent',
  },
  { name: 'nginx', label: 'nginx', kind: 'nginx', route: 'media' },
  {
    // lib/bare-relay.js, the least a Node relay can do with documented APIs (no guard, route, log
    // or metric), launched with the proxy's V8 flags: the part of the gap to nginx that is Node's.
    name: 'node-floor',
    label: 'bare Node relay',
    kind: 'floor',
    route: 'media',
  },
  {
    // Only with --targets=...: the media route with frame tracking off (CALL_CONTINUITY=false),
    // everything else the same, to price call continuity on its own.
    name: 'callgate-media-untracked',
    label: 'callgate media, continuity off',
    kind: 'callgate',
    route: 'media',
    optional: true,
    env: {
      PUBLIC_URL: 'https://callgate.bench',
      TWILIO_AUTH_TOKEN: SIGN_TOKEN,
      TWILIO_SIGNATURE_MODE: 'enforce',
      CALL_CONTINUITY: 'false',
    },
  },
  {
    // Only with --targets=...: what the proxy's V8 flags (PROXY_NODE_FLAGS) cost and save, and
    // what --optimize-for-size would add (less memory still, more CPU per message).
    name: 'callgate-media-v8-defaults',
    label: 'callgate media, V8 defaults',
    kind: 'callgate',
    route: 'media',
    optional: true,
    nodeFlags: [],
    env: {
      PUBLIC_URL: 'https://callgate.bench',
      TWILIO_AUTH_TOKEN: SIGN_TOKEN,
      TWILIO_SIGNATURE_MODE: 'enforce',
    },
  },
  {
    name: 'callgate-media-size-optimized',
    label: 'callgate media, + --optimize-for-size',
    kind: 'callgate',
    route: 'media',
    optional: true,
    nodeFlags: ['--optimize-for-size', ...PROXY_NODE_FLAGS],
    env: {
      PUBLIC_URL: 'https://callgate.bench',
      TWILIO_AUTH_TOKEN: SIGN_TOKEN,
      TWILIO_SIGNATURE_MODE: 'enforce',
    },
  },
];

// --from=results/latest.json: print the table of an earlier run again (no processes started).
const earlier = args.from ? JSON.parse(readFileSync(args.from, 'utf8')) : undefined;
const mode = earlier?.mode ?? (args.smoke ? 'smoke' : args.quick ? 'quick' : 'full');
const pick = (full, quick, smoke) => ({ full, quick, smoke })[mode];
/** The scenarios; each run of each is one fresh set of processes. */
const SCENARIOS = {
  cpu200: {
    scenario: 'load',
    conns: pick(200, 200, 5),
    intervalMs: 20,
    warmMs: pick(3000, 2000, 300),
    windowMs: pick(10_000, 5000, 1000),
  },
  cpu2000: {
    scenario: 'load',
    conns: pick(2000, 2000, 20),
    intervalMs: 200,
    warmMs: pick(3000, 2000, 300),
    windowMs: pick(10_000, 5000, 1000),
  },
  idle5000: { scenario: 'idle', conns: pick(5000, 5000, 20), settleMs: pick(3000, 2000, 300) },
  upgrades: {
    scenario: 'upgrades',
    // A fresh Node process spends the first few thousand upgrades compiling its hot paths (about
    // 0.2 ms of CPU per upgrade more over the first 4,000): the steady figure comes after a warm-up
    // this long, and the warm-up's own cost is a row of its own.
    total: pick(8000, 4000, 60),
    warm: pick(4000, 2000, 10),
    inFlight: pick(100, 100, 10),
  },
};
const scenarioNames = earlier
  ? Object.keys(earlier.results)
  : args.only
    ? args.only.split(',').map((s) => (s === 'idle' ? 'idle5000' : s))
    : Object.keys(SCENARIOS);
for (const s of scenarioNames) {
  if (!(s in SCENARIOS)) throw new Error(`unknown scenario ${s} (${Object.keys(SCENARIOS)})`);
}
const runs = Number(earlier?.runs ?? args.runs ?? pick(3, 3, 1));
const nginxBin = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((p) =>
  existsSync(p),
);
let targets = earlier
  ? TARGETS.filter((t) => Object.values(earlier.results).some((byTarget) => t.name in byTarget))
  : args.targets
    ? args.targets.split(',').map((n) => {
        const t = TARGETS.find((x) => x.name === n);
        if (!t) throw new Error(`unknown target ${n} (${TARGETS.map((x) => x.name)})`);
        return t;
      })
    : TARGETS.filter((t) => !t.optional);
if (!nginxBin) {
  console.log('nginx is not installed (apt-get install -y nginx-light): its column stays empty');
  targets = targets.filter((t) => t.kind !== 'nginx');
}
if (!existsSync(join(root, 'proxy/dist/main.js')) && targets.some((t) => t.kind === 'callgate')) {
  console.error('proxy/dist/main.js is missing: run `npm run build` first');
  process.exit(1);
}
const outMd = args.out ?? join(here, 'results/latest.md');
const deadline = Date.now() + Number(args['max-minutes']) * 60_000;
const RUN_TIMEOUT_MS = 180_000;

// ---- processes ---------------------------------------------------------------------------------

const live = new Set();
/** nginx workers of the current run: killed by pid if we are stopped (their master gets SIGKILL). */
const livePids = new Set();
function track(child) {
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}
function killAll() {
  for (const c of live) c.kill('SIGKILL');
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
process.once('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

function firstLine(child, pred, what, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what}: no answer within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    createInterface({ input: child.stdout }).on('line', (text) => {
      let line;
      try {
        line = JSON.parse(text);
      } catch {
        return;
      }
      if (pred(line)) {
        clearTimeout(timer);
        resolve(line);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code})`));
    });
  });
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * SIGKILL; nginx gets SIGTERM first (its master stops its worker on SIGTERM, not on SIGKILL), and
 * so does a profiled proxy (it writes its profile on exit).
 */
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(child.stopSignal ?? 'SIGKILL');
  const timer = setTimeout(() => child.kill('SIGKILL'), child.stopGraceMs ?? 2000);
  await exited;
  clearTimeout(timer);
}

async function startBackend() {
  const child = track(
    spawn(process.execPath, [join(here, 'lib/echo-backend.js')], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const { port } = await firstLine(child, (l) => 'port' in l, 'echo backend');
  return { child, port };
}

async function freePort() {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address();
  s.close();
  await once(s, 'close');
  return port;
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts the target; returns the port the generator dials and the pids whose CPU/RSS count. */
async function startTarget(t, backendPort, tmp) {
  if (t.kind === 'direct') return { port: backendPort, pids: [], children: [] };
  if (t.kind === 'callgate') {
    const log = join(tmp, 'proxy.log');
    const out = openSync(log, 'w');
    const child = track(
      // Launched as in production (package.json start:proxy, the Dockerfile, compose, Kubernetes).
      spawn(
        process.execPath,
        [...(t.nodeFlags ?? PROXY_NODE_FLAGS), ...nodeArgs, 'proxy/dist/main.js'],
        {
          cwd: root,
          env: {
            PATH: process.env.PATH ?? '',
            HOST: '127.0.0.1',
            PORT: '0',
            ADMIN_HOST: '127.0.0.1',
            ADMIN_PORT: '0',
            MEDIA_BACKENDS: `127.0.0.1:${backendPort}`,
            TEST_AGENT_BACKENDS: `127.0.0.1:${backendPort}`,
            TUNNEL_IDLE_TIMEOUT_MS: '3600000',
            // Every generated call comes from 127.0.0.1; nginx has no per-address cap either.
            MAX_CONNECTIONS_PER_CLIENT: '0',
            MAX_PENDING_PER_CLIENT: '0',
            // As in production: one info line per upgrade and per closed tunnel, to a file here.
            LOG_LEVEL: 'info',
            ...t.env,
          },
          // Logs go to a file so that no pipe reader's CPU lands on the generator.
          stdio: ['ignore', out, out],
        },
      ),
    );
    const started = Date.now();
    let listening;
    while (!listening) {
      if (child.exitCode !== null) throw new Error(`callgate exited: ${readFileSync(log, 'utf8')}`);
      if (Date.now() - started > 15_000) throw new Error('callgate did not start within 15 s');
      await delay(50);
      for (const line of readFileSync(log, 'utf8').split('\n')) {
        if (line.includes('"listening"')) listening = JSON.parse(line);
      }
    }
    for (let i = 0; ; i++) {
      const res = await fetch(`http://127.0.0.1:${listening.adminPort}/readyz`).catch(() => null);
      if (res?.status === 200) break;
      if (i > 100) throw new Error('callgate never became ready');
      await delay(50);
    }
    // A profiled proxy writes its profile only on a clean exit: it gets SIGTERM (a drain) first.
    if (nodeArgs.some((a) => a.startsWith('--cpu-prof') || a.startsWith('--heap-prof'))) {
      child.stopSignal = 'SIGTERM';
      child.stopGraceMs = 15_000;
    }
    return { port: listening.port, pids: [child.pid], children: [child] };
  }
  if (t.kind === 'floor') {
    const child = track(
      spawn(
        process.execPath,
        [...PROXY_NODE_FLAGS, ...nodeArgs, join(here, 'lib/bare-relay.js'), String(backendPort)],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      ),
    );
    const { port } = await firstLine(child, (l) => 'port' in l, 'bare relay');
    return { port, pids: [child.pid], children: [child] };
  }
  // nginx: a private prefix, its own config, never the system service.
  const port = await freePort();
  mkdirSync(join(tmp, 'tmp'), { recursive: true });
  const conf = readFileSync(join(here, 'nginx.conf'), 'utf8')
    .replaceAll('__LISTEN_PORT__', String(port))
    .replaceAll('__BACKEND_PORT__', String(backendPort));
  writeFileSync(join(tmp, 'nginx.conf'), conf);
  const child = track(
    spawn(nginxBin, ['-p', `${tmp}/`, '-c', join(tmp, 'nginx.conf'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    }),
  );
  child.stopSignal = 'SIGTERM';
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; !(await canConnect(port)); i++) {
    if (child.exitCode !== null || i > 200) throw new Error(`nginx did not start: ${stderr}`);
    await delay(50);
  }
  let workers = [];
  for (let i = 0; workers.length === 0 && i < 100; i++) {
    workers = childPids(child.pid);
    if (workers.length === 0) await delay(20);
  }
  return { port, pids: [child.pid, ...workers], children: [child] };
}

async function runGenerator(options) {
  const child = track(
    spawn(process.execPath, [join(here, 'lib/load.js'), JSON.stringify(options)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
  try {
    return await firstLine(child, (l) => 'ok' in l, 'load generator', RUN_TIMEOUT_MS);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The machine's load from everything else (other jobs on shared cores), sampled before a run while
 * none of ours is running; waits up to QUIET_WAIT_MS for it to fall under 50 %. A fraction.
 */
const QUIET_WAIT_MS = pick(15_000, 8000, 0);
async function backgroundLoad() {
  const until = Date.now() + QUIET_WAIT_MS;
  for (;;) {
    const a = machineTicks();
    await delay(500);
    const b = machineTicks();
    const busy = (b.busy - a.busy) / Math.max(1, b.total - a.total);
    if (busy < 0.5 || Date.now() >= until) return busy;
  }
}

let runTag = 1;
async function runOnce(scenarioName, target) {
  const background = await backgroundLoad();
  const tmp = mkdtempSync(join(tmpdir(), 'callgate-bench-'));
  const started = [];
  let extraPids = [];
  try {
    const backend = await startBackend();
    started.push(backend.child);
    const t = await startTarget(target, backend.port, tmp);
    started.push(...t.children);
    extraPids = t.pids.filter((pid) => !t.children.some((c) => c.pid === pid));
    for (const pid of extraPids) livePids.add(pid);
    await delay(300); // let start-up work settle before the baseline RSS
    const result = await runGenerator({
      ...SCENARIOS[scenarioName],
      port: t.port,
      route: target.route,
      runTag: runTag++,
      signToken: SIGN_TOKEN,
      signOrigin: SIGN_ORIGIN,
      pids: { target: t.pids, backend: [backend.child.pid] },
    });
    return { ...result, background };
  } finally {
    for (const c of started.reverse()) await stop(c);
    // nginx's worker, should it outlive its master: by its pid, never by name.
    for (const pid of extraPids) {
      livePids.delete(pid);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    rmSync(tmp, { recursive: true, force: true });
  }
}

// ---- figures -----------------------------------------------------------------------------------

const KIB = 1024;
const median = (xs) => {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};
/** Per-run figures of one scenario result. */
function figuresOf(name, r) {
  if (name === 'cpu200' || name === 'cpu2000') {
    const perM = (cpu) => (cpu / r.windowMsgs) * 1e6;
    return {
      [`${name}.cpu`]: perM(r.targetCpuS),
      [`${name}.backendCpu`]: perM(r.backendCpuS),
      [`${name}.generatorCpu`]: perM(r.generatorCpuS),
      [`${name}.generatorElu`]: r.generatorElu * 100,
      [`${name}.machine`]: r.machineBusy * 100,
      [`${name}.background`]: r.background * 100,
      [`${name}.rss`]: (r.rssActive - r.rssBefore) / r.open / KIB,
      [`${name}.p50`]: r.rttP50,
      [`${name}.p99`]: r.rttP99,
      [`${name}.p999`]: r.rttP999,
      [`${name}.lost`]: r.lost + r.failedUpgrades,
    };
  }
  if (name === 'idle5000') {
    return {
      'idle5000.rss': (r.rssIdle - r.rssBefore) / r.open / KIB,
      'idle5000.lost': r.failedUpgrades + r.dropped,
    };
  }
  return {
    'upgrades.rate': r.perSecond,
    'upgrades.cpu': (r.targetCpuS / r.measured) * 1000,
    'upgrades.warmCpu':
      r.warmCpuS === undefined ? NaN : (r.warmCpuS / (r.total - r.measured)) * 1000,
    'upgrades.machine': r.machineBusy * 100,
    'upgrades.lost': r.failed,
  };
}

const S = SCENARIOS;
const rate = (s) =>
  `${s.conns.toLocaleString('en-US')} calls × ${1000 / s.intervalMs} msg/s each way`;
/** Table rows: [key, label, digits, lower-is-better, proxy-only]. */
const ROWS = [
  ['cpu200.cpu', `proxy CPU-s per 1M messages, ${rate(S.cpu200)}`, 1, true, true],
  ['cpu2000.cpu', `proxy CPU-s per 1M messages, ${rate(S.cpu2000)}`, 1, true, true],
  [
    'cpu2000.rss',
    `RSS per active tunnel at ${S.cpu2000.conns.toLocaleString('en-US')}, KiB`,
    1,
    true,
    true,
  ],
  [
    'idle5000.rss',
    `RSS per idle tunnel at ${S.idle5000.conns.toLocaleString('en-US')}, KiB`,
    1,
    true,
    true,
  ],
  ['upgrades.rate', `upgrades per second, ${S.upgrades.inFlight} in flight`, 0, false, false],
  ['upgrades.cpu', 'proxy CPU per upgrade, ms', 2, true, true],
  [
    'upgrades.warmCpu',
    `proxy CPU per upgrade over the first ${S.upgrades.warm.toLocaleString('en-US')} (fresh process), ms`,
    2,
    true,
    true,
  ],
  ['cpu200.p50', `round trip p50, ms (${S.cpu200.conns} calls)`, 2, true, false],
  ['cpu200.p99', 'round trip p99, ms', 2, true, false],
  ['cpu200.p999', 'round trip p99.9, ms', 2, true, false],
  ['cpu200.p50+', 'round trip p50 added over direct, ms', 2, true, true],
  ['cpu200.p99+', 'round trip p99 added over direct, ms', 2, true, true],
  ['cpu200.p999+', 'round trip p99.9 added over direct, ms', 2, true, true],
  ['lost', 'messages lost + failed upgrades (all runs)', 0, true, false],
  ['cpu200.kept', `runs kept at ${S.cpu200.conns} calls (round trip p50 < 10 ms)`, 0, true, false],
  [
    'cpu2000.kept',
    `runs kept at ${S.cpu2000.conns.toLocaleString('en-US')} calls (round trip p50 < 10 ms)`,
    0,
    true,
    false,
  ],
  [
    'cpu200.backendCpu',
    `echo backend CPU-s per 1M messages, ${S.cpu200.conns} calls`,
    1,
    true,
    false,
  ],
  [
    'cpu200.generatorCpu',
    `load generator CPU-s per 1M messages, ${S.cpu200.conns} calls`,
    1,
    true,
    false,
  ],
  [
    'cpu200.generatorElu',
    `load generator event-loop use %, ${S.cpu200.conns} calls`,
    0,
    true,
    false,
  ],
  ['cpu200.machine', 'machine busy % (both cores, all processes), 200 calls', 0, true, false],
  [
    'cpu2000.machine',
    `machine busy %, ${S.cpu2000.conns.toLocaleString('en-US')} calls`,
    0,
    true,
    false,
  ],
  ['upgrades.machine', 'machine busy %, upgrades', 0, true, false],
  [
    'cpu200.background',
    'background load before a run, % (other jobs on the machine)',
    0,
    true,
    false,
  ],
];
/** Rows that describe the run rather than the proxy: no ratio. */
const NO_RATIO = /machine|generator|backend|background|kept|^lost$/;
const ROW_SCENARIO = (key) => key.split('.')[0].replace(/\+$/, '');

function fmt(x, digits) {
  if (typeof x === 'string') return x;
  if (x === undefined || Number.isNaN(x)) return '—';
  return x.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/**
 * A steady-load run whose median round trip reached CONTENDED_P50_MS was queueing (a starved
 * generator or proxy on a busy machine): it sent in bursts, so neither its latency nor its CPU per
 * message describe the proxy. Medians leave such runs out while at least one other run is left.
 */
const CONTENDED_P50_MS = 10;
const contended = (s, r) => (s === 'cpu200' || s === 'cpu2000') && !(r.rttP50 < CONTENDED_P50_MS);

function buildTable(results) {
  const med = {};
  for (const t of targets) {
    med[t.name] = {};
    let lost = 0;
    let any = false;
    for (const s of scenarioNames) {
      const all = results[s]?.[t.name] ?? [];
      const kept = all.filter((r) => !contended(s, r));
      if (s === 'cpu200' || s === 'cpu2000')
        med[t.name][`${s}.kept`] = `${kept.length}/${all.length}`;
      const per = all.map((r) => figuresOf(s, r));
      const perKept = (kept.length > 0 ? kept : all).map((r) => figuresOf(s, r));
      for (const key of new Set(per.flatMap((f) => Object.keys(f)))) {
        if (key.endsWith('.lost')) {
          lost += per.reduce((a, f) => a + (f[key] ?? 0), 0);
          any = true;
        } else med[t.name][key] = median(perKept.map((f) => f[key]));
      }
    }
    med[t.name].lost = any ? lost : NaN;
  }
  const direct = med.direct;
  for (const t of targets) {
    for (const p of ['p50', 'p99', 'p999']) {
      if (direct && t.name !== 'direct') {
        med[t.name][`cpu200.${p}+`] = med[t.name][`cpu200.${p}`] - direct[`cpu200.${p}`];
      }
    }
  }
  const callgates = targets.filter((t) => t.kind === 'callgate' || t.kind === 'floor');
  const hasNginx = targets.some((t) => t.kind === 'nginx');
  const header = ['figure', ...targets.map((t) => t.label)];
  if (hasNginx) header.push(...callgates.map((t) => `${t.label} ÷ nginx`));
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const [key, label, digits, , proxyOnly] of ROWS) {
    if (key !== 'lost' && !scenarioNames.includes(ROW_SCENARIO(key))) continue;
    const cells = targets.map((t) =>
      proxyOnly && t.kind === 'direct' ? '—' : fmt(med[t.name][key], digits),
    );
    if (hasNginx) {
      for (const t of callgates) {
        const a = med[t.name][key];
        const b = med.nginx[key];
        // A ratio of two differences is only meaningful when both are positive.
        const ok =
          Number.isFinite(a) && Number.isFinite(b) && a > 0 && b > 0 && !NO_RATIO.test(key);
        cells.push(ok ? `${(a / b).toFixed(2)}×` : '');
      }
    }
    lines.push(`| ${label} | ${cells.join(' | ')} |`);
  }
  return { table: lines.join('\n'), medians: med };
}

// ---- main --------------------------------------------------------------------------------------

const results = earlier?.results ?? {};
const started = new Date(earlier?.started ?? Date.now());
console.log(
  `proxy benchmark (${mode}): ${scenarioNames.join(', ')} × ${targets.map((t) => t.name).join(', ')}, ` +
    `${runs} run(s) each, alternating; node ${process.version}`,
);
let failures = 0;
let stoppedEarly = false;
outer: for (const s of earlier ? [] : scenarioNames) {
  results[s] = {};
  for (let r = 0; r < runs; r++) {
    // Rotate the order each run so no target always goes first (or right after a heavy one).
    const order = targets.map((_, i) => targets[(i + r) % targets.length]);
    for (const t of order) {
      if (Date.now() > deadline) {
        stoppedEarly = true;
        console.log(`--max-minutes reached: stopping before ${s} run ${r + 1} ${t.name}`);
        break outer;
      }
      let res;
      try {
        res = await runOnce(s, t);
      } catch (err) {
        failures++;
        console.log(`${s} run ${r + 1}/${runs} ${t.name}: FAILED ${err.message}`);
        continue;
      }
      (results[s][t.name] ??= []).push(res);
      const f = figuresOf(s, res);
      const show = Object.entries(f)
        .map(([k, v]) => `${k.split('.')[1]} ${fmt(v, Math.abs(v) < 10 ? 2 : 0)}`)
        .join(', ');
      console.log(`${s} run ${r + 1}/${runs} ${t.name.padEnd(20)} ${show}`);
    }
  }
}

const { table, medians } = buildTable(results);
// The steady-load windows only: 100 handshakes in flight keep every process busy by design, so
// the upgrade windows are always near 100 % (their row shows it).
const busy = scenarioNames
  .filter((s) => s !== 'upgrades')
  .flatMap((s) => Object.values(results[s] ?? {}).flat())
  .map((r) => r.machineBusy)
  .filter(Number.isFinite);
const maxBusy = Math.max(0, ...busy) * 100;
const nginxVersion = nginxBin
  ? await new Promise((resolve) => {
      const c = spawn(nginxBin, ['-v'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let v = '';
      c.stderr.on('data', (d) => (v += d));
      c.on('exit', () => resolve(v.trim().replace('nginx version: ', '')));
    })
  : 'not installed';
const notes = [
  `Measured ${started.toISOString()} (${mode} mode, ${runs} run(s) per target, medians), node ${process.version}, ` +
    `${nginxVersion}, loopback on a ${cpus().length}-core machine.`,
  `Proxy CPU is utime+stime of the proxy process(es) from /proc over the steady window (nginx: master + worker), ` +
    `divided by the messages forwarded both ways in that window; RSS per tunnel is the proxy's VmRSS growth ` +
    `from before the first connection to the steady window (idle: after ${S.idle5000.settleMs} ms), divided by open tunnels.`,
  maxBusy > 85
    ? `WARNING: the machine was up to ${maxBusy.toFixed(0)} % busy during a steady-load window: figures include contention.`
    : `The machine was at most ${maxBusy.toFixed(0)} % busy during any steady-load window (above ~85 % the figures would measure contention; the upgrade windows are busy by design).`,
];
notes.push(
  `Steady-load runs whose round trip p50 reached ${CONTENDED_P50_MS} ms were queueing (contention): ` +
    'their medians leave them out while another run is left ("runs kept").',
);
if (stoppedEarly)
  notes.push('WARNING: stopped early at --max-minutes; some cells have fewer runs.');
if (failures > 0) notes.push(`WARNING: ${failures} run(s) failed; see the log.`);
const md = `${table}\n\n${notes.map((n) => `- ${n}`).join('\n')}\n`;
console.log(`\n${md}`);
mkdirSync(dirname(outMd), { recursive: true });
writeFileSync(outMd, md);
writeFileSync(
  outMd.replace(/\.md$/, '.json'),
  `${JSON.stringify({ mode, runs, started, scenarios: SCENARIOS, medians, results }, null, 2)}\n`,
);
console.log(`written to ${outMd}`);
const lost = targets.reduce((a, t) => a + (medians[t.name].lost || 0), 0);
process.exit(failures > 0 || lost > 0 ? 1 : 0);
