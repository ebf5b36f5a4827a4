import { ProtocolError } from './errors.js';

/** Validation helpers shared by the provider modules (internal, not exported from the index). */

export type JsonObject = Record<string, unknown>;

/** Largest text message accepted; matches the StreamServer's `maxPayload`. */
export const MAX_MESSAGE_BYTES = 64 * 1024;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

export function invalid(context: string, field: string, problem: string): ProtocolError {
  return new ProtocolError('PROTO_ERR_INVALID_MESSAGE', `${context}: field "${field}" ${problem}`, {
    field,
  });
}

/** Parses JSON text: `PROTO_ERR_INVALID_JSON` when it is not JSON. */
export function parseJsonText(text: string): unknown {
  if (typeof text !== 'string') {
    throw new ProtocolError('PROTO_ERR_INVALID_MESSAGE', 'message must be JSON text');
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ProtocolError('PROTO_ERR_INVALID_JSON', 'message is not valid JSON', { cause: err });
  }
}

/** The `event` discriminator of a message object, or `PROTO_ERR_INVALID_MESSAGE`. */
export function eventOf(value: unknown, context: string): { obj: JsonObject; event: string } {
  if (!isObject(value)) {
    throw new ProtocolError(
      'PROTO_ERR_INVALID_MESSAGE',
      `${context}: message must be a JSON object, got ${describe(value)}`,
    );
  }
  const event = value.event;
  if (typeof event !== 'string') {
    throw invalid(context, 'event', `must be a string, got ${describe(event)}`);
  }
  return { obj: value, event };
}

export function unknownEvent(context: string, event: string): ProtocolError {
  return new ProtocolError(
    'PROTO_ERR_UNKNOWN_EVENT',
    `${context}: field "event" has unknown value ${JSON.stringify(event.slice(0, 64))}`,
    { field: 'event' },
  );
}

/** A field reader bound to one message, producing errors that name the dotted path. */
export class Fields {
  readonly context: string;
  constructor(context: string) {
    this.context = context;
  }

  object(obj: JsonObject, key: string, path = key): JsonObject {
    const v = obj[key];
    if (!isObject(v)) throw invalid(this.context, path, `must be an object, got ${describe(v)}`);
    return v;
  }

  string(obj: JsonObject, key: string, path = key, { nonEmpty = false } = {}): string {
    const v = obj[key];
    if (typeof v !== 'string') {
      throw invalid(this.context, path, `must be a string, got ${describe(v)}`);
    }
    if (nonEmpty && v.length === 0) throw invalid(this.context, path, 'must not be empty');
    return v;
  }

  /** Twilio counters and timestamps: strings of decimal digits. */
  decimalString(obj: JsonObject, key: string, path = key): string {
    const v = this.string(obj, key, path);
    if (!/^\d{1,16}$/.test(v)) {
      throw invalid(
        this.context,
        path,
        `must be a decimal string, got ${JSON.stringify(v.slice(0, 32))}`,
      );
    }
    return v;
  }

  number(obj: JsonObject, key: string, path = key): number {
    const v = obj[key];
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw invalid(this.context, path, `must be a number, got ${describe(v)}`);
    }
    return v;
  }

  oneOf<T extends string>(obj: JsonObject, key: string, allowed: readonly T[], path = key): T {
    const v = obj[key];
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      throw invalid(
        this.context,
        path,
        `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${
          typeof v === 'string' ? JSON.stringify(v.slice(0, 32)) : describe(v)
        }`,
      );
    }
    return v as T;
  }

  stringRecord(obj: JsonObject, key: string, path = key): Record<string, string> {
    const v = this.object(obj, key, path);
    const out: Record<string, string> = {};
    for (const [k, value] of Object.entries(v)) {
      if (typeof value !== 'string') {
        throw invalid(this.context, `${path}.${k}`, `must be a string, got ${describe(value)}`);
      }
      out[k] = value;
    }
    return out;
  }

  /** Rejects keys outside `allowed` and requires every key in `allowed` (strict outbound shapes). */
  exactKeys(obj: JsonObject, allowed: readonly string[], prefix = ''): void {
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k)) throw invalid(this.context, prefix + k, 'is not allowed');
    }
    for (const k of allowed) {
      if (!(k in obj)) throw invalid(this.context, prefix + k, 'is missing');
    }
  }

  /** An id the peer may send as a string or a number; normalized to a string. */
  id(obj: JsonObject, key: string, path = key): string {
    const v = obj[key];
    if (typeof v === 'string' && v.length > 0) return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    throw invalid(this.context, path, `must be a non-empty string or a number, got ${describe(v)}`);
  }

  optionalId(obj: JsonObject, key: string, path = key): string | undefined {
    return obj[key] === undefined || obj[key] === null ? undefined : this.id(obj, key, path);
  }

  /** A number the peer may send as a number or a numeric string; normalized to a number. */
  numeric(obj: JsonObject, key: string, path = key): number {
    const v = obj[key];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    if (typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v)) return Number(v);
    throw invalid(this.context, path, `must be a number or a numeric string, got ${describe(v)}`);
  }

  optionalNumeric(obj: JsonObject, key: string, path = key): number | undefined {
    return obj[key] === undefined || obj[key] === null ? undefined : this.numeric(obj, key, path);
  }
}

/** Text of one WebSocket message as `ws` delivers it (`data`, `isBinary`). */
export type RawMessage = string | Uint8Array | ArrayBuffer | readonly Uint8Array[];

/**
 * Turns a received WebSocket message into text: binary messages are refused (`PROTO_ERR_BINARY`;
 * Twilio itself rejects binary, warning 31950) and oversized ones too (`PROTO_ERR_TOO_LARGE`).
 */
export function messageText(
  data: RawMessage,
  isBinary: boolean,
  maxBytes = MAX_MESSAGE_BYTES,
): string {
  if (isBinary) throw new ProtocolError('PROTO_ERR_BINARY', 'binary messages are not accepted');
  let text: string;
  let bytes: number;
  if (typeof data === 'string') {
    text = data;
    bytes = Buffer.byteLength(data);
  } else {
    const buf = Array.isArray(data)
      ? Buffer.concat(data as readonly Uint8Array[])
      : data instanceof ArrayBuffer
        ? Buffer.from(data)
        : Buffer.from(
            (data as Uint8Array).buffer,
            (data as Uint8Array).byteOffset,
            (data as Uint8Array).byteLength,
          );
    bytes = buf.byteLength;
    if (bytes > maxBytes) {
      throw new ProtocolError(
        'PROTO_ERR_TOO_LARGE',
        `message of ${bytes} bytes exceeds ${maxBytes}`,
      );
    }
    text = buf.toString('utf8');
  }
  if (bytes > maxBytes) {
    throw new ProtocolError('PROTO_ERR_TOO_LARGE', `message of ${bytes} bytes exceeds ${maxBytes}`);
  }
  return text;
}
