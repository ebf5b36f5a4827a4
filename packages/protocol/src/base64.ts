import { ProtocolError } from './errors.js';

// Standard alphabet (RFC 4648 §4), length a multiple of 4, '=' only as the final one or two chars.
const STRICT_BASE64 =
  /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})?$/;

/**
 * Decodes standard, padded base64. Node's own decoder silently skips characters it does not know
 * and accepts missing padding, which would turn a corrupt payload into shifted audio; this rejects
 * any character outside the alphabet (whitespace and URL-safe `-`/`_` included), misplaced or
 * missing padding and a length that is not a multiple of 4 with `PROTO_ERR_BAD_BASE64`. Non-zero
 * unused bits in the last character are accepted (RFC 4648 §3.5 lets decoders ignore them).
 */
export function decodeBase64Strict(b64: string): Uint8Array {
  if (typeof b64 !== 'string') {
    throw new ProtocolError('PROTO_ERR_BAD_BASE64', 'base64 payload must be a string');
  }
  if (b64.length % 4 !== 0) {
    throw new ProtocolError(
      'PROTO_ERR_BAD_BASE64',
      `base64 length ${b64.length} is not a multiple of 4`,
    );
  }
  if (!STRICT_BASE64.test(b64)) {
    throw new ProtocolError(
      'PROTO_ERR_BAD_BASE64',
      'base64 payload has a character outside the alphabet or misplaced padding',
    );
  }
  const buf = Buffer.from(b64, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Encodes bytes as standard, padded base64. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

// Value of each base64 character (standard alphabet) by char code, -1 for anything else.
const BASE64_VALUES = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) {
  BASE64_VALUES['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] =
    i;
}
const PAD = 61; // '='

/** Bytes that `decodeBase64StrictInto` writes for a base64 string of this length (at most). */
export function base64MaxDecodedLength(b64Length: number): number {
  return Math.floor(b64Length / 4) * 3;
}

/**
 * `decodeBase64Strict` without an allocation: checks and decodes in one pass into `out` (at least
 * `base64MaxDecodedLength(b64.length)` bytes) and returns the number of bytes written. Accepts
 * and rejects exactly what `decodeBase64Strict` does, with the same errors; `out` may hold part of
 * the payload when it throws.
 */
export function decodeBase64StrictInto(b64: string, out: Uint8Array): number {
  if (typeof b64 !== 'string') {
    throw new ProtocolError('PROTO_ERR_BAD_BASE64', 'base64 payload must be a string');
  }
  const length = b64.length;
  if (length % 4 !== 0) {
    throw new ProtocolError(
      'PROTO_ERR_BAD_BASE64',
      `base64 length ${length} is not a multiple of 4`,
    );
  }
  if (out.length < base64MaxDecodedLength(length)) {
    throw new RangeError(`decodeBase64StrictInto: ${out.length} bytes cannot hold ${length} chars`);
  }
  let o = 0;
  const whole = length === 0 ? 0 : length - 4; // the last group may carry padding
  let i = 0;
  for (; i < whole; i += 4) {
    const c0 = b64.charCodeAt(i);
    const c1 = b64.charCodeAt(i + 1);
    const c2 = b64.charCodeAt(i + 2);
    const c3 = b64.charCodeAt(i + 3);
    const a = c0 < 128 ? BASE64_VALUES[c0]! : -1;
    const b = c1 < 128 ? BASE64_VALUES[c1]! : -1;
    const c = c2 < 128 ? BASE64_VALUES[c2]! : -1;
    const d = c3 < 128 ? BASE64_VALUES[c3]! : -1;
    if ((a | b | c | d) < 0) throw badBase64();
    out[o++] = (a << 2) | (b >> 4);
    out[o++] = ((b & 15) << 4) | (c >> 2);
    out[o++] = ((c & 3) << 6) | d;
  }
  if (length === 0) return 0;
  const c0 = b64.charCodeAt(i);
  const c1 = b64.charCodeAt(i + 1);
  const c2 = b64.charCodeAt(i + 2);
  const c3 = b64.charCodeAt(i + 3);
  const a = c0 < 128 ? BASE64_VALUES[c0]! : -1;
  const b = c1 < 128 ? BASE64_VALUES[c1]! : -1;
  if ((a | b) < 0) throw badBase64();
  out[o++] = (a << 2) | (b >> 4);
  if (c2 === PAD) {
    if (c3 !== PAD) throw badBase64();
    return o;
  }
  const c = c2 < 128 ? BASE64_VALUES[c2]! : -1;
  if (c < 0) throw badBase64();
  out[o++] = ((b & 15) << 4) | (c >> 2);
  if (c3 === PAD) return o;
  const d = c3 < 128 ? BASE64_VALUES[c3]! : -1;
  if (d < 0) throw badBase64();
  out[o++] = ((c & 3) << 6) | d;
  return o;
}

function badBase64(): ProtocolError {
  return new ProtocolError(
    'PROTO_ERR_BAD_BASE64',
    'base64 payload has a character outside the alphabet or misplaced padding',
  );
}
