#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeWav, readWav } from '@callgate/audio';
import { errorCode } from '@callgate/runtime';
import { SimulatorError } from './errors.js';
import { simulateCall } from './simulate.js';
import { formatSummary } from './summary.js';
import { deriveTwimlUrl } from './twiml.js';
import type { CallSummary, ScheduledDtmf, SimulateCallOptions } from './types.js';

export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Aborting hangs up a running call (Ctrl-C in the bin wrapper). */
  signal?: AbortSignal;
}

export const USAGE = `Usage: npm run sim -- --url <ws(s)://host/media-stream/CA...> [options]

Places one simulated Twilio (or SansPBX) call and prints what happened.

Options:
  --url <url>              stream URL (Twilio: /media-stream/<CallSid>; SansPBX: /media-stream)
  --wav <file>             caller audio: 16-bit PCM WAV, any rate, mono or stereo (mixed to mono);
                           default: two short synthesized speech-like bursts
  --out <file>             write what the caller heard as an 8 kHz mono WAV
  --dtmf <list>            DTMF digits at times on the caller timeline, e.g. 5@2500,#@6000
  --param <k=v>            custom parameter for start.customParameters (repeatable)
  --provider <name>        twilio (default) or sanspbx
  --sample-rate <hz>       SansPBX line rate (default 8000)
  --call-sid <sid>         CallSid (default: from the URL path, else random CA...)
  --auth-token <token>     sign the webhook and the upgrade with X-Twilio-Signature
  --signature-url <url>    URL to sign for the upgrade (the public wss URL; default: --url)
  --twiml-url <url>        voice webhook to POST first (default: --url with ws->http,
                           wss->https and path /media-stream/twiml)
  --no-twiml               skip the voice webhook
  --no-follow-action       end the call when the server closes the stream, instead of
                           requesting the TwiML's <Connect action> URL like Twilio does
  --max-reconnects <n>     new streams per call at most, whatever the action answers (default 10)
  --hangup-after-ms <ms>   hang up at this time (default: audio length + tail)
  --tail-ms <ms>           keep listening after the audio ends (default 3000)
  --connect-timeout-ms <ms> handshake and webhook timeout (default 5000)
  --json                   print the summary as JSON instead of text
  -h, --help               show this help

Exit status: 0 when the call completed, 1 on failure (error code and a hint on stderr).
`;

