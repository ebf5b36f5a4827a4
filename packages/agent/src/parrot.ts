import { concatPcm, dtmfFrequencies, dtmfTone } from '@callgate/audio';
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
      let recent: Int16Array[] = [];
      let recentMs = 0;
      let recording: Int16Array[] | undefined;

      return {
        onAudio(frame) {
          const event = vad.process(frame);
          if (recording) {
            recording.push(frame);
          } else {
            recent.push(frame);
            recentMs += (frame.length * 1000) / rate;
            while (recent.length > 1 && recentMs - frameMs(recent[0]!, rate) >= keepBeforeMs) {
              recentMs -= frameMs(recent.shift()!, rate);
            }
          }
          if (!event) return;
          if (event.type === 'start') {
            // Barge-in: the caller talks over the reply, so stop it now rather than at the end
            // of their sentence.
            if (call.isSpeaking) call.clear();
            recording = recent;
            recent = [];
            recentMs = 0;
            return;
          }
          const frames = recording ?? [];
          recording = undefined;
          if (event.type === 'discard') return;
          const audio = concatPcm(frames);
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

function frameMs(frame: Int16Array, rate: number): number {
  return (frame.length * 1000) / rate;
}
