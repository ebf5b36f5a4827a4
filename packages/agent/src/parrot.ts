import { dtmfFrequencies, dtmfTone } from '@callgate/audio';
import type { Agent, AgentCall, AgentSession } from './types.js';
import { EnergyVad } from './vad.js';

export interface ParrotOptions {
  /** Caller silence that ends an utterance. Default 700. */
  endSilenceMs?: number;
  /** Shorter utterances are ignored (clicks, coughs). Default 200. */
  minUtteranceMs?: number;
  /** Longer utterances are said back anyway at this length. Default 15000. */
  maxUtteranceMs?: number;
  /** Audio kept from before speech was detected, so the first syllable is not cut. Default 100. */
  preRollMs?: number;
  /** Silence kept after the last voiced frame. Default 100. */
  tailMs?: number;
  /** Length of the tone said back for each DTMF digit. Default 200. */
  dtmfToneMs?: number;
}

const VAD_START_MS = 60;

/**
 * The default agent: says back what the caller said. Each utterance (energy VAD) is recorded
 * with a little pre-roll and said back as one utterance when the caller stops. Speech that starts
 * while the parrot is talking clears the reply at once (barge-in). Each DTMF digit is answered
 * with its own tone; `#` hangs up.
 */
export function createParrotAgent(options: ParrotOptions = {}): Agent {
  const endSilenceMs = options.endSilenceMs ?? 700;
  const minUtteranceMs = options.minUtteranceMs ?? 200;
  const maxUtteranceMs = options.maxUtteranceMs ?? 15_000;
  const preRollMs = options.preRollMs ?? 100;
  const tailMs = options.tailMs ?? 100;
  const dtmfToneMs = options.dtmfToneMs ?? 200;
  return {
    name: 'parrot',
    start(call: AgentCall): AgentSession {
      const rate = call.sampleRate;
      const vad = new EnergyVad({
        sampleRate: rate,
        startMs: VAD_START_MS,
        endSilenceMs,
        minSpeechMs: minUtteranceMs,
        maxSpeechMs: maxUtteranceMs,
      });
      // Frames before the start event: the voiced onset itself plus the pre-roll.
      const keepBeforeMs = VAD_START_MS + preRollMs;
      // Caller audio is copied into the parrot's own arrays, not kept as the frames it came in:
      // a kept 20 ms frame would outlive the young generation and wait for a full GC, and costs
      // V8 about as much bookkeeping again as its samples. `recent` holds the frames heard before
      // speech started (their lengths in `recentLengths`, oldest first) from `recentStart`;
      // `recording` the utterance being heard. `recent` has room for the pre-roll and two 20 ms
      // frames: what is kept moves back to the start every other frame instead of it growing.
      const recent = new PcmBuffer(
        Math.ceil((keepBeforeMs * rate) / 1000) + 2 * Math.ceil(rate / 50),
      );
      const recentLengths: number[] = [];
      let recentStart = 0;
      let recentMs = 0;
      let recording: PcmBuffer | undefined;

      return {
        onAudio(frame) {
          const event = vad.process(frame);
          if (recording) {
            recording.append(frame);
          } else {
            if (recentStart > 0 && recent.length + frame.length > recent.capacity) {
              recent.dropFirst(recentStart);
              recentStart = 0;
            }
            recent.append(frame);
            recentLengths.push(frame.length);
            recentMs += (frame.length * 1000) / rate;
            while (
              recentLengths.length > 1 &&
              recentMs - samplesMs(recentLengths[0]!, rate) >= keepBeforeMs
            ) {
              const dropped = recentLengths.shift()!;
              recentMs -= samplesMs(dropped, rate);
              recentStart += dropped;
            }
          }
          if (!event) return;
          if (event.type === 'start') {
            // Barge-in: the caller talks over the reply, so stop it now rather than at the end
            // of their sentence.
            if (call.isSpeaking) call.clear();
            // Room for what was kept, a second of speech and the silence that ends it: most
            // replies never grow (copy) the array.
            recording = new PcmBuffer(
              recent.length - recentStart + Math.ceil(((1000 + endSilenceMs) * rate) / 1000),
            );
            recording.append(recent.samples().subarray(recentStart));
            recent.dropFirst(recent.length);
            recentLengths.length = 0;
            recentStart = 0;
            recentMs = 0;
            return;
          }
          const audio = recording?.samples() ?? new Int16Array(0);
          recording = undefined;
          if (event.type === 'discard') return;
          const dropMs = Math.max(0, event.trailingMs - tailMs);
          const keep = Math.max(0, audio.length - Math.round((dropMs * rate) / 1000));
          call.log.debug('parrot heard an utterance', {
            speechMs: event.speechMs,
            reason: event.reason,
          });
          call.say(audio.subarray(0, keep));
        },
        onDtmf(digit) {
          if (digit === '#') {
            call.hangup('caller-pressed-hash');
            return;
          }
          if (!dtmfFrequencies(digit)) {
            call.log.debug('parrot ignored a non-DTMF digit', { digit });
            return;
          }
          call.say(dtmfTone(digit, dtmfToneMs, rate));
        },
      };
    },
  };
}

function samplesMs(samples: number, rate: number): number {
  return (samples * 1000) / rate;
}

/** PCM16 appended at the end of one array, which grows (doubling) when full. */
class PcmBuffer {
  #buffer: Int16Array;
  #length = 0;

  constructor(capacity = 0) {
    this.#buffer = new Int16Array(capacity);
  }

  get length(): number {
    return this.#length;
  }

  get capacity(): number {
    return this.#buffer.length;
  }

  append(pcm: Int16Array): void {
    const end = this.#length + pcm.length;
    if (end > this.#buffer.length) {
      const grown = new Int16Array(Math.max(end, 2 * this.#buffer.length));
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(pcm, this.#length);
    this.#length = end;
  }

  /** The samples appended so far (a view: valid until the next `append` or `dropFirst`). */
  samples(): Int16Array {
    return this.#buffer.subarray(0, this.#length);
  }

  /** Forgets the first `n` samples, moving the rest to the start. */
  dropFirst(n: number): void {
    this.#buffer.copyWithin(0, n, this.#length);
    this.#length -= n;
  }
}
