import { decodeBase64Strict } from './base64.js';
import { ProtocolError } from './errors.js';
import {
  eventOf,
  Fields,
  isObject,
  parseJsonText,
  unknownEvent,
  type JsonObject,
} from './fields.js';

/*
 * SansPBX media-stream messages. SansPBX publishes no specification: the shapes are what has been
 * seen of it, unconfirmed, so inbound parsing is lenient on purpose:
 * - ids (`streamId`, `channelId`, `callId`) may arrive as strings or numbers and are normalized to
 *   strings; `chunk`, `dtfDurationMs`, `timestamp` and `mediaFormat.sampleRate`/`channels` may be
 *   numbers or numeric strings and are normalized to numbers (timestamp stays as sent if it is an
 *   ISO date string);
 * - only the fields a worker cannot do without are required: the three ids on `answer` (the only
 *   identity SansPBX gives, since the URL carries none), `payload` on `media`, `digit` on `dtmf`;
 * - unknown extra fields are ignored and left out of the result.
 * Outbound `reverse-media` is strict (the simulator uses `parseSansPbxOutbound` to check workers).
 */

/** Identity fields SansPBX may repeat on any message. */
export interface SansPbxIds {
  streamId?: string;
  channelId?: string;
  callId?: string;
}

export interface SansPbxMediaFormat {
  encoding?: string;
  sampleRate?: number;
  channels?: number;
}

export interface SansPbxConnected extends SansPbxIds {
  event: 'connected';
}
export interface SansPbxAnswer {
  event: 'answer';
  streamId: string;
  channelId: string;
  callId: string;
}
export interface SansPbxStart extends SansPbxIds {
  event: 'start';
  mediaFormat?: SansPbxMediaFormat;
}
export interface SansPbxMedia extends SansPbxIds {
  event: 'media';
  /** Base64 PCM16 LE mono. */
  payload: string;
  chunk?: number;
}
export interface SansPbxDtmf extends SansPbxIds {
  event: 'dtmf';
  digit: string;
  /** Tone length in ms; the field name is spelled `dtfDurationMs` on the wire. */
  dtfDurationMs?: number;
}
export interface SansPbxStop extends SansPbxIds {
  event: 'stop';
  disconnectedBy?: string;
  timestamp?: number | string;
}

export type SansPbxInbound =
  SansPbxConnected | SansPbxAnswer | SansPbxStart | SansPbxMedia | SansPbxDtmf | SansPbxStop;

/** Audio towards the caller: base64 PCM16 LE mono plus the call's identity. */
export interface SansPbxReverseMedia {
  event: 'reverse-media';
  payload: string;
  streamId: string;
  channelId: string;
  callId: string;
}
export type SansPbxOutbound = SansPbxReverseMedia;

export type SansPbxInboundEvent = SansPbxInbound['event'];

/**
 * Sample rate assumed when `start.mediaFormat` says nothing. What is known of SansPBX names both
 * 8 kHz and 44.1 kHz; 8 kHz is the telephone default, and the media worker makes it configurable
 * (SANSPBX_SAMPLE_RATE).
 */
export const SANSPBX_DEFAULT_SAMPLE_RATE = 8000;

function ids(f: Fields, obj: JsonObject): SansPbxIds {
  const out: SansPbxIds = {};
  const streamId = f.optionalId(obj, 'streamId');
  const channelId = f.optionalId(obj, 'channelId');
  const callId = f.optionalId(obj, 'callId');
  if (streamId !== undefined) out.streamId = streamId;
  if (channelId !== undefined) out.channelId = channelId;
  if (callId !== undefined) out.callId = callId;
  return out;
}

/** Validates a parsed SansPBX message (lenient, see the module comment); returns a normalized copy. */
export function validateSansPbxInbound(value: unknown): SansPbxInbound {
  const { obj, event } = eventOf(value, 'sanspbx inbound');
  const f = new Fields(`sanspbx ${event}`);
  switch (event) {
    case 'connected':
      return { event, ...ids(f, obj) };
    case 'answer':
      return {
        event,
        streamId: f.id(obj, 'streamId'),
        channelId: f.id(obj, 'channelId'),
        callId: f.id(obj, 'callId'),
      };
    case 'start': {
      const msg: SansPbxStart = { event, ...ids(f, obj) };
      const raw = obj.mediaFormat;
      if (raw !== undefined && raw !== null) {
        const mf = f.object(obj, 'mediaFormat');
        const mediaFormat: SansPbxMediaFormat = {};
        if (mf.encoding !== undefined) {
          mediaFormat.encoding = f.string(mf, 'encoding', 'mediaFormat.encoding');
        }
        const sampleRate = f.optionalNumeric(mf, 'sampleRate', 'mediaFormat.sampleRate');
        if (sampleRate !== undefined) mediaFormat.sampleRate = sampleRate;
        const channels = f.optionalNumeric(mf, 'channels', 'mediaFormat.channels');
        if (channels !== undefined) mediaFormat.channels = channels;
        msg.mediaFormat = mediaFormat;
      }
      return msg;
    }
    case 'media': {
      const msg: SansPbxMedia = { event, ...ids(f, obj), payload: f.string(obj, 'payload') };
      const chunk = f.optionalNumeric(obj, 'chunk');
      if (chunk !== undefined) msg.chunk = chunk;
      return msg;
    }
    case 'dtmf': {
      const msg: SansPbxDtmf = {
        event,
        ...ids(f, obj),
        digit: f.id(obj, 'digit'), // a numeric digit may come as a number
      };
      const duration = f.optionalNumeric(obj, 'dtfDurationMs');
      if (duration !== undefined) msg.dtfDurationMs = duration;
      return msg;
    }
    case 'stop': {
      const msg: SansPbxStop = { event, ...ids(f, obj) };
      if (obj.disconnectedBy !== undefined && obj.disconnectedBy !== null) {
        msg.disconnectedBy = f.id(obj, 'disconnectedBy');
      }
      const ts = obj.timestamp;
      if (typeof ts === 'string' && !/^-?\d+(\.\d+)?$/.test(ts)) {
        msg.timestamp = ts; // e.g. an ISO date
      } else {
        const n = f.optionalNumeric(obj, 'timestamp');
        if (n !== undefined) msg.timestamp = n;
      }
      return msg;
    }
    default:
      throw unknownEvent('sanspbx inbound', event);
  }
}

