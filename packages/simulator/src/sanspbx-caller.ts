import { randomUUID } from 'node:crypto';
import { pcm16FromBytes, pcm16ToBytes } from '@callgate/audio';
import {
  decodeBase64Strict,
  encodeBase64,
  parseSansPbxOutbound,
  serializeSansPbxInbound,
} from '@callgate/protocol';
import { errorCode } from '@callgate/runtime';
import { BaseCaller, type CallerOptions } from './base-caller.js';
import type { Provider } from './types.js';

export interface SansPbxCallerOptions extends CallerOptions {
  /** Line rate of the PCM16 both ways; default 8000 (SansPBX lines may also run at 44100). */
  sampleRate?: number;
  /** Asterisk-style channel; default `SIP/callgate-0001`, counting up per caller in this process. */
  channelId?: string;
}

/** How long the simulated keypad holds a digit; SansPBX reports it as `dtfDurationMs`. */
const DTMF_DURATION_MS = 250;
let channelCounter = 0;

/**
 * A phone calling through SansPBX's media stream (shapes unconfirmed: SansPBX publishes no
 * specification, see packages/protocol/src/sanspbx.ts): connects to
 * the bare `/media-stream`, sends `connected`, `answer` (the only identity it gives), `start`,
 * `media` messages of base64 PCM16 LE every 20 ms, `dtmf` and `stop`; plays the worker's
 * `reverse-media` in real time. There are no marks and no clear.
 */
export class SansPbxCaller extends BaseCaller {
  readonly provider: Provider = 'sanspbx';
  readonly streamSid: string;
  readonly channelId: string;

  constructor(options: SansPbxCallerOptions) {
    super({ ...options, callSid: options.callSid ?? randomUUID() }, options.sampleRate ?? 8000);
    this.streamSid = randomUUID();
    channelCounter++;
    this.channelId = options.channelId ?? `SIP/callgate-${String(channelCounter).padStart(4, '0')}`;
  }

  /** SansPBX has no `<Connect action>`: the simulator never opens a second stream for it. */
  protected newStream(): void {
    throw new Error('SansPBX calls have one stream');
  }

  protected openingMessages(): string[] {
    return [
      serializeSansPbxInbound({ event: 'connected' }),
      serializeSansPbxInbound({
        event: 'answer',
        streamId: this.streamSid,
        channelId: this.channelId,
        callId: this.callSid,
      }),
      serializeSansPbxInbound({
        event: 'start',
        channelId: this.channelId,
        mediaFormat: { encoding: 'audio/x-l16', sampleRate: this.sampleRate, channels: 1 },
      }),
    ];
  }

  protected mediaMessage(frame: Int16Array, chunk: number): string {
    return serializeSansPbxInbound({
      event: 'media',
      chunk,
      payload: encodeBase64(pcm16ToBytes(frame)),
    });
  }

  protected dtmfMessage(digit: string): string {
    return serializeSansPbxInbound({ event: 'dtmf', digit, dtfDurationMs: DTMF_DURATION_MS });
  }

  protected stopMessage(): string {
    return serializeSansPbxInbound({
      event: 'stop',
      callId: this.callSid,
      disconnectedBy: 'caller',
      timestamp: Date.now(),
    });
  }

  protected handleMessage(text: string): void {
    let msg;
    try {
      msg = parseSansPbxOutbound(text);
    } catch (err) {
      this.protocolError(
        errorCode(err, 'PROTO_ERR_INVALID_MESSAGE'),
        err instanceof Error ? err.message : String(err),
      );
      return;
    }
    const expected = { streamId: this.streamSid, channelId: this.channelId, callId: this.callSid };
    for (const [field, value] of Object.entries(expected)) {
      const got = msg[field as keyof typeof expected];
      if (got !== value) {
        this.protocolError(
          'PROTO_ERR_INVALID_MESSAGE',
          `reverse-media: ${field} ${JSON.stringify(got)} is not this call's (${value})`,
        );
        return;
      }
    }
    // parseSansPbxOutbound has checked the base64 and the even byte count.
    this.receiveAudio(pcm16FromBytes(decodeBase64Strict(msg.payload)));
  }

  protected onMarkReached(): void {
    // SansPBX has no marks; the playback queue never holds one.
  }
}