/**
 * The CLI as a function: parses `argv`, places the call, prints the summary, writes `--out`, and
 * resolves with the exit code. Never calls `process.exit`, so tests run it in-process.
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  let options: SimulateCallOptions;
  let out: string | undefined;
  let json: boolean;
  try {
    const parsed = parseCliArgs(argv);
    if (parsed === 'help') {
      io.stdout.write(USAGE);
      return 0;
    }
    ({ options, out, json } = parsed);
    const wav = parsed.wav;
    if (wav !== undefined) {
      const audio = readWav(await readFile(wav));
      options.audio = toMono(audio.samples, audio.channels);
      options.audioSampleRate = audio.sampleRate;
    } else {
      options.audio = synthesizeBursts(8000);
      options.audioSampleRate = 8000;
    }
  } catch (err) {
    return fail(io, err);
  }
  if (io.signal) options.signal = io.signal;

  let summary: CallSummary;
  try {
    summary = await simulateCall(options);
  } catch (err) {
    return fail(io, err);
  }
  if (json) {
    const { replyAudio, ...rest } = summary;
    io.stdout.write(
      `${JSON.stringify({ ...rest, replyAudioSamples: replyAudio.length }, null, 2)}\n`,
    );
  } else {
    io.stdout.write(`${formatSummary(summary)}\n`);
  }
  if (out !== undefined) {
    try {
      await writeFile(
        out,
        encodeWav({
          sampleRate: summary.replyAudioSampleRate,
          channels: 1,
          samples: summary.replyAudio,
        }),
      );
    } catch (err) {
      return fail(io, err);
    }
    if (!json) io.stdout.write(`  wrote       ${out}\n`);
  }
  return 0;
}

interface ParsedCli {
  options: SimulateCallOptions;
  wav: string | undefined;
  out: string | undefined;
  json: boolean;
}

/** Turns argv into call options; throws SIM_ERR_USAGE with the reason. Exported for tests. */
export function parseCliArgs(argv: readonly string[]): ParsedCli | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        url: { type: 'string' },
        wav: { type: 'string' },
        out: { type: 'string' },
        dtmf: { type: 'string' },
        param: { type: 'string', multiple: true },
        provider: { type: 'string' },
        'sample-rate': { type: 'string' },
        'call-sid': { type: 'string' },
        'auth-token': { type: 'string' },
        'signature-url': { type: 'string' },
        'twiml-url': { type: 'string' },
        'no-twiml': { type: 'boolean' },
        'no-follow-action': { type: 'boolean' },
        'max-reconnects': { type: 'string' },
        'hangup-after-ms': { type: 'string' },
        'tail-ms': { type: 'string' },
        'connect-timeout-ms': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw usage(err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) return 'help';
  const provider = values.provider ?? 'twilio';
  if (provider !== 'twilio' && provider !== 'sanspbx') {
    throw usage(`--provider must be twilio or sanspbx, got ${provider}`);
  }
  const url = values.url ?? '';
  const twimlExplicit = values['twiml-url'];
  if (url === '' && (twimlExplicit === undefined || provider !== 'twilio')) {
    throw usage(
      '--url is required (or --twiml-url for a Twilio call whose TwiML names the stream)',
    );
  }
  if (url !== '' && !/^wss?:\/\//.test(url))
    throw usage(`--url must be ws:// or wss://, got ${url}`);
  const options: SimulateCallOptions = { url, provider };
  if (provider === 'twilio' && values['no-twiml'] !== true) {
    try {
      options.twimlUrl = twimlExplicit ?? deriveTwimlUrl(url);
    } catch {
      throw usage(`cannot derive a webhook URL from ${url}; pass --twiml-url or --no-twiml`);
    }
  }
  const customParameters: Record<string, string> = {};
  for (const kv of values.param ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw usage(`--param needs key=value, got ${kv}`);
    customParameters[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  if (Object.keys(customParameters).length > 0) options.customParameters = customParameters;
  if (values.dtmf !== undefined) options.dtmf = parseDtmfList(values.dtmf);
  if (values['sample-rate'] !== undefined) {
    options.sansPbxSampleRate = parseMs(values['sample-rate'], '--sample-rate');
  }
  if (values['call-sid'] !== undefined) options.callSid = values['call-sid'];
  if (values['auth-token'] !== undefined) options.authToken = values['auth-token'];
  if (values['signature-url'] !== undefined) options.signatureUrl = values['signature-url'];
  if (values['hangup-after-ms'] !== undefined) {
    options.hangupAfterMs = parseMs(values['hangup-after-ms'], '--hangup-after-ms');
  }
  if (values['no-follow-action'] === true) options.followAction = false;
  if (values['max-reconnects'] !== undefined) {
    options.maxReconnects = parseMs(values['max-reconnects'], '--max-reconnects');
  }
  if (values['tail-ms'] !== undefined) options.tailMs = parseMs(values['tail-ms'], '--tail-ms');
  if (values['connect-timeout-ms'] !== undefined) {
    options.connectTimeoutMs = parseMs(values['connect-timeout-ms'], '--connect-timeout-ms');
  }
  return { options, wav: values.wav, out: values.out, json: values.json === true };
}

/** `5@2500,#@6000` → [{ digit: '5', atMs: 2500 }, { digit: '#', atMs: 6000 }]. */
export function parseDtmfList(list: string): ScheduledDtmf[] {
  return list
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0)
    .map((item) => {
      const m = /^([0-9A-Da-d*#])@(\d+)$/.exec(item);
      if (m === null) throw usage(`--dtmf entries look like 5@2500, got ${item}`);
      return { digit: (m[1] ?? '').toUpperCase(), atMs: Number(m[2]) };
    });
}

function parseMs(value: string, flag: string): number {
  if (!/^\d+$/.test(value)) throw usage(`${flag} needs a whole number, got ${value}`);
  return Number(value);
}

function usage(message: string): SimulatorError {
  return new SimulatorError('SIM_ERR_USAGE', message);
}

/** Averages interleaved channels into mono. */
export function toMono(samples: Int16Array, channels: number): Int16Array {
  if (channels === 1) return samples;
  const frames = Math.floor(samples.length / channels);
  const mono = new Int16Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += samples[i * channels + c] ?? 0;
    mono[i] = Math.round(sum / channels);
  }
  return mono;
}

/**
 * Caller audio when no --wav is given: two speech-like bursts (a gliding 120-160 Hz voice with
 * harmonics and a 4 Hz syllable envelope) separated by 2.2 s of digital silence, so a voice
 * agent hears two utterances and the summary reports two reply latencies.
 */
export function synthesizeBursts(sampleRate: number): Int16Array {
  const bursts = [
    { startMs: 200, durationMs: 800 },
    // The parrot answers the first burst from ~1.7 s for ~0.9 s; start the second after that, so
    // the default call is a conversation and not a barge-in.
    { startMs: 3200, durationMs: 1000 },
  ];
  const totalMs = 4400;
  const pcm = new Int16Array(Math.round((totalMs * sampleRate) / 1000));
  for (const burst of bursts) {
    const start = Math.round((burst.startMs * sampleRate) / 1000);
    const length = Math.round((burst.durationMs * sampleRate) / 1000);
    let phase = 0;
    for (let i = 0; i < length; i++) {
      const t = i / sampleRate;
      const f0 = 140 + 20 * Math.sin(2 * Math.PI * 0.7 * t);
      phase += (2 * Math.PI * f0) / sampleRate;
      let v = 0;
      for (let h = 1; h <= 12 && h * f0 < sampleRate / 2.2; h++) v += Math.sin(h * phase) / h;
      const syllable = 0.55 + 0.45 * Math.sin(2 * Math.PI * 4 * t - Math.PI / 2);
      const edge = Math.min(1, i / (0.03 * sampleRate), (length - i) / (0.03 * sampleRate));
      pcm[start + i] = Math.round(v * syllable * edge * 6000);
    }
  }
  return pcm;
}

const HINTS: Record<string, (err: unknown) => string> = {
  SIM_ERR_CONNECT: () =>
    'nothing is listening there: is `npm start` running? (and is --url right?)',
  SIM_ERR_HANDSHAKE: (err) => {
    const status = err instanceof SimulatorError ? err.status : undefined;
    if (status === 401 || status === 403) {
      return 'the signature was refused: check --auth-token and --signature-url (the public wss URL)';
    }
    if (status === 404) return 'the path is not routed to a media worker (Twilio error 31920)';
    if (status === 503) return 'no worker is up, or it is draining: retry in a moment';
    return 'the server did not upgrade the request to a WebSocket (Twilio error 31920)';
  },
  SIM_ERR_TIMEOUT: () => 'the server accepted the connection but did not answer in time',
  SIM_ERR_TWIML: () =>
    'the voice webhook failed: pass --no-twiml to skip it, or --twiml-url to point elsewhere',
  SIM_ERR_ABORTED: () => 'interrupted before the call was up',
  SIM_ERR_USAGE: () => 'see --help',
  SIM_ERR_INVALID_OPTIONS: () => 'see --help',
  AUDIO_ERR_WAV: () => '--wav needs a 16-bit PCM WAV file',
  ENOENT: () => 'check the --wav path',
};

function fail(io: CliIo, err: unknown): number {
  const code = errorCode(err, 'SIM_ERR_UNKNOWN');
  const message = err instanceof Error ? err.message : String(err);
  io.stderr.write(`error ${code}: ${message}\n`);
  const hint = HINTS[code]?.(err);
  if (hint !== undefined) io.stderr.write(`hint: ${hint}\n`);
  return 1;
}

// The bin wrapper: the only place that touches the process (argv, SIGINT, exit code).
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const controller = new AbortController();
  // First Ctrl-C hangs up cleanly (stop + close) and still prints the summary; a second one kills.
  process.once('SIGINT', () => controller.abort());
  void main(process.argv.slice(2), {
    stdout: process.stdout,
    stderr: process.stderr,
    signal: controller.signal,
  }).then((code) => {
    process.exitCode = code;
  });
}
