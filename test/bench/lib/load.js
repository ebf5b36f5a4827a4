// The benchmark's load generator: Twilio-shaped WebSocket callers on raw sockets (one process, so
// its own CPU and event-loop use can be read and reported). It reads the CPU and RSS of the
// processes under test from /proc at the edges of its steady window, so the window is exactly the
// one its message counts cover. Input: one JSON argument; output: one JSON line on stdout.
//   node test/bench/lib/load.js '{"scenario":"load","port":8080,...}'
import { createHmac } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { machineTicks, sumCpu, sumRss } from './proc.js';
import { openWs, pool } from './client.js';
import { OP_CLOSE, OP_TEXT, clientFrame } from './ws.js';

const o = JSON.parse(process.argv[2]);
const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='; // any 16 bytes in base64 will do; the server hashes it
const MESSAGE_BYTES = 400;
const CLOSE_FRAME_PAYLOAD = Buffer.from([0x03, 0xe8]); // 1000

/** The request path of connection `i`: a CallSid or a test-agent session id. */
function pathOf(i) {
  const hex = (o.runTag * 1e7 + i).toString(16).padStart(32, '0');
  return o.route === 'test-agent' ? `/test-agent/ta${hex}` : `/media-stream/CA${hex}`;
}

function requestHead(path) {
  // Twilio signs the public wss:// URL; the proxy checks it on the media route ("everything on").
  const sig = o.signToken
    ? `X-Twilio-Signature: ${createHmac('sha1', o.signToken)
        .update(o.signOrigin + path)
        .digest('base64')}\r\n`
    : '';
  return (
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n` +
    `User-Agent: TwilioProxy/1.1\r\n${sig}\r\n`
  );
}

function snapshot() {
  return {
    t: performance.now(),
    target: sumCpu(o.pids.target),
    backend: sumCpu(o.pids.backend),
    self: sumCpu([process.pid]),
    machine: machineTicks(),
    elu: performance.eventLoopUtilization(),
  };
}

function deltas(a, b) {
  const s = (b.t - a.t) / 1000;
  return {
    windowS: s,
    targetCpuS: b.target - a.target,
    backendCpuS: b.backend - a.backend,
    generatorCpuS: b.self - a.self,
    generatorElu: performance.eventLoopUtilization(b.elu, a.elu).utilization,
    machineBusy: (b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total),
  };
}

const delay = (ms) => new Promise((r) => setTimeout(r, ms));
const targetRss = () => (o.pids.target.length > 0 ? sumRss(o.pids.target) : NaN);

async function openAll(n, onFrameFor) {
  const conns = new Array(n);
  let failed = 0;
  await pool(n, o.inFlight ?? 100, async (i) => {
    try {
      conns[i] = await openWs(o.port, requestHead(pathOf(i)), onFrameFor(i));
    } catch {
      failed++;
    }
  });
  return { conns, failed };
}

// ---- scenario: steady Twilio-shaped load -------------------------------------------------------

async function load() {
  const { conns: n, intervalMs, warmMs, windowMs, drainMs = 3000 } = o;
  const rssBefore = targetRss();
  // Per connection: FIFO of send times (the echo comes back in order) in a ring.
  const RING = 256;
  const ring = new Float64Array(n * RING);
  const head = new Uint32Array(n);
  const tail = new Uint32Array(n);
  const seq = new Uint32Array(n);
  const maxSamples = Math.ceil((n * (windowMs + 1000)) / intervalMs) + 1000;
  const rtt = new Float64Array(maxSamples);
  let samples = 0;
  let inWindow = false;
  let sendWindowStart = Infinity;
  let sendWindowEnd = Infinity;
  let sent = 0;
  let received = 0;
  let windowMsgs = 0;
  let dropped = 0;
  let sending = true;
  let drainResolve = () => {};

  const onFrameFor = (i) => (op) => {
    if (op === OP_TEXT) {
      const now = performance.now();
      const t = ring[i * RING + (tail[i] % RING)];
      tail[i]++;
      received++;
      if (inWindow) windowMsgs++;
      if (t >= sendWindowStart && t < sendWindowEnd && samples < maxSamples)
        rtt[samples++] = now - t;
      if (!sending && received === sent) drainResolve();
    } else if (op === -1) {
      dropped++;
    }
  };
  const { conns, failed } = await openAll(n, onFrameFor);
  const streamSid = (i) => `MZ${(o.runTag * 1e7 + i).toString(16).padStart(32, '0')}`;
  const sids = Array.from({ length: n }, (_, i) => streamSid(i));
  const fixed = `{"event":"media","sequenceNumber":"1000","media":{"track":"inbound","chunk":"1000","timestamp":"20000","payload":""},"streamSid":"${sids[0]}"}`;
  let payload = '';
  const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let k = 0; k < MESSAGE_BYTES - fixed.length; k++) payload += B64[(k * 37) % 64];
  const send = (i, now) => {
    const c = conns[i];
    if (c === undefined || c.destroyed) return;
    const s = ++seq[i];
    const msg = `{"event":"media","sequenceNumber":"${s}","media":{"track":"inbound","chunk":"${s}","timestamp":"${s * 20}","payload":"${payload}"},"streamSid":"${sids[i]}"}`;
    ring[i * RING + (head[i] % RING)] = now;
    head[i]++;
    sent++;
    if (inWindow) windowMsgs++;
    c.write(clientFrame(OP_TEXT, msg));
  };

  // A timing wheel of 1 ms slots over one interval; connection i sends in slot i mod slots, so the
  // calls are spread evenly over the frame period like independent calls.
  const slots = Math.max(1, Math.round(intervalMs));
  const wheel = Array.from({ length: slots }, () => []);
  for (let i = 0; i < n; i++) wheel[i % slots].push(i);
  const t0 = performance.now();
  let slot = 0;
  let due = t0;
  let timer;
  const pump = () => {
    const now = performance.now();
    while (sending && due <= now) {
      for (const i of wheel[slot]) send(i, now);
      slot = (slot + 1) % slots;
      due += intervalMs / slots;
    }
    if (sending) timer = setTimeout(pump, Math.max(0, due - performance.now()));
  };
  pump();

  await delay(warmMs);
  const a = snapshot();
  inWindow = true;
  sendWindowStart = a.t;
  await delay(windowMs);
  inWindow = false;
  const b = snapshot();
  sendWindowEnd = b.t;
  const rssActive = targetRss();
  const backendRss = sumRss(o.pids.backend);
  sending = false;
  clearTimeout(timer);
  if (received < sent) {
    await Promise.race([new Promise((r) => (drainResolve = r)), delay(drainMs)]);
  }
  const lat = rtt.subarray(0, samples).sort();
  const pct = (p) => lat[Math.min(samples - 1, Math.floor((p / 100) * samples))] ?? NaN;
  const open = conns.filter((c) => c !== undefined && !c.destroyed).length;
  for (const c of conns) c?.destroy();
  return {
    ...deltas(a, b),
    conns: n,
    open,
    failedUpgrades: failed,
    dropped,
    sent,
    received,
    lost: sent - received,
    windowMsgs,
    rttP50: pct(50),
    rttP99: pct(99),
    rttP999: pct(99.9),
    rttSamples: samples,
    rssBefore,
    rssActive,
    backendRss,
    t0,
  };
}

// ---- scenario: idle tunnels --------------------------------------------------------------------

async function idle() {
  const rssBefore = targetRss();
  let dropped = 0;
  const { conns, failed } = await openAll(o.conns, () => (op) => {
    if (op === -1) dropped++;
  });
  await delay(o.settleMs);
  const rssIdle = targetRss();
  const open = conns.filter((c) => c !== undefined && !c.destroyed).length;
  for (const c of conns) c?.destroy();
  return { conns: o.conns, open, failedUpgrades: failed, dropped, rssBefore, rssIdle };
}

// ---- scenario: upgrade rate --------------------------------------------------------------------

async function upgrades() {
  const { total, warm, inFlight } = o;
  let done = 0;
  let failed = 0;
  const start = snapshot();
  let a;
  let b;
  const closeFrame = () => clientFrame(OP_CLOSE, CLOSE_FRAME_PAYLOAD);
  await pool(total, inFlight, async (i) => {
    try {
      const socket = await openWs(o.port, requestHead(pathOf(i)), (op) => {
        if (op === OP_CLOSE) socket.end();
      });
      // Handshake done: a normal close (the close frame goes through the tunnel), then the next one.
      socket.end(closeFrame());
      socket.setTimeout(5000, () => socket.destroy());
      done++;
    } catch {
      failed++;
    }
    if (done + failed === warm) a = snapshot();
    if (done + failed === total) b = snapshot();
  });
  a ??= snapshot();
  b ??= snapshot();
  const d = deltas(a, b);
  return {
    ...d,
    // The warm-up upgrades: a fresh Node proxy compiles its hot paths during these.
    warmCpuS: a.target - start.target,
    warmS: (a.t - start.t) / 1000,
    total,
    measured: total - warm,
    done,
    failed,
    perSecond: (total - warm) / d.windowS,
  };
}

const run = { load, idle, upgrades }[o.scenario];
const result = await run();
process.stdout.write(`${JSON.stringify({ ok: true, scenario: o.scenario, ...result })}\n`);
// Let the last writes and FINs go out, then leave (open sockets do not keep us here).
setTimeout(() => process.exit(0), 100);
