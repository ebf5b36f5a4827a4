import { concatPcm } from '@callgate/audio';
import { createLogger } from '@callgate/runtime';
import type { Logger } from '@callgate/runtime';
import { Call } from '../src/call.js';
import type { CallOptions, CallPacer, PacerFactory, PacerTick } from '../src/call.js';
import type { Agent, CallInfo, CallTransport } from '../src/types.js';

export type TransportEntry =
  | { type: 'audio'; frame: Int16Array }
  | { type: 'mark'; name: string }
  | { type: 'clear' }
  | { type: 'hangup'; reason: string };

/** A CallTransport that records everything; optionally echoes marks like Twilio does. */
export class FakeTransport implements CallTransport {
  readonly sampleRate: number;
  readonly log: TransportEntry[] = [];
  /** Set to a Call to echo each mark back (synchronously, like a fast caller). */
  echoTo: Call | undefined;

  constructor(sampleRate: number) {
    this.sampleRate = sampleRate;
  }

  sendAudio(frame: Int16Array): void {
    this.log.push({ type: 'audio', frame });
  }
  sendMark(name: string): void {
    this.log.push({ type: 'mark', name });
    this.echoTo?.receiveMark(name);
  }
  sendClear(): void {
    this.log.push({ type: 'clear' });
  }
  hangup(reason: string): void {
    this.log.push({ type: 'hangup', reason });
  }

  get frames(): Int16Array[] {
    return this.log.flatMap((e) => (e.type === 'audio' ? [e.frame] : []));
  }
  get marks(): string[] {
    return this.log.flatMap((e) => (e.type === 'mark' ? [e.name] : []));
  }
  count(type: TransportEntry['type']): number {
    return this.log.filter((e) => e.type === type).length;
  }
  /** Everything sent, as one signal. */
  audio(): Int16Array {
    return concat(this.frames);
  }
}

/** A pacer that ticks only when the test says so. */
export class ManualPacer implements CallPacer {
  running = false;
  #tick = 0;
  readonly #onTick: (info: PacerTick) => void;
  lateMs = 0;

  constructor(onTick: (info: PacerTick) => void) {
    this.#onTick = onTick;
  }
  start(): void {
    this.running = true;
  }
  stop(): void {
    this.running = false;
  }
  /** Delivers up to `n` ticks while running; returns how many were delivered. */
  tick(n = 1): number {
    let delivered = 0;
    while (delivered < n && this.running) {
      this.#onTick({ tick: this.#tick++, lateMs: this.lateMs });
      delivered++;
    }
    return delivered;
  }
  /** Ticks until the pacer stops itself (the queue ran dry). */
  drain(maxTicks = 100_000): number {
    return this.tick(maxTicks);
  }
}

export function manualPacerFactory(): { factory: PacerFactory; pacer: () => ManualPacer } {
  let pacer: ManualPacer | undefined;
  return {
    factory: (options) => (pacer = new ManualPacer(options.onTick)),
    pacer: () => {
      if (!pacer) throw new Error('no pacer created yet');
      return pacer;
    },
  };
}

export interface LogCapture {
  logger: Logger;
  lines: Array<Record<string, unknown>>;
  codes(): string[];
}

export function captureLogs(): LogCapture {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger({
    level: 'debug',
    stream: { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  });
  return {
    logger,
    lines,
    codes: () => lines.flatMap((l) => (typeof l.code === 'string' ? [l.code] : [])),
  };
}

export interface TestCall {
  call: Call;
  transport: FakeTransport;
  pacer: () => ManualPacer;
  logs: LogCapture;
}

export function makeCall(
  agent: Agent,
  options: {
    transportRate?: number;
    echoMarks?: boolean;
    callId?: string;
    extra?: Partial<CallOptions>;
  } = {},
): TestCall {
  const transport = new FakeTransport(options.transportRate ?? 8000);
  const logs = captureLogs();
  const { factory, pacer } = manualPacerFactory();
  const info: CallInfo = {
    callId: options.callId ?? 'CA1',
    transport: 'twilio',
    customParameters: {},
  };
  const call = new Call({
    info,
    agent,
    transport,
    logger: logs.logger,
    createPacer: factory,
    // One frame per tick keeps tick arithmetic in tests plain; the lead has its own tests.
    playbackLeadMs: 0,
    ...options.extra,
  });
  if (options.echoMarks) transport.echoTo = call;
  return { call, transport, pacer, logs };
}

/** Concatenates PCM chunks (the audio package's own). */
export const concat = concatPcm;

/** Splits a signal into chunks of `size` samples (the last may be shorter). */
export function chunks(pcm: Int16Array, size: number): Int16Array[] {
  const out: Int16Array[] = [];
  for (let i = 0; i < pcm.length; i += size) out.push(pcm.subarray(i, i + size));
  return out;
}

/** Deterministic PRNG (mulberry32), so noise-based tests are repeatable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** White noise at an RMS level in dBFS. */
export function noise(durationMs: number, rate: number, levelDbfs: number, seed = 1): Int16Array {
  const random = prng(seed);
  const n = Math.round((durationMs * rate) / 1000);
  const rms = 32768 * 10 ** (levelDbfs / 20);
  // Uniform in [-1, 1] has RMS 1/√3.
  const scale = rms * Math.sqrt(3);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = clamp(Math.round((random() * 2 - 1) * scale));
  return out;
}

/**
 * Speech-like signal: noise at `levelDbfs` (RMS of the unmodulated noise) amplitude-modulated at
 * a syllable rate of 4 Hz down to -30 dB between syllables.
 */
export function speechLike(
  durationMs: number,
  rate: number,
  levelDbfs = -20,
  seed = 7,
): Int16Array {
  const carrier = noise(durationMs, rate, levelDbfs, seed);
  const out = new Int16Array(carrier.length);
  for (let i = 0; i < carrier.length; i++) {
    const envelope = 0.03 + 0.97 * (0.5 - 0.5 * Math.cos((2 * Math.PI * 4 * i) / rate));
    out[i] = Math.round(carrier[i]! * envelope);
  }
  return out;
}

export function silence(durationMs: number, rate: number): Int16Array {
  return new Int16Array(Math.round((durationMs * rate) / 1000));
}

export function clamp(v: number): number {
  return v > 32767 ? 32767 : v < -32768 ? -32768 : v;
}

/** Feeds a signal to the call in chunks (default 20 ms at the transport rate). */
export function feed(call: Call, pcm: Int16Array, chunkSamples?: number): void {
  const size = chunkSamples ?? call.transportSampleRate / 50;
  for (const c of chunks(pcm, size)) call.receiveAudio(c);
}
