import { describe, expect, it } from 'vitest';
import {
  encodeBase64,
  parseTwilioInbound,
  parseTwilioOutbound,
  serializeTwilioInbound,
  serializeTwilioOutbound,
  type TwilioInbound,
  type TwilioOutbound,
} from '../src/index.js';

const SID = 'MZ11111111111111111111111111111111';
const PAYLOAD = encodeBase64(new Uint8Array(160).fill(0xff));

const inbound = {
  connected: { event: 'connected', protocol: 'Call', version: '1.0.0' },
  start: {
    event: 'start',
    sequenceNumber: '1',
    streamSid: SID,
    start: {
      accountSid: 'AC22',
      streamSid: SID,
      callSid: 'CA33',
      tracks: ['inbound'],
      customParameters: { callToken: 't0k' },
      mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
    },
  },
  media: {
    event: 'media',
    sequenceNumber: '2',
    streamSid: SID,
    media: { track: 'inbound', chunk: '1', timestamp: '20', payload: PAYLOAD },
  },
  dtmf: {
    event: 'dtmf',
    streamSid: SID,
    sequenceNumber: '40',
    dtmf: { track: 'inbound_track', digit: '7' },
  },
  mark: { event: 'mark', sequenceNumber: '57', streamSid: SID, mark: { name: 'utt-3' } },
  stop: {
    event: 'stop',
    sequenceNumber: '900',
    streamSid: SID,
    stop: { accountSid: 'AC22', callSid: 'CA33' },
  },
} satisfies Record<TwilioInbound['event'], TwilioInbound>;

const outbound = {
  media: { event: 'media', streamSid: SID, media: { payload: PAYLOAD } },
  mark: { event: 'mark', streamSid: SID, mark: { name: 'utt-1' } },
  clear: { event: 'clear', streamSid: SID },
} satisfies Record<TwilioOutbound['event'], TwilioOutbound>;

type Json = Record<string, unknown>;

/** A deep copy of `base` with `path` set to `value` (or deleted when value is `DELETE`). */
const DELETE = Symbol('delete');
function patch(base: object, path: string, value: unknown): string {
  const copy = structuredClone(base) as Json;
  const keys = path.split('.');
  let target = copy;
  for (const k of keys.slice(0, -1)) target = target[k] as Json;
  const last = keys[keys.length - 1]!;
  if (value === DELETE) delete target[last];
  else target[last] = value;
  return JSON.stringify(copy);
}

