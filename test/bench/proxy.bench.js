#!/usr/bin/env node
// Edge proxy overhead: N concurrent WebSocket tunnels, each sending 50 messages/s of ~350-byte
// Twilio-like JSON (20 ms audio frames) to an echo worker, measured directly against the worker and
// then through the built proxy (proxy/dist/main.js) in the same run. Prints round-trip latency
// p50/p99, throughput, the proxy's RSS and CPU, and the proxy/direct ratios. Loopback only.
//
//   node test/bench/proxy.bench.js                 # 200 tunnels, 10 s per phase
//   BENCH_TUNNELS=100 BENCH_SECONDS=5 node test/bench/proxy.bench.js
//
// The echo worker runs in its own process (this file with --worker), so the load generator, the
// proxy and the worker do not share an event loop.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';

const TUNNELS = Number(process.env.BENCH_TUNNELS ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const WARMUP_MS = 1000;
const INTERVAL_MS = 20;
const root = fileURLToPath(new URL('../../', import.meta.url));

if (process.argv.includes('--worker')) {
  await runWorker();
} else {
  await main();
}

/** The echo worker: a ws server in noServer mode, /readyz, and /stats for its own CPU. */
async function runWorker() {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 65536 });
  const server = createServer((req, res) => {
    if (req.url === '/stats') {
      res.end(JSON.stringify({ cpu: process.cpuUsage(), rss: process.memoryUsage().rss }));
      return;
    }
    res.end('ok');
  });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {});
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
}

