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
