import { describe, expect, it } from 'vitest';
import {
  TestAgentCloseCode,
  TEST_AGENT_MAX_TEXT_CHARS,
  parseTestAgentClientMessage,
  parseTestAgentServerMessage,
  serializeTestAgentClientMessage,
  serializeTestAgentServerMessage,
  validateTestAgentAudio,
  type TestAgentClientMessage,
  type TestAgentServerMessage,
} from '../src/index.js';

const hello: TestAgentServerMessage = {
  type: 'hello',
  protocol: 1,
  sessionId: 'abcdefghijklmnopqrstuv',
  agent: 'parrot',
  sampleRate: 16000,
  channels: 1,
  encoding: 'pcm16le',
  frameMs: 20,
  maxDurationSeconds: 300,
};

describe('parseTestAgentClientMessage', () => {
  it.each<[string, TestAgentClientMessage]>([
    ['{"type":"dtmf","digit":"5"}', { type: 'dtmf', digit: '5' }],
    ['{"type":"dtmf","digit":"#"}', { type: 'dtmf', digit: '#' }],
    ['{"type":"dtmf","digit":"*"}', { type: 'dtmf', digit: '*' }],
    ['{"type":"dtmf","digit":"D"}', { type: 'dtmf', digit: 'D' }],
    ['{"type":"mark","name":"abc-u1"}', { type: 'mark', name: 'abc-u1' }],
    ['{"type":"mark","name":"a.b:c_d-1"}', { type: 'mark', name: 'a.b:c_d-1' }],
    ['{"type":"hangup"}', { type: 'hangup' }],
    [' { "digit" : "0" , "type" : "dtmf" } ', { type: 'dtmf', digit: '0' }],
  ])('parses %s', (text, expected) => {
    expect(parseTestAgentClientMessage(text)).toEqual(expected);
  });

  it.each([
    ['not JSON', '{"type":', 'PROTO_ERR_INVALID_JSON'],
    ['empty text', '', 'PROTO_ERR_INVALID_JSON'],
    ['an array', '[1,2]', 'PROTO_ERR_INVALID_MESSAGE'],
    ['a string', '"dtmf"', 'PROTO_ERR_INVALID_MESSAGE'],
    ['null', 'null', 'PROTO_ERR_INVALID_MESSAGE'],
    ['no type', '{"digit":"1"}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['a numeric type', '{"type":3}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['an unknown type', '{"type":"AUDIO","audio":"AAAA"}', 'PROTO_ERR_UNKNOWN_EVENT'],
    ['a server-only type', '{"type":"clear"}', 'PROTO_ERR_UNKNOWN_EVENT'],
    ['dtmf without digit', '{"type":"dtmf"}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['dtmf with two digits', '{"type":"dtmf","digit":"12"}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['dtmf with a letter', '{"type":"dtmf","digit":"E"}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['dtmf with a number', '{"type":"dtmf","digit":5}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['dtmf with an extra field', '{"type":"dtmf","digit":"5","x":1}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['mark without name', '{"type":"mark"}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['mark with an empty name', '{"type":"mark","name":""}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['mark with a space', '{"type":"mark","name":"a b"}', 'PROTO_ERR_INVALID_MESSAGE'],
    [
      'mark with a long name',
      `{"type":"mark","name":"${'a'.repeat(129)}"}`,
      'PROTO_ERR_INVALID_MESSAGE',
    ],
    ['hangup with a field', '{"type":"hangup","reason":"bye"}', 'PROTO_ERR_INVALID_MESSAGE'],
    [
      'text over the limit',
      `{"type":"mark","name":"${'a'.repeat(TEST_AGENT_MAX_TEXT_CHARS)}"}`,
      'PROTO_ERR_TOO_LARGE',
    ],
  ])('rejects %s with %s', (_name, text, code) => {
    expect(() => parseTestAgentClientMessage(text)).toThrow(expect.objectContaining({ code }));
  });

  it('names the offending field in the message', () => {
    expect(() => parseTestAgentClientMessage('{"type":"dtmf","digit":"5","extra":true}')).toThrow(
      /extra/,
    );
  });
});

describe('serializeTestAgentClientMessage', () => {
  it.each<TestAgentClientMessage>([
    { type: 'dtmf', digit: '9' },
    { type: 'mark', name: 'sess-u3' },
    { type: 'hangup' },
  ])('round-trips %j', (msg) => {
    expect(parseTestAgentClientMessage(serializeTestAgentClientMessage(msg))).toEqual(msg);
  });

  it('drops fields outside the message type', () => {
    const msg = { type: 'hangup', reason: 'x' } as unknown as TestAgentClientMessage;
    expect(serializeTestAgentClientMessage(msg)).toBe('{"type":"hangup"}');
  });
});

describe('serializeTestAgentServerMessage', () => {
  it.each<[TestAgentServerMessage, string]>([
    [
      hello,
      '{"type":"hello","protocol":1,"sessionId":"abcdefghijklmnopqrstuv","agent":"parrot",' +
        '"sampleRate":16000,"channels":1,"encoding":"pcm16le","frameMs":20,"maxDurationSeconds":300}',
    ],
    [{ type: 'mark', name: 's-u1' }, '{"type":"mark","name":"s-u1"}'],
    [{ type: 'clear' }, '{"type":"clear"}'],
    [
      { type: 'event', event: 'say', utteranceId: 's-u1', durationMs: 1200 },
      '{"type":"event","event":"say","utteranceId":"s-u1","durationMs":1200}',
    ],
    [
      { type: 'event', event: 'say', utteranceId: 's-u2', durationMs: 200, tone: '5' },
      '{"type":"event","event":"say","utteranceId":"s-u2","durationMs":200,"tone":"5"}',
    ],
    [{ type: 'event', event: 'dtmf', digit: '#' }, '{"type":"event","event":"dtmf","digit":"#"}'],
    [{ type: 'hangup', reason: 'max-duration' }, '{"type":"hangup","reason":"max-duration"}'],
    [
      { type: 'error', code: 'PROTO_ERR_INVALID_JSON', message: 'bad' },
      '{"type":"error","code":"PROTO_ERR_INVALID_JSON","message":"bad"}',
    ],
  ])('writes %j exactly', (msg, text) => {
    expect(serializeTestAgentServerMessage(msg)).toBe(text);
    expect(parseTestAgentServerMessage(text)).toEqual(msg);
  });
});

describe('parseTestAgentServerMessage', () => {
  const helloWith = (patch: Record<string, unknown>): string =>
    JSON.stringify({ ...hello, ...patch });

  it.each([
    ['hello of another protocol version', helloWith({ protocol: 2 }), 'PROTO_ERR_INVALID_MESSAGE'],
    ['hello at 44100 Hz', helloWith({ sampleRate: 44100 }), 'PROTO_ERR_INVALID_MESSAGE'],
    ['hello in stereo', helloWith({ channels: 2 }), 'PROTO_ERR_INVALID_MESSAGE'],
    ['hello in μ-law', helloWith({ encoding: 'mulaw' }), 'PROTO_ERR_INVALID_MESSAGE'],
    ['hello with 10 ms frames', helloWith({ frameMs: 10 }), 'PROTO_ERR_INVALID_MESSAGE'],
    ['hello with zero duration', helloWith({ maxDurationSeconds: 0 }), 'PROTO_ERR_INVALID_MESSAGE'],
    ['hello with an extra field', helloWith({ token: 'x' }), 'PROTO_ERR_INVALID_MESSAGE'],
    ['an unknown event', '{"type":"event","event":"played"}', 'PROTO_ERR_UNKNOWN_EVENT'],
    [
      'say with a fractional duration',
      '{"type":"event","event":"say","utteranceId":"u","durationMs":1.5}',
      'PROTO_ERR_INVALID_MESSAGE',
    ],
    [
      'say with a bad tone',
      '{"type":"event","event":"say","utteranceId":"u","durationMs":1,"tone":"x"}',
      'PROTO_ERR_INVALID_MESSAGE',
    ],
    ['hangup without reason', '{"type":"hangup"}', 'PROTO_ERR_INVALID_MESSAGE'],
    [
      'error with a lower-case code',
      '{"type":"error","code":"bad","message":"m"}',
      'PROTO_ERR_INVALID_MESSAGE',
    ],
    ['clear with a field', '{"type":"clear","streamSid":"x"}', 'PROTO_ERR_INVALID_MESSAGE'],
    ['a client-only type', '{"type":"dtmf","digit":"1"}', 'PROTO_ERR_UNKNOWN_EVENT'],
  ])('rejects %s', (_name, text, code) => {
    expect(() => parseTestAgentServerMessage(text)).toThrow(expect.objectContaining({ code }));
  });
});

describe('validateTestAgentAudio', () => {
  it.each([2, 640, 1920, 65536])('accepts %i bytes', (bytes) => {
    expect(() => validateTestAgentAudio(bytes)).not.toThrow();
  });

  it.each([0, 1, 641])('rejects %i bytes', (bytes) => {
    expect(() => validateTestAgentAudio(bytes)).toThrow(
      expect.objectContaining({ code: 'PROTO_ERR_INVALID_MESSAGE' }),
    );
  });
});

describe('TestAgentCloseCode', () => {
  it('keeps our own codes in the 4000-4999 range and the rest RFC 6455 codes', () => {
    for (const [name, code] of Object.entries(TestAgentCloseCode)) {
      if (name === 'maxDuration') expect(code).toBe(4008);
      else expect([1000, 1001, 1003, 1008, 1009, 1011, 1012, 1013]).toContain(code);
    }
  });

  it('has one name per code', () => {
    const codes = Object.values(TestAgentCloseCode);
    expect(new Set(codes).size).toBe(codes.length);
  });
});
