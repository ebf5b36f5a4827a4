import { MULAW_SILENCE, mulawDecode, mulawEncode } from '@callgate/audio';
import {
  decodeBase64Strict,
  encodeBase64,
  parseTwilioOutbound,
  serializeTwilioInbound,
  type TwilioInbound,
} from '@callgate/protocol';
import { errorCode } from '@callgate/runtime';
import { BaseCaller, randomSid, type CallerOptions } from './base-caller.js';
import type { Provider } from './types.js';

export type TwilioCallerOptions = CallerOptions;

/**
 * A phone calling through Twilio Media Streams (bidirectional `<Connect><Stream>`): sends
 * `connected`, `start`, 20 ms μ-law `media` messages (silence, 0xFF, when the caller is quiet), `dtmf`
 * and `stop`; plays the worker's `media` in real time, echoes `mark`s when their audio has played
 * and on `clear`, and checks every worker message as strictly as Twilio does (31950/31951).
 */
export class TwilioCaller extends BaseCaller {
  readonly provider: Provider = 'twilio';
  /** A new `MZ…` for every stream of the call, as Twilio does after `<Connect action>`. */
  streamSid: string;
  /** Twilio numbers every message after `connected`, media and marks alike, from "1". */
  #sequenceNumber = 0;

  constructor(options: TwilioCallerOptions) {
    super(options, 8000);
    this.streamSid = randomSid('MZ');
  }

  protected newStream(): void {
    this.streamSid = randomSid('MZ');
    this.#sequenceNumber = 0;
  }

  #nextSequence(): string {
    this.#sequenceNumber++;
    return String(this.#sequenceNumber);
  }

  #serialize(msg: TwilioInbound): string {
    return serializeTwilioInbound(msg);
  }

  protected openingMessages(): string[] {
    return [
      this.#serialize({ event: 'connected', protocol: 'Call', version: '1.0.0' }),
      this.#serialize({
        event: 'start',
        sequenceNumber: this.#nextSequence(),
        streamSid: this.streamSid,
        start: {
          streamSid: this.streamSid,
          accountSid: this.accountSid,
          callSid: this.callSid,
          tracks: ['inbound'],
          customParameters: { ...this.customParameters },
          mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
        },
      }),
    ];
  }

  protected mediaMessage(frame: Int16Array, chunk: number, timestampMs: number): string {
    return this.#serialize({
      event: 'media',
      sequenceNumber: this.#nextSequence(),
      streamSid: this.streamSid,
      media: {
        track: 'inbound',
        chunk: String(chunk),
        timestamp: String(timestampMs),
        payload: encodeBase64(encodeFrame(frame)),
      },
    });
  }

  protected dtmfMessage(digit: string): string {
    return this.#serialize({
      event: 'dtmf',
      sequenceNumber: this.#nextSequence(),
      streamSid: this.streamSid,
      dtmf: { track: 'inbound_track', digit },
    });
  }

  protected stopMessage(): string {
    return this.#serialize({
      event: 'stop',
      sequenceNumber: this.#nextSequence(),
      streamSid: this.streamSid,
      stop: { accountSid: this.accountSid, callSid: this.callSid },
    });
  }

  protected handleMessage(text: string): void {
    let msg;
    try {
      msg = parseTwilioOutbound(text);
    } catch (err) {
      this.protocolError(
        errorCode(err, 'PROTO_ERR_INVALID_MESSAGE'),
        err instanceof Error ? err.message : String(err),
      );
      return;
    }
    if (msg.streamSid !== this.streamSid) {
      // Twilio rejects a message for another stream (31951) and does not act on it.
      this.protocolError(
        'PROTO_ERR_INVALID_MESSAGE',
        `${msg.event}: streamSid ${JSON.stringify(msg.streamSid)} is not this stream (${this.streamSid})`,
      );
      return;
    }
    switch (msg.event) {
      case 'media': {
        let bytes: Uint8Array;
        try {
          bytes = decodeBase64Strict(msg.media.payload);
        } catch (err) {
          this.protocolError(
            errorCode(err, 'PROTO_ERR_BAD_BASE64'),
            err instanceof Error ? err.message : String(err),
          );
          return;
        }
        this.receiveAudio(mulawDecode(bytes));
        return;
      }
      case 'mark':
        this.counters.marksReceived++;
        this.playback.enqueueMark(msg.mark.name);
        return;
      case 'clear': {
        this.counters.clears++;
        // Echoes of the pending marks go out from onMarkReached, before the 'clear' event.
        const { droppedSamples, marks } = this.playback.clear();
        this.emitSim({
          type: 'clear',
          atMs: this.elapsedMs,
          droppedSamples,
          marksAcked: marks.length,
        });
        return;
      }
    }
  }

  protected onMarkReached(name: string, cleared: boolean): void {
    const echo = this.#serialize({
      event: 'mark',
      sequenceNumber: this.#nextSequence(),
      streamSid: this.streamSid,
      mark: { name },
    });
    if (this.send(echo)) {
      this.counters.marksAcked++;
      if (cleared) this.counters.marksAckedOnClear++;
    }
    this.emitSim({
      type: 'mark',
      atMs: this.elapsedMs,
      name,
      cleared,
      samplesPlayed: this.playback.samplesPlayed,
    });
  }
}

const SILENT_FRAME = new Uint8Array(160).fill(MULAW_SILENCE);

function encodeFrame(frame: Int16Array): Uint8Array {
  for (let i = 0; i < frame.length; i++) if (frame[i] !== 0) return mulawEncode(frame);
  return SILENT_FRAME;
}
