import { pcm16FromBytes } from '@callgate/audio';
import {
  decodeBase64Strict,
  parseSansPbxInbound,
  type SansPbxAnswer,
  type SansPbxInbound,
} from '@callgate/protocol';
import { errorCode } from '@callgate/runtime';
import type { MediaSession } from './media-session.js';
import { SansPbxTransport } from './sanspbx-transport.js';
import type { StreamReceiver } from './stream-receiver.js';

/**
 * Inbound side of a SansPBX stream: the `answer` starts the call, `media` (PCM16 LE at the
 * configured rate), `dtmf` and `stop` of its stream go to the call. Owns the outbound transport,
 * whose mark timers feed the call too.
 */
export class SansPbxReceiver implements StreamReceiver {
  readonly #session: MediaSession;
  #transport: SansPbxTransport | undefined;
  #mediaFormatWarned = false;

  constructor(session: MediaSession) {
    this.#session = session;
  }

  receive(text: string): void {
    const session = this.#session;
    let msg: SansPbxInbound;
    try {
      msg = parseSansPbxInbound(text);
    } catch (err) {
      session.bad(errorCode(err, 'PROTO_ERR_INVALID_MESSAGE'), (err as Error).message);
      return;
    }
    switch (msg.event) {
      case 'connected':
        return;
      case 'answer':
        this.#answer(msg);
        return;
      case 'start':
        this.#checkRate(msg.mediaFormat?.sampleRate);
        return;
      default:
        break;
    }
    const call = session.call;
    if (!call) {
      session.reject('MEDIA_ERR_NOT_STARTED', `${msg.event} before answer`);
      return;
    }
    if (msg.streamId !== undefined && msg.streamId !== session.streamSid) {
      session.bad('MEDIA_ERR_WRONG_STREAM_SID', `${msg.event} for another stream`, {
        gotStreamId: msg.streamId.slice(0, 64),
      });
      return;
    }
    switch (msg.event) {
      case 'media': {
        let bytes: Uint8Array;
        try {
          bytes = decodeBase64Strict(msg.payload);
        } catch (err) {
          session.bad(errorCode(err, 'PROTO_ERR_BAD_BASE64'), (err as Error).message);
          return;
        }
        if (bytes.byteLength % 2 !== 0) {
          session.bad('PROTO_ERR_INVALID_MESSAGE', 'payload is not whole PCM16 samples');
          return;
        }
        session.receiveAudio(call, pcm16FromBytes(bytes));
        return;
      }
      case 'dtmf':
        session.log.debug('dtmf', { digit: msg.digit });
        call.receiveDtmf(msg.digit);
        return;
      case 'stop':
        session.stop();
        return;
    }
  }

  /** Stops the transport's mark timers. Idempotent. */
  close(): void {
    this.#transport?.close();
  }

  #answer(msg: SansPbxAnswer): void {
    const session = this.#session;
    if (!session.awaitingStart) {
      session.bad('MEDIA_ERR_ALREADY_STARTED', 'second answer on one stream');
      return;
    }
    if (session.pathCallSid !== undefined && session.pathCallSid !== msg.callId) {
      session.reject('MEDIA_ERR_CALLSID_MISMATCH', 'answer.callId differs from the URL path', {
        callSid: msg.callId.slice(0, 64),
        pathCallSid: session.pathCallSid,
      });
      return;
    }
    const transport = new SansPbxTransport({
      identity: { callId: msg.callId, streamId: msg.streamId, channelId: msg.channelId },
      sampleRate: session.config.sansPbxSampleRate,
      session,
    });
    this.#transport = transport;
    session.begin({
      callSid: msg.callId,
      streamSid: msg.streamId,
      customParameters: { channelId: msg.channelId },
      transport,
      fields: { channelId: msg.channelId },
    });
  }

  /** The `start` message may announce a sample rate; the configured one is what we use. */
  #checkRate(rate: number | undefined): void {
    const configured = this.#session.config.sansPbxSampleRate;
    if (rate === undefined || rate === configured || this.#mediaFormatWarned) return;
    // Not fatal: the vendor's own notes disagree on the rate, and the configured one wins.
    this.#mediaFormatWarned = true;
    this.#session.log.warn('SansPBX start names another sample rate; using SANSPBX_SAMPLE_RATE', {
      code: 'MEDIA_ERR_MEDIA_FORMAT',
      announcedRate: rate,
      sampleRate: configured,
    });
    this.#session.countError('MEDIA_ERR_MEDIA_FORMAT');
  }
}
