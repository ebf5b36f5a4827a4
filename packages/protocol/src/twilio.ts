import { decodeBase64Strict } from './base64.js';
import { ProtocolError } from './errors.js';
import {
  eventOf,
  Fields,
  invalid,
  parseJsonText,
  unknownEvent,
  type JsonObject,
} from './fields.js';

/** Twilio counters and timestamps are decimal strings (`"1"`, `"20"`), not numbers. */
type Str = string;

export type TwilioTrack = 'inbound' | 'outbound';

export interface TwilioConnected {
  event: 'connected';
  protocol: 'Call';
  version: string;
}
export interface TwilioStart {
  event: 'start';
  sequenceNumber: Str;
  streamSid: Str;
  start: {
    streamSid: Str;
    accountSid: Str;
    callSid: Str;
    tracks: TwilioTrack[];
    customParameters: Record<string, string>;
    mediaFormat: { encoding: 'audio/x-mulaw'; sampleRate: number; channels: number };
  };
}
export interface TwilioMedia {
  event: 'media';
  sequenceNumber: Str;
  streamSid: Str;
  media: { track: TwilioTrack; chunk: Str; timestamp: Str; payload: string };
}
export interface TwilioDtmf {
  event: 'dtmf';
  sequenceNumber: Str;
  streamSid: Str;
  dtmf: { track: 'inbound_track'; digit: string };
}
export interface TwilioMark {
  event: 'mark';
  sequenceNumber: Str;
  streamSid: Str;
  mark: { name: string };
}
export interface TwilioStop {
  event: 'stop';
  sequenceNumber: Str;
  streamSid: Str;
  stop: { accountSid: Str; callSid: Str };
}

/** Messages Twilio sends to the worker on a bidirectional Media Stream. */
export type TwilioInbound =
  TwilioConnected | TwilioStart | TwilioMedia | TwilioDtmf | TwilioMark | TwilioStop;

export interface TwilioOutboundMedia {
  event: 'media';
  streamSid: Str;
  media: { payload: string };
}
export interface TwilioOutboundMark {
  event: 'mark';
  streamSid: Str;
  mark: { name: string };
}
export interface TwilioClear {
  event: 'clear';
  streamSid: Str;
}

/** Messages the worker may send to Twilio on a bidirectional stream; Twilio accepts no others. */
export type TwilioOutbound = TwilioOutboundMedia | TwilioOutboundMark | TwilioClear;

export type TwilioInboundEvent = TwilioInbound['event'];
export type TwilioOutboundEvent = TwilioOutbound['event'];

/** Twilio Media Streams audio: μ-law, 8 kHz, mono; 20 ms frames of 160 bytes. */
export const TWILIO_SAMPLE_RATE = 8000;
export const TWILIO_FRAME_BYTES = 160;

const TRACKS: readonly TwilioTrack[] = ['inbound', 'outbound'];

/**
 * Validates a parsed message from Twilio. Every documented field is type-checked and the error
 * names the field; unknown extra fields are ignored (Twilio adds fields over time) and left out of
 * the result, which is a fresh object with only the documented fields. The media payload is only
 * checked to be a string here: decode it with `decodeBase64Strict`, which rejects bad base64.
 */