/** Parses and validates one text message from SansPBX. */
export function parseSansPbxInbound(text: string): SansPbxInbound {
  return validateSansPbxInbound(parseJsonText(text));
}

const REVERSE_MEDIA_KEYS = ['event', 'payload', 'streamId', 'channelId', 'callId'] as const;

/**
 * Strictly validates an outbound `reverse-media`: exactly its five fields, string ids, and a payload
 * that is strict base64 of whole PCM16 samples (an even byte count).
 */
export function validateSansPbxOutbound(value: unknown): SansPbxOutbound {
  const { obj, event } = eventOf(value, 'sanspbx outbound');
  if (event !== 'reverse-media') throw unknownEvent('sanspbx outbound', event);
  const f = new Fields('sanspbx outbound reverse-media');
  f.exactKeys(obj, REVERSE_MEDIA_KEYS);
  const payload = f.string(obj, 'payload');
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64Strict(payload);
  } catch (err) {
    throw new ProtocolError(
      'PROTO_ERR_BAD_BASE64',
      'sanspbx outbound reverse-media: field "payload" is not valid base64',
      { cause: err, field: 'payload' },
    );
  }
  if (bytes.byteLength % 2 !== 0) {
    throw new ProtocolError(
      'PROTO_ERR_INVALID_MESSAGE',
      'sanspbx outbound reverse-media: field "payload" must hold whole PCM16 samples (even bytes)',
      { field: 'payload' },
    );
  }
  return {
    event,
    payload,
    streamId: f.string(obj, 'streamId', 'streamId', { nonEmpty: true }),
    channelId: f.string(obj, 'channelId', 'channelId', { nonEmpty: true }),
    callId: f.string(obj, 'callId', 'callId', { nonEmpty: true }),
  };
}

/** Strictly parses a message a worker sent towards SansPBX (used by the simulator). */
export function parseSansPbxOutbound(text: string): SansPbxOutbound {
  return validateSansPbxOutbound(parseJsonText(text));
}

/** Serializes `reverse-media` with its five fields in a stable order. */
export function serializeSansPbxOutbound(msg: SansPbxOutbound): string {
  if (!isObject(msg) || (msg as { event?: unknown }).event !== 'reverse-media') {
    throw unknownEvent('sanspbx outbound', String((msg as { event?: unknown }).event));
  }
  const f = new Fields('sanspbx outbound reverse-media');
  const obj = msg as unknown as JsonObject;
  return JSON.stringify({
    event: 'reverse-media',
    payload: f.string(obj, 'payload'),
    streamId: f.string(obj, 'streamId', 'streamId', { nonEmpty: true }),
    channelId: f.string(obj, 'channelId', 'channelId', { nonEmpty: true }),
    callId: f.string(obj, 'callId', 'callId', { nonEmpty: true }),
  });
}

/** Serializes a SansPBX inbound message (for the simulator), ids first, optional fields only if set. */
export function serializeSansPbxInbound(msg: SansPbxInbound): string {
  const m = validateSansPbxInbound(msg);
  const out: Record<string, unknown> = { event: m.event };
  if (m.streamId !== undefined) out.streamId = m.streamId;
  if (m.channelId !== undefined) out.channelId = m.channelId;
  if (m.callId !== undefined) out.callId = m.callId;
  switch (m.event) {
    case 'connected':
    case 'answer':
      break;
    case 'start':
      if (m.mediaFormat) out.mediaFormat = m.mediaFormat;
      break;
    case 'media':
      if (m.chunk !== undefined) out.chunk = m.chunk;
      out.payload = m.payload;
      break;
    case 'dtmf':
      out.digit = m.digit;
      if (m.dtfDurationMs !== undefined) out.dtfDurationMs = m.dtfDurationMs;
      break;
    case 'stop':
      if (m.disconnectedBy !== undefined) out.disconnectedBy = m.disconnectedBy;
      if (m.timestamp !== undefined) out.timestamp = m.timestamp;
      break;
  }
  return JSON.stringify(out);
}
