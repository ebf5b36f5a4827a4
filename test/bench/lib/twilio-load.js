// Light Twilio callers for the media-worker benchmark: N calls on raw sockets in one process, each
// sending `connected`, `start`, then one μ-law `media` frame every 20 ms (talk / silence cycle, so
// a parrot has something to repeat), echoing every `mark` back as Twilio does, and timing every
// outbound `media` frame the worker sends. Reads the worker's CPU and RSS from /proc at the edges of
// its steady window. Input: one JSON argument; output: one JSON line on stdout.
import { performance } from 'node:perf_hooks';
import { mulawEncode } from '../../../packages/audio/dist/index.js';
import { openWs, pool } from './client.js';
import { cpuSeconds, machineTicks, rssBytes } from './proc.js';
import { OP_CLOSE, OP_TEXT, clientFrame } from './ws.js';

const o = JSON.parse(process.argv[2]);
const { calls: n, port, workerPid, rampMs, warmMs, windowMs } = o;
const FRAME_MS = 20;
const TALK_FRAMES = 50; // 1 s of speech-band noise ...
const CYCLE_FRAMES = 175; // ... then 2.5 s of silence: a parrot replies in the silence
const FIELD_MEDIA = Buffer.from('"event":"media"');
const FIELD_MARK = Buffer.from('"event":"mark"');
const FIELD_CLEAR = Buffer.from('"event":"clear"');

// One talk/silence cycle of μ-law payloads (base64), shared by every call.
const payloads = [];
let seed = 0x2545f491;
for (let f = 0; f < CYCLE_FRAMES; f++) {
  const pcm = new Int16Array(160);
  if (f < TALK_FRAMES) {
    for (let i = 0; i < pcm.length; i++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      pcm[i] = Math.round((seed / 2 ** 32 - 0.5) * 0.5 * 32767);
    }
  }
  payloads.push(Buffer.from(mulawEncode(pcm)).toString('base64'));
}

const hex = (i, tag) => (o.runTag * 1e6 + i).toString(16).padStart(32 - tag.length, '0');
const lateness = new Float64Array(Math.ceil((n * windowMs) / FRAME_MS) * 2 + 1000);
let samples = 0;
let inWindow = false;
let framesOut = 0;
let framesOutWindow = 0;
let maxStallMs = 0;
let marks = 0;
let clears = 0;
let sentMedia = 0;
let failed = 0;
let dropped = 0;

const calls = [];
function makeCall(i) {
  const callSid = `CA${hex(i, '')}`;
  const streamSid = `MZ${hex(i, '')}`;
  const call = {
    i,
    callSid,
    streamSid,
    socket: undefined,
    seq: 0,
    chunk: 0,
    last: -1,
    closed: false,
  };
  call.onFrame = (op, buf, start, end) => {
    if (op === -1) {
      if (!call.closed) dropped++;
      call.closed = true;
      return;
    }
    if (op !== OP_TEXT) return;
    const head = buf.subarray(start, Math.min(end, start + 48));
    if (head.includes(FIELD_MEDIA)) {
      const now = performance.now();
      framesOut++;
      // Lateness of a frame: how much later than 20 ms after the one before it it came. A stall of
      // the worker shows on the first frame after it; the burst that catches up counts as 0.
      if (call.last >= 0) {
        const gap = now - call.last;
        if (inWindow && gap < 1000) {
          framesOutWindow++;
          const late = Math.max(0, gap - FRAME_MS);
          if (samples < lateness.length) lateness[samples++] = late;
          if (late > maxStallMs) maxStallMs = late;
        }
      }
      call.last = now;
    } else if (head.includes(FIELD_MARK)) {
      marks++;
      const msg = JSON.parse(buf.toString('utf8', start, end));
      // Twilio echoes a mark once the audio before it has played; here at once.
      send(call, { event: 'mark', sequenceNumber: String(++call.seq), streamSid, mark: msg.mark });
    } else if (head.includes(FIELD_CLEAR)) {
      clears++;
    }
  };
  return call;
}

function send(call, obj) {
  if (call.socket && !call.closed) call.socket.write(clientFrame(OP_TEXT, JSON.stringify(obj)));
}