export function validateTwilioInbound(value: unknown): TwilioInbound {
  const { obj, event } = eventOf(value, 'twilio inbound');
  const f = new Fields(`twilio ${event}`);
  switch (event) {
    case 'connected':
      return {
        event,
        protocol: f.oneOf(obj, 'protocol', ['Call'] as const),
        version: f.string(obj, 'version'),
      };
    case 'start': {
      const start = f.object(obj, 'start');
      const streamSid = f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true });
      const innerSid = f.string(start, 'streamSid', 'start.streamSid', { nonEmpty: true });
      if (innerSid !== streamSid) {
        throw new ProtocolError(
          'PROTO_ERR_INVALID_MESSAGE',
          'twilio start: field "start.streamSid" differs from "streamSid"',
          { field: 'start.streamSid' },
        );
      }
      const tracksValue = start.tracks;
      if (!Array.isArray(tracksValue)) {
        throw new ProtocolError(
          'PROTO_ERR_INVALID_MESSAGE',
          'twilio start: field "start.tracks" must be an array',
          { field: 'start.tracks' },
        );
      }
      const tracks = tracksValue.map((track: unknown, i): TwilioTrack => {
        if (track !== 'inbound' && track !== 'outbound') {
          throw invalid(f.context, `start.tracks.${i}`, 'must be "inbound" or "outbound"');
        }
        return track;
      });
      const mediaFormat = f.object(start, 'mediaFormat', 'start.mediaFormat');
      return {
        event,
        sequenceNumber: f.decimalString(obj, 'sequenceNumber'),
        streamSid,
        start: {
          streamSid: innerSid,
          accountSid: f.string(start, 'accountSid', 'start.accountSid'),
          callSid: f.string(start, 'callSid', 'start.callSid', { nonEmpty: true }),
          tracks,
          customParameters: f.stringRecord(start, 'customParameters', 'start.customParameters'),
          mediaFormat: {
            encoding: f.oneOf(
              mediaFormat,
              'encoding',
              ['audio/x-mulaw'] as const,
              'start.mediaFormat.encoding',
            ),
            sampleRate: f.number(mediaFormat, 'sampleRate', 'start.mediaFormat.sampleRate'),
            channels: f.number(mediaFormat, 'channels', 'start.mediaFormat.channels'),
          },
        },
      };
    }
    case 'media': {
      const media = f.object(obj, 'media');
      return {
        event,
        sequenceNumber: f.decimalString(obj, 'sequenceNumber'),
        streamSid: f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true }),
        media: {
          track: f.oneOf(media, 'track', TRACKS, 'media.track'),
          chunk: f.decimalString(media, 'chunk', 'media.chunk'),
          timestamp: f.decimalString(media, 'timestamp', 'media.timestamp'),
          payload: f.string(media, 'payload', 'media.payload'),
        },
      };
    }
    case 'dtmf': {
      const dtmf = f.object(obj, 'dtmf');
      return {
        event,
        sequenceNumber: f.decimalString(obj, 'sequenceNumber'),
        streamSid: f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true }),
        dtmf: {
          track: f.oneOf(dtmf, 'track', ['inbound_track'] as const, 'dtmf.track'),
          digit: f.string(dtmf, 'digit', 'dtmf.digit', { nonEmpty: true }),
        },
      };
    }
    case 'mark': {
      const mark = f.object(obj, 'mark');
      return {
        event,
        sequenceNumber: f.decimalString(obj, 'sequenceNumber'),
        streamSid: f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true }),
        mark: { name: f.string(mark, 'name', 'mark.name') },
      };
    }
    case 'stop': {
      const stop = f.object(obj, 'stop');
      return {
        event,
        sequenceNumber: f.decimalString(obj, 'sequenceNumber'),
        streamSid: f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true }),
        stop: {
          accountSid: f.string(stop, 'accountSid', 'stop.accountSid'),
          callSid: f.string(stop, 'callSid', 'stop.callSid'),
        },
      };
    }
    default:
      throw unknownEvent('twilio inbound', event);
  }
}

// A `media` message exactly as Twilio writes it (field order, no whitespace, no escapes): every
// text this matches, JSON.parse + validateTwilioInbound accept, with the same result, so it can be
// taken apart here at a fraction of the cost; anything else goes the general way. The streamSid
// class is every character but `"`, `\\` and the controls below U+0020.
const CANONICAL_MEDIA =
  /^\{"event":"media","sequenceNumber":"(\d{1,16})","media":\{"track":"(inbound|outbound)","chunk":"(\d{1,16})","timestamp":"(\d{1,16})","payload":"([A-Za-z0-9+/=]*)"\},"streamSid":"([\x20\x21\x23-\x5b\x5d-\uffff]+)"\}$/;

/**
 * Parses and validates one text message from Twilio (see `validateTwilioInbound`). The `media`
 * messages of a call, 50 a second, take a fast path when they have Twilio's exact layout.
 */
export function parseTwilioInbound(text: string): TwilioInbound {
  if (typeof text === 'string' && text.charCodeAt(10) === 109 /* m of "media" */) {
    const m = CANONICAL_MEDIA.exec(text);
    if (m) {
      return {
        event: 'media',
        sequenceNumber: m[1]!,
        streamSid: m[6]!,
        media: {
          track: m[2] as TwilioTrack,
          chunk: m[3]!,
          timestamp: m[4]!,
          payload: m[5]!,
        },
      };
    }
  }
  return validateTwilioInbound(parseJsonText(text));
}

/**
 * Validates a message the worker is about to send, or that the simulator received, against the
 * exact shape Twilio accepts: no missing and no extra fields at any level (Twilio raises 31951 for
 * "unexpected fields"), a non-empty `streamSid` string, strict base64 payload, a `mark.name` string.
 */
export function validateTwilioOutbound(value: unknown): TwilioOutbound {
  const { obj, event } = eventOf(value, 'twilio outbound');
  const f = new Fields(`twilio outbound ${event}`);
  switch (event) {
    case 'media': {
      f.exactKeys(obj, ['event', 'streamSid', 'media']);
      const streamSid = f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true });
      const media = f.object(obj, 'media');
      f.exactKeys(media, ['payload'], 'media.');
      const payload = f.string(media, 'payload', 'media.payload');
      try {
        decodeBase64Strict(payload);
      } catch (err) {
        throw new ProtocolError(
          'PROTO_ERR_BAD_BASE64',
          `twilio outbound media: field "media.payload" is not valid base64`,
          { cause: err, field: 'media.payload' },
        );
      }
      return { event, streamSid, media: { payload } };
    }
    case 'mark': {
      f.exactKeys(obj, ['event', 'streamSid', 'mark']);
      const streamSid = f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true });
      const mark = f.object(obj, 'mark');
      f.exactKeys(mark, ['name'], 'mark.');
      return { event, streamSid, mark: { name: f.string(mark, 'name', 'mark.name') } };
    }
    case 'clear':
      f.exactKeys(obj, ['event', 'streamSid']);
      return { event, streamSid: f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true }) };
    default:
      throw unknownEvent('twilio outbound', event);
  }
}

