import { Framer, createResampler, frameSamples, type PcmResampler } from '@callgate/audio';
import { FRAME_MS } from './playback.js';

// Caller audio and digits that arrive while `agent.start()` is still pending are held for it,
// up to one second; older frames are dropped.
const MAX_EARLY_FRAMES = 50;

/** Caller input that arrived before the agent had started. */
export type EarlyInput = { frame: Int16Array } | { digit: string };

/**
 * The Call's inbound path: caller audio at the transport's rate, resampled to the agent's rate
 * and cut into 20 ms frames, and the input that arrives before the agent has started, held for it.
 */
export class CallInbound {
  readonly #resampler: PcmResampler | undefined;
  readonly #framer: Framer;
  #early: EarlyInput[] = [];

  /** Throws when a rate is unusable; the Call turns that into an agent start failure. */
  constructor(transportRate: number, agentRate: number) {
    if (agentRate !== transportRate) {
      this.#resampler = createResampler(transportRate, agentRate);
    }
    this.#framer = new Framer(frameSamples(agentRate, FRAME_MS));
  }

  /** Caller audio at the transport's rate, any length, as whole 20 ms frames at the agent's. */
  frames(pcm: Int16Array): Int16Array[] {
    // The resampler's output is a fresh array: a whole frame of it needs no second copy.
    if (this.#resampler) return this.#framer.pushOwned(this.#resampler.process(pcm));
    return this.#framer.push(pcm);
  }

  holdFrame(frame: Int16Array): void {
    this.#early.push({ frame });
    if (this.#early.length > MAX_EARLY_FRAMES) {
      const oldest = this.#early.findIndex((item) => 'frame' in item);
      this.#early.splice(oldest, 1);
    }
  }

  holdDigit(digit: string): void {
    this.#early.push({ digit });
  }

  /** What was held, in arrival order; the buffer is empty afterwards. */
  takeEarly(): EarlyInput[] {
    const early = this.#early;
    this.#early = [];
    return early;
  }

  dropEarly(): void {
    this.#early = [];
  }
}
