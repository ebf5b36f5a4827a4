import { CloseCode } from './close-code.js';
import { ProtocolError } from './errors.js';

// The test-agent protocol between the browser page and a test-agent worker; the reference is
// docs/test-agent-protocol.md. Binary WebSocket messages carry PCM16 little-endian mono audio at
// the rate the server announces in `hello`; text messages carry the JSON control messages below.
// Audio travels as binary messages rather than base64 inside JSON: that costs no base64 and no
// JSON parse per audio message.

/** Announced in `hello`; bumped on an incompatible change. */
export const TEST_AGENT_PROTOCOL_VERSION = 1;
/** Duration of one server→browser audio frame. */
export const TEST_AGENT_FRAME_MS = 20;
/** Rates a worker may announce (TEST_AGENT_SAMPLE_RATE). */
export const TEST_AGENT_SAMPLE_RATES = [8000, 16000, 24000, 48000] as const;
export type TestAgentSampleRate = (typeof TEST_AGENT_SAMPLE_RATES)[number];
/** Longest text message accepted from the browser, in characters. */
export const TEST_AGENT_MAX_TEXT_CHARS = 4096;
/** Digits the keypad may send (RFC 4733 events 0–15). */
export const TEST_AGENT_DTMF_DIGITS = '0123456789*#ABCD';
const MAX_MARK_NAME_CHARS = 128;
const MAX_REASON_CHARS = 200;
const MARK_NAME = /^[A-Za-z0-9._:-]+$/;

/**
 * WebSocket close codes of a test-agent session: the shared table (1000 a hangup on either side,
 * 1008 too many malformed messages, 1011 the worker or the agent failed, 1012 the worker is
 * restarting, 1013 the browser reads too slowly, ...) plus one of ours from the 4000–4999 range
 * that is for applications. Reasons are short English sentences (at most 123 bytes).
 */
export const TestAgentCloseCode = {
  ...CloseCode,
  /** The session reached its maximum duration (`maxDurationSeconds` in `hello`). */
  maxDuration: 4008,
} as const;

// ── browser → worker ────────────────────────────────────────────────────────────────────────

/** The keypad was pressed. */
export interface TestAgentDtmfMessage {
  type: 'dtmf';
  digit: string;
}
/** Playback acknowledgement: everything before the server's mark of this name has been played. */
export interface TestAgentMarkMessage {
  type: 'mark';
  name: string;
}
/** The person pressed Hang up. */
export interface TestAgentClientHangupMessage {
  type: 'hangup';
}
export type TestAgentClientMessage =
  TestAgentDtmfMessage | TestAgentMarkMessage | TestAgentClientHangupMessage;

// ── worker → browser ────────────────────────────────────────────────────────────────────────

/** First message of every session: the audio format and the limits. */
export interface TestAgentHelloMessage {
  type: 'hello';
  protocol: typeof TEST_AGENT_PROTOCOL_VERSION;
  sessionId: string;
  agent: string;
  sampleRate: TestAgentSampleRate;
  channels: 1;
  encoding: 'pcm16le';
  frameMs: typeof TEST_AGENT_FRAME_MS;
  maxDurationSeconds: number;
}
/** Drop every queued frame and mark at once (barge-in). */
export interface TestAgentClearMessage {
  type: 'clear';
}
/** The agent said something: one event per utterance, after its last piece. */
export interface TestAgentSayEvent {
  type: 'event';
  event: 'say';
  utteranceId: string;
  durationMs: number;
  /** Set when the utterance is a DTMF tone (the parrot agent answers a key with its tone). */
  tone?: string;
}
/** The worker received a DTMF digit from the browser and handed it to the agent. */
export interface TestAgentDtmfEvent {
  type: 'event';
  event: 'dtmf';
  digit: string;
}
export type TestAgentEventMessage = TestAgentSayEvent | TestAgentDtmfEvent;
/** The session is over; a close follows. */
export interface TestAgentServerHangupMessage {
  type: 'hangup';
  reason: string;
}
export interface TestAgentErrorMessage {
  type: 'error';
  code: string;
  message: string;
}
export type TestAgentServerMessage =
  | TestAgentHelloMessage
  | TestAgentMarkMessage
  | TestAgentClearMessage
  | TestAgentEventMessage
  | TestAgentServerHangupMessage
  | TestAgentErrorMessage;

// ── parse / serialize ───────────────────────────────────────────────────────────────────────