/** Strictly parses a message a worker sent towards Twilio (used by the simulator). */
export function parseTwilioOutbound(text: string): TwilioOutbound {
  return validateTwilioOutbound(parseJsonText(text));
}

/**
 * Serializes an outbound message with exactly the documented fields, in a stable order
 * (`event`, `streamSid`, then the body). Throws `PROTO_ERR_INVALID_MESSAGE` for a malformed
 * message instead of sending something Twilio would reject.
 */
export function serializeTwilioOutbound(msg: TwilioOutbound): string {
  const f = new Fields(`twilio outbound ${String((msg as { event?: unknown }).event)}`);
  const obj = msg as unknown as JsonObject;
  switch (msg.event) {
    case 'media': {
      const streamSid = f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true });
      const payload = f.string(f.object(obj, 'media'), 'payload', 'media.payload');
      return JSON.stringify({ event: 'media', streamSid, media: { payload } });
    }
    case 'mark': {
      const streamSid = f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true });
      const name = f.string(f.object(obj, 'mark'), 'name', 'mark.name');
      return JSON.stringify({ event: 'mark', streamSid, mark: { name } });
    }
    case 'clear':
      return JSON.stringify({
        event: 'clear',
        streamSid: f.string(obj, 'streamSid', 'streamSid', { nonEmpty: true }),
      });
    default:
      throw unknownEvent('twilio outbound', String((msg as { event?: unknown }).event));
  }
}

/**
 * `serializeTwilioOutbound` of `media` messages for one stream, by concatenation: the fixed head
 * (with the stream's JSON-escaped `streamSid`, checked once) and tail around the payload. Gives
 * exactly the text `serializeTwilioOutbound` gives. The payload must be standard base64 (what
 * `Buffer#toString('base64')` writes), which needs no JSON escaping; it is not checked here.
 */
export class TwilioMediaSerializer {
  readonly #head: string;

  constructor(streamSid: string) {
    const f = new Fields('twilio outbound media');
    const sid = f.string({ streamSid } as JsonObject, 'streamSid', 'streamSid', { nonEmpty: true });
    this.#head = `{"event":"media","streamSid":${JSON.stringify(sid)},"media":{"payload":"`;
  }

  serialize(payload: string): string {
    return this.#head + payload + '"}}';
  }
}

/**
 * Serializes a message in exactly the shape and field order of Twilio's own messages, for the
 * simulator: a worker under test gets the same bytes as from Twilio. The message is validated
 * first, so the simulator cannot send what Twilio would not.
 */
export function serializeTwilioInbound(msg: TwilioInbound): string {
  const m = validateTwilioInbound(msg);
  switch (m.event) {
    case 'connected':
      return JSON.stringify({ event: m.event, protocol: m.protocol, version: m.version });
    case 'start': {
      const s = m.start;
      return JSON.stringify({
        event: m.event,
        sequenceNumber: m.sequenceNumber,
        streamSid: m.streamSid,
        start: {
          accountSid: s.accountSid,
          streamSid: s.streamSid,
          callSid: s.callSid,
          tracks: s.tracks,
          customParameters: s.customParameters,
          mediaFormat: {
            encoding: s.mediaFormat.encoding,
            sampleRate: s.mediaFormat.sampleRate,
            channels: s.mediaFormat.channels,
          },
        },
      });
    }
    case 'media':
      return JSON.stringify({
        event: m.event,
        sequenceNumber: m.sequenceNumber,
        streamSid: m.streamSid,
        media: {
          track: m.media.track,
          chunk: m.media.chunk,
          timestamp: m.media.timestamp,
          payload: m.media.payload,
        },
      });
    case 'dtmf':
      return JSON.stringify({
        event: m.event,
        streamSid: m.streamSid,
        sequenceNumber: m.sequenceNumber,
        dtmf: { track: m.dtmf.track, digit: m.dtmf.digit },
      });
    case 'mark':
      return JSON.stringify({
        event: m.event,
        sequenceNumber: m.sequenceNumber,
        streamSid: m.streamSid,
        mark: { name: m.mark.name },
      });
    case 'stop':
      return JSON.stringify({
        event: m.event,
        sequenceNumber: m.sequenceNumber,
        streamSid: m.streamSid,
        stop: { accountSid: m.stop.accountSid, callSid: m.stop.callSid },
      });
  }
}
