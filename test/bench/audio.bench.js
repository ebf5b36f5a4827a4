// Audio codec benchmark: how many concurrent calls one core can carry through the per-frame path
// (μ-law decode/encode, 8 kHz → 16 kHz → 8 kHz resampling), against naive baselines in the same run.
// "ours" is what a call runs: `createResampler`, which picks the half-band filter for 2:1; the
// general windowed-sinc `Resampler` (any ratio) has a row of its own.
// A call needs 50 frames/s (20 ms frames) in each direction. Run after `npx tsc -b packages/audio`:
//   node test/bench/audio.bench.js
import { performance } from 'node:perf_hooks';
import {
  Resampler,
  createResampler,
  frameSamples,
  mulawDecode,
  mulawEncode,
  tone,
} from '../../packages/audio/dist/index.js';

const RATE = 8000;
const SECONDS = 60;
const FRAME = frameSamples(RATE); // 160
const FRAMES = (SECONDS * 1000) / 20; // 3000 frames = one minute of one call
const FRAMES_PER_SECOND_NEEDED = 50;
const ROUNDS = 5;

// One minute of speech-band test audio: a few tones plus deterministic noise.
const minute = tone([220, 700, 1900, 3100], SECONDS * 1000, RATE, 0.6);
let seed = 12345;
for (let i = 0; i < minute.length; i++) {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  minute[i] = Math.max(-32768, Math.min(32767, minute[i] + ((seed % 2001) - 1000)));
}
const frames = Array.from({ length: FRAMES }, (_, i) =>
  minute.subarray(i * FRAME, (i + 1) * FRAME),
);
const mulawFrames = frames.map((f) => mulawEncode(f));

// ---- Naive baselines, written here on purpose ----------------------------------------------------

/** μ-law encode by formula, per sample, no lookup table (the usual JS snippet done right). */
function naiveMulawEncode(pcm) {
  const out = new Uint8Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) {
    let s = pcm[i];
    let sign = 0;
    if (s < 0) {
      sign = 0x80;
      s = -s;
    }
    if (s > 32635) s = 32635;
    s += 0x84;
    let exponent = 7;
    for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
    const mantissa = (s >> (exponent + 3)) & 0x0f;
    out[i] = ~(sign | (exponent << 4) | mantissa) & 0xff;
  }
  return out;
}

/** μ-law decode by formula, per sample. */
function naiveMulawDecode(bytes) {
  const out = new Int16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const u = ~bytes[i] & 0xff;
    const e = (u >> 4) & 7;
    const mag = ((((u & 0x0f) << 3) + 0x84) << e) - 0x84;
    out[i] = u & 0x80 ? -mag : mag;
  }
  return out;
}

/** Linear interpolation ×2 with one sample of state; decimation ÷2 by dropping samples (no filter). */
function createNaiveResampler() {
  let last = 0;
  return {
    up(pcm) {
      const out = new Int16Array(pcm.length * 2);
      for (let i = 0; i < pcm.length; i++) {
        const s = pcm[i];
        out[2 * i] = (last + s) >> 1;
        out[2 * i + 1] = s;
        last = s;
      }
      return out;
    },
    down(pcm) {
      const out = new Int16Array(pcm.length >> 1);
      for (let i = 0; i < out.length; i++) out[i] = pcm[2 * i + 1];
      return out;
    },
  };
}

// ---- Measurement ---------------------------------------------------------------------------------

let sink = 0; // keeps results alive so the JIT cannot drop the work

/** Runs `perMinute` ROUNDS times (after a warm-up) and returns the best frames/s. */
function measure(perMinute) {
  perMinute();
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    perMinute();
    best = Math.min(best, performance.now() - t0);
  }
  return (FRAMES / best) * 1000;
}

