import { describe, expect, it } from 'vitest';
import {
  encodeBase64,
  parseSansPbxInbound,
  parseSansPbxOutbound,
  serializeSansPbxInbound,
  serializeSansPbxOutbound,
  type SansPbxInbound,
  type SansPbxOutbound,
} from '../src/index.js';

const PCM = encodeBase64(new Uint8Array(320));
const ids = { streamId: 'st-1', channelId: 'SIP/trunk-0000001', callId: 'c-42' };

// Canonical (normalized) messages: what the parser returns and the serializer writes.
const inbound: [string, SansPbxInbound][] = [
  ['connected', { event: 'connected' }],
  ['answer', { event: 'answer', ...ids }],
  [
    'start',
    {
      event: 'start',
      ...ids,
      mediaFormat: { encoding: 'audio/l16', sampleRate: 8000, channels: 1 },
    },
  ],
  ['start without mediaFormat', { event: 'start', channelId: ids.channelId }],
  ['media', { event: 'media', ...ids, chunk: 7, payload: PCM }],
  ['media with payload only', { event: 'media', payload: PCM }],
  ['dtmf', { event: 'dtmf', ...ids, digit: '5', dtfDurationMs: 120 }],
  ['stop', { event: 'stop', callId: 'c-42', disconnectedBy: 'caller', timestamp: 1767225600000 }],
  ['stop with an ISO timestamp', { event: 'stop', timestamp: '2026-01-01T00:00:00Z' }],
];

describe('parseSansPbxInbound', () => {
  it.each(inbound)('parses %s', (_name, msg) => {
    expect(parseSansPbxInbound(JSON.stringify(msg))).toEqual(msg);
  });

  it.each([
    [
      'numeric ids',
      { event: 'answer', streamId: 11, channelId: 'SIP/x', callId: 42 },
      { event: 'answer', streamId: '11', channelId: 'SIP/x', callId: '42' },
    ],
    [
      'a string chunk',
      { event: 'media', payload: PCM, chunk: '12' },
      { event: 'media', payload: PCM, chunk: 12 },
    ],
    [
      'a numeric digit',
      { event: 'dtmf', digit: 5, dtfDurationMs: '90' },
      { event: 'dtmf', digit: '5', dtfDurationMs: 90 },
    ],
    [
      'a string sample rate',
      { event: 'start', mediaFormat: { sampleRate: '44100' } },
      { event: 'start', mediaFormat: { sampleRate: 44100 } },
    ],
    [
      'a numeric-string timestamp',
      { event: 'stop', timestamp: '1700' },
      { event: 'stop', timestamp: 1700 },
    ],
    [
      'null optional ids',
      { event: 'media', payload: PCM, callId: null },
      { event: 'media', payload: PCM },
    ],
    [
      'unknown extra fields',
      { event: 'media', payload: PCM, codec: 'x', extra: { a: 1 } },
      { event: 'media', payload: PCM },
    ],
  ])('is lenient with %s', (_name, raw, expected) => {
    expect(parseSansPbxInbound(JSON.stringify(raw))).toEqual(expected);
  });

  it.each([
    ['not JSON', 'nope', 'PROTO_ERR_INVALID_JSON', undefined],
    ['an array', '[]', 'PROTO_ERR_INVALID_MESSAGE', undefined],
    ['no event', '{"payload":"AA=="}', 'PROTO_ERR_INVALID_MESSAGE', 'event'],
    ['an unknown event', '{"event":"ringing"}', 'PROTO_ERR_UNKNOWN_EVENT', 'event'],
    [
      'an outbound event',
      `{"event":"reverse-media","payload":"${PCM}"}`,
      'PROTO_ERR_UNKNOWN_EVENT',
      'event',
    ],
    [
      'answer without streamId',
      JSON.stringify({ event: 'answer', channelId: 'c', callId: 'x' }),
      'PROTO_ERR_INVALID_MESSAGE',
      'streamId',
    ],
    [
      'answer without callId',
      JSON.stringify({ event: 'answer', streamId: 's', channelId: 'c' }),
      'PROTO_ERR_INVALID_MESSAGE',
      'callId',
    ],
    [
      'answer with an empty channelId',
      JSON.stringify({ ...ids, event: 'answer', channelId: '' }),
      'PROTO_ERR_INVALID_MESSAGE',
      'channelId',
    ],
    [
      'an object id',
      JSON.stringify({ event: 'media', payload: PCM, streamId: {} }),
      'PROTO_ERR_INVALID_MESSAGE',
      'streamId',
    ],
    [
      'media without payload',
      '{"event":"media","chunk":1}',
      'PROTO_ERR_INVALID_MESSAGE',
      'payload',
    ],
    [
      'media with a numeric payload',
      '{"event":"media","payload":5}',
      'PROTO_ERR_INVALID_MESSAGE',
      'payload',
    ],
    [
      'a non-numeric chunk',
      `{"event":"media","payload":"${PCM}","chunk":"one"}`,
      'PROTO_ERR_INVALID_MESSAGE',
      'chunk',
    ],
    ['dtmf without digit', '{"event":"dtmf"}', 'PROTO_ERR_INVALID_MESSAGE', 'digit'],
    [
      'a boolean duration',
      '{"event":"dtmf","digit":"1","dtfDurationMs":true}',
      'PROTO_ERR_INVALID_MESSAGE',
      'dtfDurationMs',
    ],
    [
      'mediaFormat as a string',
      '{"event":"start","mediaFormat":"pcm"}',
      'PROTO_ERR_INVALID_MESSAGE',
      'mediaFormat',
    ],
    [
      'a non-numeric sample rate',
      '{"event":"start","mediaFormat":{"sampleRate":"fast"}}',
      'PROTO_ERR_INVALID_MESSAGE',
      'mediaFormat.sampleRate',
    ],
    [
      'a numeric encoding',
      '{"event":"start","mediaFormat":{"encoding":1}}',
      'PROTO_ERR_INVALID_MESSAGE',
      'mediaFormat.encoding',
    ],
    [
      'an object timestamp',
      '{"event":"stop","timestamp":{}}',
      'PROTO_ERR_INVALID_MESSAGE',
      'timestamp',
    ],
  ])('rejects %s', (_name, text, code, field) => {
    let error: unknown;
    try {
      parseSansPbxInbound(text);
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code });
    if (field) expect((error as { field: string }).field).toBe(field);
  });
});

