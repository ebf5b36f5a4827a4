import type { Agent, AgentCall, AgentSession } from './types.js';
import { EnergyVad } from './vad.js';

export interface EchoOptions {
  /** Audio per utterance (one mark each). Default 1000. */
  utteranceMs?: number;
}

/**
 * Loops every caller frame straight back as streaming speech, closing an utterance (one mark)
 * every `utteranceMs` of audio or when the caller goes quiet. Useful to measure round-trip latency
 * and to hear what the transport does to audio.
 */
export function createEchoAgent(options: EchoOptions = {}): Agent {
  const utteranceMs = options.utteranceMs ?? 1000;
  return {
    name: 'echo',
    start(call: AgentCall): AgentSession {
      const vad = new EnergyVad({ sampleRate: call.sampleRate, endSilenceMs: 300, minSpeechMs: 0 });
      const empty = new Int16Array(0);
      let openMs = 0;
      return {
        onAudio(frame) {
          call.say(frame, { final: false });
          openMs += (frame.length * 1000) / call.sampleRate;
          const event = vad.process(frame);
          const callerWentQuiet = event !== undefined && event.type !== 'start';
          if (openMs >= utteranceMs || callerWentQuiet) {
            call.say(empty, { final: true });
            openMs = 0;
          }
        },
      };
    },
  };
}