const cases = [
  {
    name: 'μ-law decode + encode',
    ours: () => {
      for (const b of mulawFrames) sink += mulawEncode(mulawDecode(b))[0];
    },
    naive: () => {
      for (const b of mulawFrames) sink += naiveMulawEncode(naiveMulawDecode(b))[0];
    },
  },
  {
    name: 'resample 8k → 16k → 8k (half-band)',
    ours: () => {
      const up = createResampler(8000, 16000);
      const down = createResampler(16000, 8000);
      for (const f of frames) sink += down.process(up.process(f)).length;
    },
    naive: () => {
      const r = createNaiveResampler();
      for (const f of frames) sink += r.down(r.up(f)).length;
    },
  },
  {
    name: 'resample 8k → 16k → 8k (general Resampler)',
    ours: () => {
      const up = new Resampler(8000, 16000);
      const down = new Resampler(16000, 8000);
      for (const f of frames) sink += down.process(up.process(f)).length;
    },
    naive: () => {
      const r = createNaiveResampler();
      for (const f of frames) sink += r.down(r.up(f)).length;
    },
  },
  {
    name: 'full frame path (decode, up, down, encode)',
    ours: () => {
      const up = createResampler(8000, 16000);
      const down = createResampler(16000, 8000);
      for (const b of mulawFrames) sink += mulawEncode(down.process(up.process(mulawDecode(b))))[0];
    },
    naive: () => {
      const r = createNaiveResampler();
      for (const b of mulawFrames) sink += naiveMulawEncode(r.down(r.up(naiveMulawDecode(b))))[0];
    },
  },
];

const fmt = (n) => Math.round(n).toLocaleString('en-US');
console.log(
  `audio bench: ${SECONDS} s of 8 kHz audio = ${FRAMES} frames of ${FRAME} samples; a call needs ` +
    `${FRAMES_PER_SECOND_NEEDED} frames/s; best of ${ROUNDS} rounds (node ${process.version})\n`,
);
console.log(
  'case'.padEnd(46) +
    'ours frames/s'.padStart(15) +
    'calls/core'.padStart(12) +
    'naive frames/s'.padStart(16) +
    'calls/core'.padStart(12) +
    'ours/naive'.padStart(12),
);
for (const c of cases) {
  const ours = measure(c.ours);
  const naive = measure(c.naive);
  console.log(
    c.name.padEnd(46) +
      fmt(ours).padStart(15) +
      fmt(ours / FRAMES_PER_SECOND_NEEDED).padStart(12) +
      fmt(naive).padStart(16) +
      fmt(naive / FRAMES_PER_SECOND_NEEDED).padStart(12) +
      (ours / naive).toFixed(2).padStart(12),
  );
}

// What the baseline's speed costs: a 5 kHz tone at 16 kHz should vanish going to 8 kHz (it is above
// the 4 kHz Nyquist). Dropping samples folds it to 3 kHz at full level; the windowed-sinc removes it.
function levelDb(pcm, f, rate) {
  const w = 2 * Math.cos((2 * Math.PI * f) / rate);
  let s1 = 0;
  let s2 = 0;
  for (const x of pcm) {
    const s0 = x + w * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const amp = (2 * Math.sqrt(Math.max(0, s1 * s1 + s2 * s2 - w * s1 * s2))) / pcm.length / 32767;
  return amp > 0 ? 20 * Math.log10(amp / 0.5) : -Infinity;
}
const alias16k = tone([5000], 200, 16000, 0.5);
const oursAlias = createResampler(16000, 8000).process(alias16k).subarray(400);
const generalAlias = new Resampler(16000, 8000).process(alias16k).subarray(400);
const naiveAlias = createNaiveResampler().down(alias16k).subarray(400);
console.log(
  `\nalias check, 5 kHz at 16 kHz → 8 kHz, level at the 3 kHz alias: half-band ` +
    `${levelDb(oursAlias, 3000, 8000).toFixed(1)} dB, general ` +
    `${levelDb(generalAlias, 3000, 8000).toFixed(1)} dB, naive ${levelDb(naiveAlias, 3000, 8000).toFixed(1)} dB`,
);
if (sink === 0.5) console.log(''); // never true; reads sink