describe('serializeSansPbxInbound', () => {
  it.each(inbound)('round-trips %s', (_name, msg) => {
    const text = serializeSansPbxInbound(msg);
    expect(parseSansPbxInbound(text)).toEqual(msg);
  });

  it('writes identity first and payload last on media', () => {
    expect(serializeSansPbxInbound({ event: 'media', payload: 'AA==', chunk: 1, ...ids })).toBe(
      `{"event":"media","streamId":"st-1","channelId":"SIP/trunk-0000001","callId":"c-42","chunk":1,"payload":"AA=="}`,
    );
  });
});

const reverse: SansPbxOutbound = { event: 'reverse-media', payload: PCM, ...ids };

describe('SansPBX outbound', () => {
  it('serializes reverse-media with its five fields in a stable order and round-trips', () => {
    const text = serializeSansPbxOutbound({ ...ids, payload: PCM, event: 'reverse-media' });
    expect(text).toBe(
      `{"event":"reverse-media","payload":"${PCM}","streamId":"st-1","channelId":"SIP/trunk-0000001","callId":"c-42"}`,
    );
    expect(parseSansPbxOutbound(text)).toEqual(reverse);
  });

  it.each([
    ['another event', { event: 'media', payload: PCM }, 'PROTO_ERR_UNKNOWN_EVENT'],
    [
      'a missing callId',
      { event: 'reverse-media', payload: PCM, streamId: 's', channelId: 'c' },
      'PROTO_ERR_INVALID_MESSAGE',
    ],
  ])('serialize refuses %s', (_name, msg, code) => {
    expect(() => serializeSansPbxOutbound(msg as unknown as SansPbxOutbound)).toThrow(
      expect.objectContaining({ code }),
    );
  });

  it.each([
    ['an extra field', { ...reverse, chunk: 1 }, 'PROTO_ERR_INVALID_MESSAGE', 'chunk'],
    [
      'a missing channelId',
      { ...reverse, channelId: undefined },
      'PROTO_ERR_INVALID_MESSAGE',
      'channelId',
    ],
    ['a numeric streamId', { ...reverse, streamId: 1 }, 'PROTO_ERR_INVALID_MESSAGE', 'streamId'],
    ['an empty callId', { ...reverse, callId: '' }, 'PROTO_ERR_INVALID_MESSAGE', 'callId'],
    ['a non-base64 payload', { ...reverse, payload: '%%%%' }, 'PROTO_ERR_BAD_BASE64', 'payload'],
    [
      'an odd number of PCM bytes',
      { ...reverse, payload: 'AAAA' },
      'PROTO_ERR_INVALID_MESSAGE',
      'payload',
    ],
    ['an unknown event', { ...reverse, event: 'media' }, 'PROTO_ERR_UNKNOWN_EVENT', 'event'],
  ])('parse rejects %s', (_name, msg, code, field) => {
    let error: unknown;
    try {
      parseSansPbxOutbound(JSON.stringify(msg));
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({ code, field });
  });
});