describe('parseTwilioInbound', () => {
  it.each(Object.entries(inbound))('parses %s as Twilio sends it', (_event, msg) => {
    expect(parseTwilioInbound(JSON.stringify(msg))).toEqual(msg);
  });

  it.each([
    ['media on the outbound track', patch(inbound.media, 'media.track', 'outbound')],
    ['start with both tracks', patch(inbound.start, 'start.tracks', ['inbound', 'outbound'])],
    ['start without custom parameters', patch(inbound.start, 'start.customParameters', {})],
    ['an empty mark name', patch(inbound.mark, 'mark.name', '')],
  ])('accepts %s', (_name, text) => {
    expect(() => parseTwilioInbound(text)).not.toThrow();
  });

  it.each([
    ['top level', patch(inbound.media, 'newField', 1)],
    ['media body', patch(inbound.media, 'media.newField', 'x')],
    ['start body', patch(inbound.start, 'start.newField', true)],
    ['media format', patch(inbound.start, 'start.mediaFormat.bitRate', 64)],
    ['connected', patch(inbound.connected, 'extra', 'x')],
  ])('ignores unknown fields Twilio may add (%s) and drops them', (_name, text) => {
    const parsed = parseTwilioInbound(text) as unknown as Json;
    expect(JSON.stringify(parsed)).not.toContain('ew');
    expect(JSON.stringify(parsed)).not.toContain('bitRate');
    expect(JSON.stringify(parsed)).not.toContain('extra');
  });

  it.each([
    ['not JSON', '{"event":', 'PROTO_ERR_INVALID_JSON', undefined],
    ['empty text', '', 'PROTO_ERR_INVALID_JSON', undefined],
    ['a JSON array', '[1,2]', 'PROTO_ERR_INVALID_MESSAGE', undefined],
    ['a JSON string', '"media"', 'PROTO_ERR_INVALID_MESSAGE', undefined],
    ['JSON null', 'null', 'PROTO_ERR_INVALID_MESSAGE', undefined],
    ['no event', '{"streamSid":"MZ"}', 'PROTO_ERR_INVALID_MESSAGE', 'event'],
    ['a numeric event', '{"event":5}', 'PROTO_ERR_INVALID_MESSAGE', 'event'],
    ['an unknown event', '{"event":"hello"}', 'PROTO_ERR_UNKNOWN_EVENT', 'event'],
    [
      'an outbound-only event',
      '{"event":"clear","streamSid":"MZ"}',
      'PROTO_ERR_UNKNOWN_EVENT',
      'event',
    ],
    [
      'connected with another protocol',
      patch(inbound.connected, 'protocol', 'Stream'),
      'PROTO_ERR_INVALID_MESSAGE',
      'protocol',
    ],
    [
      'connected without version',
      patch(inbound.connected, 'version', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'version',
    ],
    [
      'a numeric sequenceNumber',
      patch(inbound.start, 'sequenceNumber', 1),
      'PROTO_ERR_INVALID_MESSAGE',
      'sequenceNumber',
    ],
    [
      'a non-decimal sequenceNumber',
      patch(inbound.media, 'sequenceNumber', '1e3'),
      'PROTO_ERR_INVALID_MESSAGE',
      'sequenceNumber',
    ],
    [
      'a negative sequenceNumber',
      patch(inbound.mark, 'sequenceNumber', '-1'),
      'PROTO_ERR_INVALID_MESSAGE',
      'sequenceNumber',
    ],
    [
      'no streamSid',
      patch(inbound.media, 'streamSid', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'streamSid',
    ],
    [
      'an empty streamSid',
      patch(inbound.stop, 'streamSid', ''),
      'PROTO_ERR_INVALID_MESSAGE',
      'streamSid',
    ],
    [
      'start without the start object',
      patch(inbound.start, 'start', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'start',
    ],
    [
      'start.streamSid differing',
      patch(inbound.start, 'start.streamSid', 'MZ99'),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.streamSid',
    ],
    [
      'a numeric start.callSid',
      patch(inbound.start, 'start.callSid', 33),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.callSid',
    ],
    [
      'no start.accountSid',
      patch(inbound.start, 'start.accountSid', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.accountSid',
    ],
    [
      'start.tracks as a string',
      patch(inbound.start, 'start.tracks', 'inbound'),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.tracks',
    ],
    [
      'an unknown track in start.tracks',
      patch(inbound.start, 'start.tracks', ['inbound', 'both']),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.tracks.1',
    ],
    [
      'a numeric custom parameter',
      patch(inbound.start, 'start.customParameters', { a: 1 }),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.customParameters.a',
    ],
    [
      'customParameters as an array',
      patch(inbound.start, 'start.customParameters', ['a']),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.customParameters',
    ],
    [
      'no customParameters',
      patch(inbound.start, 'start.customParameters', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.customParameters',
    ],
    [
      'sampleRate as a string',
      patch(inbound.start, 'start.mediaFormat.sampleRate', '8000'),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.mediaFormat.sampleRate',
    ],
    [
      'channels as a string',
      patch(inbound.start, 'start.mediaFormat.channels', '1'),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.mediaFormat.channels',
    ],
    [
      'another encoding',
      patch(inbound.start, 'start.mediaFormat.encoding', 'audio/x-l16'),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.mediaFormat.encoding',
    ],
    [
      'no mediaFormat',
      patch(inbound.start, 'start.mediaFormat', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'start.mediaFormat',
    ],
    ['media as a string', patch(inbound.media, 'media', 'x'), 'PROTO_ERR_INVALID_MESSAGE', 'media'],
    [
      'media.track inbound_track (dtmf spelling)',
      patch(inbound.media, 'media.track', 'inbound_track'),
      'PROTO_ERR_INVALID_MESSAGE',
      'media.track',
    ],
    [
      'a numeric media.chunk',
      patch(inbound.media, 'media.chunk', 1),
      'PROTO_ERR_INVALID_MESSAGE',
      'media.chunk',
    ],
    [
      'a numeric media.timestamp',
      patch(inbound.media, 'media.timestamp', 20),
      'PROTO_ERR_INVALID_MESSAGE',
      'media.timestamp',
    ],
    [
      'no media.payload',
      patch(inbound.media, 'media.payload', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'media.payload',
    ],
    [
      'dtmf.track inbound (media spelling)',
      patch(inbound.dtmf, 'dtmf.track', 'inbound'),
      'PROTO_ERR_INVALID_MESSAGE',
      'dtmf.track',
    ],
    [
      'a numeric dtmf.digit',
      patch(inbound.dtmf, 'dtmf.digit', 7),
      'PROTO_ERR_INVALID_MESSAGE',
      'dtmf.digit',
    ],
    [
      'no dtmf.sequenceNumber',
      patch(inbound.dtmf, 'sequenceNumber', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'sequenceNumber',
    ],
    [
      'a numeric mark.name',
      patch(inbound.mark, 'mark.name', 3),
      'PROTO_ERR_INVALID_MESSAGE',
      'mark.name',
    ],
    [
      'mark without the mark object',
      patch(inbound.mark, 'mark', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'mark',
    ],
    [
      'stop without callSid',
      patch(inbound.stop, 'stop.callSid', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'stop.callSid',
    ],
    ['stop.stop as null', patch(inbound.stop, 'stop', null), 'PROTO_ERR_INVALID_MESSAGE', 'stop'],
  ])('rejects %s', (_name, text, code, field) => {
    let error: unknown;
    try {
      parseTwilioInbound(text);
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code, name: 'ProtocolError' });
    if (field) {
      expect((error as { field: string }).field).toBe(field);
      expect((error as Error).message).toContain(`"${field}"`);
    }
  });
});

describe('serializeTwilioInbound', () => {
  it.each(Object.entries(inbound))(
    'writes %s in Twilio’s field order and round-trips',
    (_e, msg) => {
      const text = serializeTwilioInbound(msg);
      expect(text).toBe(JSON.stringify(msg));
      expect(parseTwilioInbound(text)).toEqual(msg);
    },
  );

  it('refuses to write a malformed message', () => {
    const bad = { ...inbound.media, sequenceNumber: 2 } as unknown as TwilioInbound;
    expect(() => serializeTwilioInbound(bad)).toThrow(
      expect.objectContaining({ code: 'PROTO_ERR_INVALID_MESSAGE' }),
    );
  });
});

describe('serializeTwilioOutbound', () => {
  it.each([
    [
      'media',
      outbound.media,
      `{"event":"media","streamSid":"${SID}","media":{"payload":"${PAYLOAD}"}}`,
    ],
    ['mark', outbound.mark, `{"event":"mark","streamSid":"${SID}","mark":{"name":"utt-1"}}`],
    ['clear', outbound.clear, `{"event":"clear","streamSid":"${SID}"}`],
  ])('writes %s with exactly the documented fields', (_name, msg, text) => {
    expect(serializeTwilioOutbound(msg)).toBe(text);
    expect(parseTwilioOutbound(text)).toEqual(msg);
  });

  it.each([
    [
      'media',
      { media: { payload: PAYLOAD, track: 'outbound' }, streamSid: SID, event: 'media', extra: 1 },
      outbound.media,
    ],
    ['mark', { mark: { name: 'utt-1', extra: 2 }, event: 'mark', streamSid: SID }, outbound.mark],
    ['clear', { streamSid: SID, event: 'clear', sequenceNumber: '3' }, outbound.clear],
  ])('drops fields Twilio would reject and normalizes the order (%s)', (_name, msg, expected) => {
    expect(serializeTwilioOutbound(msg as TwilioOutbound)).toBe(JSON.stringify(expected));
  });

  it.each([
    ['an unknown event', { event: 'stop', streamSid: SID }, 'PROTO_ERR_UNKNOWN_EVENT'],
    ['no streamSid', { event: 'clear' }, 'PROTO_ERR_INVALID_MESSAGE'],
    ['an empty streamSid', { event: 'clear', streamSid: '' }, 'PROTO_ERR_INVALID_MESSAGE'],
    ['no mark name', { event: 'mark', streamSid: SID, mark: {} }, 'PROTO_ERR_INVALID_MESSAGE'],
    ['no media object', { event: 'media', streamSid: SID }, 'PROTO_ERR_INVALID_MESSAGE'],
  ])('refuses %s', (_name, msg, code) => {
    expect(() => serializeTwilioOutbound(msg as unknown as TwilioOutbound)).toThrow(
      expect.objectContaining({ code }),
    );
  });
});

describe('parseTwilioOutbound', () => {
  it.each([
    ['not JSON', 'media', 'PROTO_ERR_INVALID_JSON', undefined],
    ['an array', '[]', 'PROTO_ERR_INVALID_MESSAGE', undefined],
    ['an inbound-only event', JSON.stringify(inbound.stop), 'PROTO_ERR_UNKNOWN_EVENT', 'event'],
    [
      'an extra top-level field',
      patch(outbound.media, 'sequenceNumber', '1'),
      'PROTO_ERR_INVALID_MESSAGE',
      'sequenceNumber',
    ],
    [
      'an extra media field',
      patch(outbound.media, 'media.track', 'outbound'),
      'PROTO_ERR_INVALID_MESSAGE',
      'media.track',
    ],
    [
      'an extra mark field',
      patch(outbound.mark, 'mark.id', 1),
      'PROTO_ERR_INVALID_MESSAGE',
      'mark.id',
    ],
    [
      'an extra clear field',
      patch(outbound.clear, 'media', {}),
      'PROTO_ERR_INVALID_MESSAGE',
      'media',
    ],
    [
      'a missing streamSid',
      patch(outbound.clear, 'streamSid', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'streamSid',
    ],
    [
      'a numeric streamSid',
      patch(outbound.mark, 'streamSid', 12),
      'PROTO_ERR_INVALID_MESSAGE',
      'streamSid',
    ],
    [
      'a null streamSid',
      patch(outbound.media, 'streamSid', null),
      'PROTO_ERR_INVALID_MESSAGE',
      'streamSid',
    ],
    [
      'an empty streamSid',
      patch(outbound.media, 'streamSid', ''),
      'PROTO_ERR_INVALID_MESSAGE',
      'streamSid',
    ],
    [
      'a missing media object',
      patch(outbound.media, 'media', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'media',
    ],
    [
      'a missing payload',
      patch(outbound.media, 'media.payload', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'media.payload',
    ],
    [
      'a numeric payload',
      patch(outbound.media, 'media.payload', 5),
      'PROTO_ERR_INVALID_MESSAGE',
      'media.payload',
    ],
    [
      'a non-base64 payload',
      patch(outbound.media, 'media.payload', 'not base64!'),
      'PROTO_ERR_BAD_BASE64',
      'media.payload',
    ],
    [
      'an unpadded payload',
      patch(outbound.media, 'media.payload', 'AAE'),
      'PROTO_ERR_BAD_BASE64',
      'media.payload',
    ],
    [
      'a mark without mark',
      patch(outbound.mark, 'mark', DELETE),
      'PROTO_ERR_INVALID_MESSAGE',
      'mark',
    ],
    [
      'a mark with a numeric name',
      patch(outbound.mark, 'mark.name', 1),
      'PROTO_ERR_INVALID_MESSAGE',
      'mark.name',
    ],
  ])('rejects %s', (_name, text, code, field) => {
    let error: unknown;
    try {
      parseTwilioOutbound(text);
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code });
    if (field) expect((error as { field: string }).field).toBe(field);
  });
});