type Fields = Record<string, unknown>;

function invalid(message: string): ProtocolError {
  return new ProtocolError('PROTO_ERR_INVALID_MESSAGE', message);
}

function parseObject(text: string): Fields {
  if (text.length > TEST_AGENT_MAX_TEXT_CHARS) {
    throw new ProtocolError(
      'PROTO_ERR_TOO_LARGE',
      `text message of ${text.length} characters is over the limit of ${TEST_AGENT_MAX_TEXT_CHARS}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError('PROTO_ERR_INVALID_JSON', 'text message is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('message must be a JSON object');
  }
  const obj = value as Fields;
  if (typeof obj.type !== 'string') throw invalid('field "type" must be a string');
  return obj;
}

/** Rejects any field outside `allowed`, so a typo is an error instead of being ignored. */
function onlyFields(obj: Fields, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key))
      throw invalid(`"${String(obj.type)}" has unexpected field "${key}"`);
  }
}

function str(obj: Fields, field: string, maxChars: number, pattern?: RegExp): string {
  const v = obj[field];
  if (typeof v !== 'string' || v.length === 0) {
    throw invalid(`"${String(obj.type)}" needs field "${field}" as a non-empty string`);
  }
  if (v.length > maxChars) throw invalid(`field "${field}" is longer than ${maxChars} characters`);
  if (pattern && !pattern.test(v))
    throw invalid(`field "${field}" has characters outside ${pattern.source}`);
  return v;
}

function int(obj: Fields, field: string, min: number): number {
  const v = obj[field];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw invalid(`"${String(obj.type)}" needs field "${field}" as a whole number >= ${min}`);
  }
  return v;
}

function dtmfDigit(obj: Fields, field: string): string {
  const v = obj[field];
  if (typeof v !== 'string' || v.length !== 1 || !TEST_AGENT_DTMF_DIGITS.includes(v)) {
    throw invalid(`field "${field}" must be one DTMF digit (0-9, *, #, A-D)`);
  }
  return v;
}

/**
 * Parses one text message from the browser, strictly: unknown types, missing, wrongly typed and
 * extra fields throw a `ProtocolError` that says which.
 */
export function parseTestAgentClientMessage(text: string): TestAgentClientMessage {
  const obj = parseObject(text);
  switch (obj.type) {
    case 'dtmf':
      onlyFields(obj, ['type', 'digit']);
      return { type: 'dtmf', digit: dtmfDigit(obj, 'digit') };
    case 'mark':
      onlyFields(obj, ['type', 'name']);
      return { type: 'mark', name: str(obj, 'name', MAX_MARK_NAME_CHARS, MARK_NAME) };
    case 'hangup':
      onlyFields(obj, ['type']);
      return { type: 'hangup' };
    default:
      throw new ProtocolError('PROTO_ERR_UNKNOWN_EVENT', `unknown message type "${obj.type}"`);
  }
}

/** Serializes a browser message with exactly its fields (used by tests and tools). */
export function serializeTestAgentClientMessage(msg: TestAgentClientMessage): string {
  switch (msg.type) {
    case 'dtmf':
      return JSON.stringify({ type: 'dtmf', digit: msg.digit });
    case 'mark':
      return JSON.stringify({ type: 'mark', name: msg.name });
    case 'hangup':
      return JSON.stringify({ type: 'hangup' });
  }
}

/** Serializes a worker message with exactly its documented fields, in a stable order. */
export function serializeTestAgentServerMessage(msg: TestAgentServerMessage): string {
  switch (msg.type) {
    case 'hello':
      return JSON.stringify({
        type: 'hello',
        protocol: msg.protocol,
        sessionId: msg.sessionId,
        agent: msg.agent,
        sampleRate: msg.sampleRate,
        channels: msg.channels,
        encoding: msg.encoding,
        frameMs: msg.frameMs,
        maxDurationSeconds: msg.maxDurationSeconds,
      });
    case 'mark':
      return JSON.stringify({ type: 'mark', name: msg.name });
    case 'clear':
      return '{"type":"clear"}';
    case 'event':
      if (msg.event === 'dtmf')
        return JSON.stringify({ type: 'event', event: 'dtmf', digit: msg.digit });
      return JSON.stringify({
        type: 'event',
        event: 'say',
        utteranceId: msg.utteranceId,
        durationMs: msg.durationMs,
        ...(msg.tone === undefined ? {} : { tone: msg.tone }),
      });
    case 'hangup':
      return JSON.stringify({ type: 'hangup', reason: msg.reason });
    case 'error':
      return JSON.stringify({ type: 'error', code: msg.code, message: msg.message });
  }
}

/** Parses one text message from the worker, strictly (used by tests and non-browser clients). */
export function parseTestAgentServerMessage(text: string): TestAgentServerMessage {
  const obj = parseObject(text);
  switch (obj.type) {
    case 'hello': {
      onlyFields(obj, [
        'type',
        'protocol',
        'sessionId',
        'agent',
        'sampleRate',
        'channels',
        'encoding',
        'frameMs',
        'maxDurationSeconds',
      ]);
      if (obj.protocol !== TEST_AGENT_PROTOCOL_VERSION) {
        throw invalid(
          `"hello" has protocol ${String(obj.protocol)}, expected ${TEST_AGENT_PROTOCOL_VERSION}`,
        );
      }
      const sampleRate = obj.sampleRate;
      if (!(TEST_AGENT_SAMPLE_RATES as readonly unknown[]).includes(sampleRate)) {
        throw invalid(
          `"hello" field "sampleRate" must be one of ${TEST_AGENT_SAMPLE_RATES.join(', ')}`,
        );
      }
      if (obj.channels !== 1) throw invalid('"hello" field "channels" must be 1');
      if (obj.encoding !== 'pcm16le') throw invalid('"hello" field "encoding" must be "pcm16le"');
      if (obj.frameMs !== TEST_AGENT_FRAME_MS) {
        throw invalid(`"hello" field "frameMs" must be ${TEST_AGENT_FRAME_MS}`);
      }
      return {
        type: 'hello',
        protocol: TEST_AGENT_PROTOCOL_VERSION,
        sessionId: str(obj, 'sessionId', 128),
        agent: str(obj, 'agent', 128),
        sampleRate: sampleRate as TestAgentSampleRate,
        channels: 1,
        encoding: 'pcm16le',
        frameMs: TEST_AGENT_FRAME_MS,
        maxDurationSeconds: int(obj, 'maxDurationSeconds', 1),
      };
    }
    case 'mark':
      onlyFields(obj, ['type', 'name']);
      return { type: 'mark', name: str(obj, 'name', MAX_MARK_NAME_CHARS, MARK_NAME) };
    case 'clear':
      onlyFields(obj, ['type']);
      return { type: 'clear' };
    case 'event':
      if (obj.event === 'dtmf') {
        onlyFields(obj, ['type', 'event', 'digit']);
        return { type: 'event', event: 'dtmf', digit: dtmfDigit(obj, 'digit') };
      }
      if (obj.event === 'say') {
        onlyFields(obj, ['type', 'event', 'utteranceId', 'durationMs', 'tone']);
        const say: TestAgentSayEvent = {
          type: 'event',
          event: 'say',
          utteranceId: str(obj, 'utteranceId', MAX_MARK_NAME_CHARS),
          durationMs: int(obj, 'durationMs', 0),
        };
        if (obj.tone !== undefined) say.tone = dtmfDigit(obj, 'tone');
        return say;
      }
      throw new ProtocolError('PROTO_ERR_UNKNOWN_EVENT', `unknown event "${String(obj.event)}"`);
    case 'hangup':
      onlyFields(obj, ['type', 'reason']);
      return { type: 'hangup', reason: str(obj, 'reason', MAX_REASON_CHARS) };
    case 'error':
      onlyFields(obj, ['type', 'code', 'message']);
      return {
        type: 'error',
        code: str(obj, 'code', 128, /^[A-Z0-9_]+$/),
        message: str(obj, 'message', TEST_AGENT_MAX_TEXT_CHARS),
      };
    default:
      throw new ProtocolError('PROTO_ERR_UNKNOWN_EVENT', `unknown message type "${obj.type}"`);
  }
}

/**
 * Checks one binary message from the browser: PCM16 needs a whole number of samples. Throws
 * `PROTO_ERR_INVALID_MESSAGE` for an empty or odd-length message; the caller decodes the bytes
 * (at the session rate, little-endian).
 */
export function validateTestAgentAudio(byteLength: number): void {
  if (byteLength === 0) throw invalid('binary audio message is empty');
  if (byteLength % 2 !== 0) {
    throw invalid(`binary audio message has ${byteLength} bytes; PCM16 needs an even count`);
  }
}
