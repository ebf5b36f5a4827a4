import type { CallTransport } from '@callgate/agent';
import { mulawEncodeInto } from '@callgate/audio';
import { TwilioMediaSerializer, serializeTwilioOutbound } from '@callgate/protocol';

/** How a transport reaches its socket; the session implements it (backpressure, byte counts). */
export interface TransportPort {
  /** Sends one text message. Never throws: a gone or shed socket just drops it. */
  send(text: string): void;
  /** Ends the call from our side (the agent hung up). */
  hangup(reason: string): void;
}

/**
 * The Call's way out to a Twilio bidirectional stream: 20 ms PCM16 frames at 8 kHz become
 * `media` messages of base64 μ-law, marks and clears become `mark`/`clear`. Twilio echoes the
 * mark when its audio has played (or was cleared); the session hands that to `Call.receiveMark`.
 */
export class TwilioTransport implements CallTransport {
  readonly sampleRate = 8000;
  readonly #streamSid: string;
  readonly #port: TransportPort;
  readonly #media: TwilioMediaSerializer;
  /** μ-law of one frame, reused: the frame becomes a base64 string at once. */
  #mulaw = Buffer.allocUnsafe(160);

  constructor(streamSid: string, port: TransportPort) {
    this.#streamSid = streamSid;
    this.#port = port;
    this.#media = new TwilioMediaSerializer(streamSid);
  }

  sendAudio(frame: Int16Array): void {
    if (this.#mulaw.length < frame.length) this.#mulaw = Buffer.allocUnsafe(frame.length);
    const n = mulawEncodeInto(frame, this.#mulaw);
    this.#port.send(this.#media.serialize(this.#mulaw.toString('base64', 0, n)));
  }

  sendMark(name: string): void {
    this.#port.send(
      serializeTwilioOutbound({ event: 'mark', streamSid: this.#streamSid, mark: { name } }),
    );
  }

  sendClear(): void {
    this.#port.send(serializeTwilioOutbound({ event: 'clear', streamSid: this.#streamSid }));
  }

  hangup(reason: string): void {
    // Closing the socket ends <Connect><Stream>; Twilio then runs the TwiML after </Connect>,
    // and there is none, so the call ends.
    this.#port.hangup(reason);
  }
}
