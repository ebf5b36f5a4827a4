import { mulawDecodeInto } from '@callgate/audio';
import {
  base64MaxDecodedLength,
  decodeBase64StrictInto,
  parseTwilioInbound,
  type TwilioInbound,
  type TwilioMedia,
  type TwilioStart,
} from '@callgate/protocol';
import { errorCode } from '@callgate/runtime';
import { verifyCallToken } from './call-token.js';
import type { MediaCall } from './media-call.js';
import type { MediaSession } from './media-session.js';
import type { StreamReceiver } from './stream-receiver.js';
import { TwilioTransport } from './twilio-transport.js';

/**
 * Inbound side of a Twilio Media Stream: authenticates the `start` (CallSid in the path, per-call
 * token) and hands `media`, `dtmf`, `mark` and `stop` of its stream to the call.
 */
export class TwilioReceiver implements StreamReceiver {
  readonly #session: MediaSession;
  /**
   * One frame's μ-law bytes and PCM, reused for every `media` message (grown for a larger one):
   * the call copies what it keeps (framer, resampler, recorder), so nothing holds these.
   */
  #bytes = new Uint8Array(160);
  #pcm = new Int16Array(160);

  constructor(session: MediaSession) {
    this.#session = session;
  }

  receive(text: string): void {
    const session = this.#session;
    let msg: TwilioInbound;
    try {
      msg = parseTwilioInbound(text);
    } catch (err) {
      session.bad(errorCode(err, 'PROTO_ERR_INVALID_MESSAGE'), (err as Error).message);
      return;
    }
    if (msg.event === 'connected') return;
    if (msg.event === 'start') {
      this.#start(msg);
      return;
    }
    const call = session.call;
    if (!call) {
      session.reject('MEDIA_ERR_NOT_STARTED', `${msg.event} before start`);
      return;
    }
    if (msg.streamSid !== session.streamSid) {
      session.bad('MEDIA_ERR_WRONG_STREAM_SID', `${msg.event} for another stream`, {
        gotStreamSid: msg.streamSid.slice(0, 64),
      });
      return;
    }
    switch (msg.event) {
      case 'media':
        this.#media(call, msg);
        return;
      case 'dtmf':
        session.log.debug('dtmf', { digit: msg.dtmf.digit });
        call.receiveDtmf(msg.dtmf.digit);
        return;
      case 'mark':
        // Twilio only echoes marks it was sent, so on a fresh stream a mark naming none of ours is
        // a bad message (a flood of them is hostile). On a stream the proxy moved here, echoes of
        // the previous worker's marks are normal: the call counts them, quietly.
        if (call.receiveMark(msg.mark.name) === 'unknown' && session.resume === undefined) {
          session.bad('MEDIA_ERR_UNKNOWN_MARK', 'mark echo names no mark this stream sent', {
            mark: msg.mark.name.slice(0, 64),
          });
        }
        return;
      case 'stop':
        session.stop();
        return;
    }
  }

  /** Twilio marks are echoed over the socket; there is nothing of ours to stop. */
  close(): void {}

  #start(msg: TwilioStart): void {
    const session = this.#session;
    if (!session.awaitingStart) {
      session.bad('MEDIA_ERR_ALREADY_STARTED', 'second start on one stream');
      return;
    }
    const { start } = msg;
    const format = start.mediaFormat;
    if (format.sampleRate !== 8000 || format.channels !== 1) {
      session.reject(
        'MEDIA_ERR_MEDIA_FORMAT',
        `media format ${format.encoding} ${format.sampleRate} Hz ${format.channels} ch is not μ-law 8 kHz mono`,
      );
      return;
    }
    if (session.pathCallSid !== undefined && session.pathCallSid !== start.callSid) {
      session.reject('MEDIA_ERR_CALLSID_MISMATCH', 'start.callSid differs from the URL path', {
        callSid: start.callSid.slice(0, 64),
        pathCallSid: session.pathCallSid,
      });
      return;
    }
    const { callToken, ...customParameters } = start.customParameters;
    const secret = session.config.callTokenSecret;
    if (secret !== undefined) {
      const verdict = verifyCallToken({ secret, callSid: start.callSid, token: callToken });
      // The open-by time bounds when a call may first connect. A call the proxy moves here (its
      // vouch checked at the upgrade) replays its original `start`, long past that time: the
      // token must still be this call's (signature, CallSid), just not fresh.
      const resumedPastOpenBy = !verdict.ok && verdict.reason === 'expired' && session.resume;
      if (!verdict.ok && !resumedPastOpenBy) {
        session.reject('MEDIA_ERR_BAD_CALL_TOKEN', `call token ${verdict.reason}`, {
          callSid: start.callSid.slice(0, 64),
          reason: verdict.reason,
        });
        return;
      }
    }
    session.begin({
      callSid: start.callSid,
      streamSid: msg.streamSid,
      customParameters,
      transport: new TwilioTransport(msg.streamSid, session),
      fields: { tracks: start.tracks },
    });
  }

  #media(call: MediaCall, msg: TwilioMedia): void {
    // Only the caller's track is audio to answer; `outbound` appears on both_tracks streams.
    if (msg.media.track !== 'inbound') return;
    const payload = msg.media.payload;
    const max = base64MaxDecodedLength(payload.length);
    if (this.#bytes.length < max) {
      this.#bytes = new Uint8Array(max);
      this.#pcm = new Int16Array(max);
    }
    let n: number;
    try {
      n = decodeBase64StrictInto(payload, this.#bytes);
    } catch (err) {
      this.#session.bad(errorCode(err, 'PROTO_ERR_BAD_BASE64'), (err as Error).message);
      return;
    }
    mulawDecodeInto(this.#bytes, n, this.#pcm);
    const pcm = n === this.#pcm.length ? this.#pcm : this.#pcm.subarray(0, n);
    this.#session.receiveAudio(call, pcm, Number(msg.media.timestamp));
  }
}