async function main() {
  const worker = spawn(process.execPath, [fileURLToPath(import.meta.url), '--worker'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const workerPort = (await firstJsonLine(worker, (l) => 'port' in l)).port;
  const proxy = spawn(process.execPath, ['proxy/dist/main.js'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: '0',
      ADMIN_HOST: '127.0.0.1',
      ADMIN_PORT: '0',
      MEDIA_BACKENDS: `127.0.0.1:${workerPort}`,
      // `listening` is an info line; the per-tunnel lines are read and dropped.
      LOG_LEVEL: 'info',
      DRAIN_TIMEOUT_MS: '5000',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let proxyListening;
  try {
    proxyListening = await firstJsonLine(proxy, (l) => l.msg === 'listening');
  } catch (err) {
    worker.kill('SIGKILL');
    throw err;
  }
  const admin = `http://127.0.0.1:${proxyListening.adminPort}`;

  console.log(
    `proxy benchmark: ${TUNNELS} tunnels × ${1000 / INTERVAL_MS} msg/s × ${SECONDS} s, ` +
      `~${sampleMessage(0, 0).length}-byte messages, node ${process.version}`,
  );

  const direct = await phase('direct', `ws://127.0.0.1:${workerPort}/media-stream/CA`, workerPort);
  const before = await proxyStats(admin);
  const t0 = performance.now();
  const proxied = await phase(
    'proxy',
    `ws://127.0.0.1:${proxyListening.port}/media-stream/CA`,
    workerPort,
  );
  const wallS = (performance.now() - t0) / 1000;
  const after = await proxyStats(admin);

  const proxyCpuPct = ((after.cpuS - before.cpuS) / wallS) * 100;
  console.log('');
  print(direct);
  print(proxied);
  console.log(
    `\nproxy process: RSS ${mb(after.rss)} MB (before the phase ${mb(before.rss)} MB), ` +
      `CPU ${proxyCpuPct.toFixed(1)} % of one core over the phase`,
  );
  console.log(
    `ratios proxy/direct: p50 ${(proxied.p50 / direct.p50).toFixed(2)}×, ` +
      `p99 ${(proxied.p99 / direct.p99).toFixed(2)}×, ` +
      `throughput ${(proxied.rate / direct.rate).toFixed(3)}×, ` +
      `added p50 ${(proxied.p50 - direct.p50).toFixed(3)} ms, added p99 ${(proxied.p99 - direct.p99).toFixed(3)} ms`,
  );
  if (proxied.lost > 0 || direct.lost > 0) {
    console.log(`WARNING: lost messages: direct ${direct.lost}, proxy ${proxied.lost}`);
  }

  proxy.kill('SIGTERM');
  const [code] = await once(proxy, 'exit');
  worker.kill('SIGTERM');
  await once(worker, 'exit');
  if (code !== 0) {
    console.error(`proxy exited with ${code} after SIGTERM (expected 0: all tunnels were closed)`);
    process.exit(1);
  }
  process.exit(proxied.lost > 0 || direct.lost > 0 ? 1 : 0);
}

/** Opens the tunnels, sends for SECONDS, and returns latency and throughput figures. */
async function phase(name, urlPrefix, workerPort) {
  const clients = [];
  for (let i = 0; i < TUNNELS; i += 50) {
    const batch = [];
    for (let j = i; j < Math.min(TUNNELS, i + 50); j++) batch.push(openClient(`${urlPrefix}${j}`));
    clients.push(...(await Promise.all(batch)));
  }
  const workerBefore = await workerStats(workerPort);
  const clientBefore = process.cpuUsage();
  const latencies = [];
  let received = 0;
  let sent = 0;
  let bytes = 0;
  const start = performance.now();
  const measureFrom = start + WARMUP_MS;
  const stopAt = start + WARMUP_MS + SECONDS * 1000;
  const timers = [];

  await new Promise((resolve) => {
    let running = clients.length;
    clients.forEach((c, index) => {
      // FIFO of send times: the worker echoes in order, so no parsing is needed to match.
      const pending = [];
      // A client is done once the sending window is over and every echo is back.
      const settle = (now) => {
        if (c.done || now < stopAt || pending.length > 0) return;
        c.done = true;
        if (--running === 0) resolve();
      };
      c.ws.on('message', () => {
        const t = pending.shift();
        const now = performance.now();
        if (t !== undefined && t >= measureFrom && t < stopAt) {
          latencies.push(now - t);
          received++;
        }
        settle(now);
      });
      let seq = 0;
      const tick = () => {
        const now = performance.now();
        if (now >= stopAt) {
          settle(now);
          return;
        }
        const message = sampleMessage(index, ++seq);
        pending.push(now);
        if (now >= measureFrom) {
          sent++;
          bytes += message.length;
        }
        c.ws.send(message);
      };
      // Spread the clients over the 20 ms frame period, like independent calls.
      const offset = setTimeout(
        () => {
          tick();
          timers.push(setInterval(tick, INTERVAL_MS));
        },
        (index * INTERVAL_MS) / clients.length,
      );
      timers.push(offset);
    });
    // Give up on stragglers a few seconds after the end (lost messages are reported).
    timers.push(setTimeout(resolve, WARMUP_MS + SECONDS * 1000 + 5000));
  });
  const elapsedS = SECONDS;
  for (const t of timers) clearTimeout(t);
  const workerAfter = await workerStats(workerPort);
  const clientCpu = process.cpuUsage(clientBefore);
  for (const c of clients) c.ws.close();
  await Promise.all(
    clients.map((c) => (c.ws.readyState === WebSocket.CLOSED ? undefined : once(c.ws, 'close'))),
  );

  latencies.sort((a, b) => a - b);
  const pct = (p) =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  const workerCpuS =
    (workerAfter.cpu.user +
      workerAfter.cpu.system -
      workerBefore.cpu.user -
      workerBefore.cpu.system) /
    1e6;
  return {
    name,
    sent,
    received,
    lost: sent - received,
    rate: received / elapsedS,
    mbps: (bytes * 2) / elapsedS / 1e6,
    p50: pct(50),
    p99: pct(99),
    max: latencies.at(-1) ?? NaN,
    workerCpuPct: (workerCpuS / (elapsedS + WARMUP_MS / 1000)) * 100,
    // The load generator shares the cores: when it nears 100 %, latency measures it too.
    clientCpuPct: ((clientCpu.user + clientCpu.system) / 1e6 / (elapsedS + WARMUP_MS / 1000)) * 100,
  };
}

function print(r) {
  console.log(
    `${r.name.padEnd(7)} ${String(r.received).padStart(7)} echoes  ${r.rate.toFixed(0).padStart(6)} msg/s  ` +
      `${r.mbps.toFixed(2)} MB/s both ways  rtt p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms  ` +
      `max ${r.max.toFixed(1)} ms  CPU worker ${r.workerCpuPct.toFixed(0)} % load generator ${r.clientCpuPct.toFixed(0)} %`,
  );
}

async function openClient(url) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('error', (err) => {
    console.error(`client error on ${url}: ${err.message}`);
  });
  await once(ws, 'open');
  return { ws, done: false };
}

/** A Twilio `media` message: 160 μ-law bytes as 216 base64 characters. */
function sampleMessage(call, seq) {
  return JSON.stringify({
    event: 'media',
    sequenceNumber: String(seq),
    streamSid: `MZ${String(call).padStart(32, '0')}`,
    media: {
      track: 'inbound',
      chunk: String(seq),
      timestamp: String(seq * 20),
      payload: '/'.repeat(216),
    },
  });
}

async function proxyStats(admin) {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const value = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { cpuS: value('process_cpu_seconds_total'), rss: value('process_resident_memory_bytes') };
}

async function workerStats(port) {
  return (await fetch(`http://127.0.0.1:${port}/stats`)).json();
}

function firstJsonLine(child, pred) {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error('no start-up line within 10 s')), 10_000);
    rl.on('line', (text) => {
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
    child.once('exit', (code) => reject(new Error(`process exited with ${code} before starting`)));
  });
}

function mb(bytes) {
  return (bytes / 1e6).toFixed(1);
}
