import type { CallTransport } from '@callgate/agent';
import { mulawEncodeInto } from '@callgate/audio';
import { TwilioMediaSerializer, serializeTwilioOutbound } from '@callgate/protocol';
import type { MediaSession } from './media-session.js';

/**
 * The Call's way out to a Twilio bidirectional stream: 20 ms PCM16 frames at 8 kHz become
 * `media` messages of base64 μ-law, marks and clears become `mark`/`clear`. Twilio echoes the
 * mark when its audio has played (or was cleared); the session hands that to `Call.receiveMark`.
 */
export class TwilioTransport implements CallTransport {
  readonly sampleRate = 8000;
  readonly #streamSid: string;
  /** Its session: sends with backpressure and byte counts, and ends the call on a hang-up. */
  readonly #session: Pick<MediaSession, 'send' | 'agentHungUp'>;
  readonly #media: TwilioMediaSerializer;
  /** μ-law of one frame, reused: the frame becomes a base64 string at once. */
  #mulaw = Buffer.allocUnsafe(160);

  constructor(streamSid: string, session: Pick<MediaSession, 'send' | 'agentHungUp'>) {
    this.#streamSid = streamSid;
    this.#session = session;
    this.#media = new TwilioMediaSerializer(streamSid);
  }

  sendAudio(frame: Int16Array): void {
    if (this.#mulaw.length < frame.length) this.#mulaw = Buffer.allocUnsafe(frame.length);
    const n = mulawEncodeInto(frame, this.#mulaw);
    this.#session.send(this.#media.serialize(this.#mulaw.toString('base64', 0, n)));
  }

  sendMark(name: string): void {
    this.#session.send(
      serializeTwilioOutbound({ event: 'mark', streamSid: this.#streamSid, mark: { name } }),
    );
  }

  sendClear(): void {
    this.#session.send(serializeTwilioOutbound({ event: 'clear', streamSid: this.#streamSid }));
  }

  hangup(reason: string): void {
    // Closing the socket ends <Connect><Stream>; Twilio then runs the TwiML after </Connect>,
    // and there is none, so the call ends.
    this.#session.agentHungUp(reason);
  }
}