function sendMedia(call) {
  const k = call.chunk++;
  const s = ++call.seq;
  const msg = `{"event":"media","sequenceNumber":"${s}","media":{"track":"inbound","chunk":"${k + 1}","timestamp":"${k * FRAME_MS}","payload":"${payloads[k % CYCLE_FRAMES]}"},"streamSid":"${call.streamSid}"}`;
  if (call.socket && !call.closed) {
    call.socket.write(clientFrame(OP_TEXT, msg));
    sentMedia++;
  }
}

const head = (path) =>
  `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
  `User-Agent: Twilio.TmeWs/1.0\r\n\r\n`;

// A 20-slot wheel: call i sends in slot i mod 20, so the calls spread over the frame period.
const wheel = Array.from({ length: FRAME_MS }, () => []);
let sending = true;
const t0 = performance.now();
let slot = 0;
let due = t0;
let timer;
const pump = () => {
  const now = performance.now();
  while (sending && due <= now) {
    for (const call of wheel[slot]) sendMedia(call);
    slot = (slot + 1) % FRAME_MS;
    due += 1;
  }
  if (sending) timer = setTimeout(pump, Math.max(0, due - performance.now()));
};
pump();

// Calls arrive over `rampMs`, at most 50 handshakes in flight.
await pool(n, 50, async (i) => {
  const call = makeCall(i);
  calls.push(call);
  const wait = t0 + (i / n) * rampMs - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  try {
    call.socket = await openWs(port, head(`/media-stream/${call.callSid}`), call.onFrame);
  } catch {
    failed++;
    return;
  }
  send(call, { event: 'connected', protocol: 'Call', version: '1.0.0' });
  send(call, {
    event: 'start',
    sequenceNumber: String(++call.seq),
    streamSid: call.streamSid,
    start: {
      streamSid: call.streamSid,
      accountSid: `AC${hex(0, '')}`,
      callSid: call.callSid,
      tracks: ['inbound'],
      customParameters: {},
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
    },
  });
  wheel[i % FRAME_MS].push(call);
});

const delay = (ms) => new Promise((r) => setTimeout(r, ms));
const rampLeft = t0 + rampMs - performance.now();
if (rampLeft > 0) await delay(rampLeft);
await delay(warmMs);
const a = {
  t: performance.now(),
  cpu: cpuSeconds(workerPid),
  m: machineTicks(),
  self: cpuSeconds(process.pid),
};
const elu0 = performance.eventLoopUtilization();
process.kill(workerPid, 'SIGUSR2'); // the worker's loop probe: start of the window
inWindow = true;
await delay(windowMs);
inWindow = false;
const b = {
  t: performance.now(),
  cpu: cpuSeconds(workerPid),
  m: machineTicks(),
  self: cpuSeconds(process.pid),
};
const elu = performance.eventLoopUtilization(elu0).utilization;
process.kill(workerPid, 'SIGUSR2'); // end of the window: the probe writes its figures
const rss = rssBytes(workerPid);
const live = calls.filter((c) => c.socket && !c.closed).length;
sending = false;
clearTimeout(timer);
for (const call of calls) {
  send(call, {
    event: 'stop',
    sequenceNumber: String(++call.seq),
    streamSid: call.streamSid,
    stop: { accountSid: `AC${hex(0, '')}`, callSid: call.callSid },
  });
  call.closed = true;
  call.socket?.end(clientFrame(OP_CLOSE, Buffer.from([0x03, 0xe8])));
}
const lat = lateness.subarray(0, samples).sort();
const pct = (p) => lat[Math.min(samples - 1, Math.floor((p / 100) * samples))] ?? NaN;
const windowS = (b.t - a.t) / 1000;
process.stdout.write(
  `${JSON.stringify({
    ok: true,
    calls: n,
    live,
    failed,
    dropped,
    windowS,
    workerCpuS: b.cpu - a.cpu,
    generatorCpuS: b.self - a.self,
    generatorElu: elu,
    machineBusy: (b.m.busy - a.m.busy) / (b.m.total - a.m.total),
    rss,
    sentMedia,
    framesOut,
    framesOutWindow,
    latenessP50: pct(50),
    latenessP99: pct(99),
    latenessMax: maxStallMs,
    marks,
    clears,
  })}\n`,
);
setTimeout(() => process.exit(0), 300);
