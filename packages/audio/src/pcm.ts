import { AudioError } from './errors.js';

const isLittleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Reads PCM16 little-endian bytes as samples. When the bytes are 2-aligned (and the host is
 * little-endian) the result is a view over the same memory, so do not reuse `bytes` while the
 * samples are in use; otherwise the samples are copied. An odd byte count is an error: it means a
 * truncated sample, and guessing which half is missing would shift every later sample.
 */
export function pcm16FromBytes(bytes: Uint8Array): Int16Array {
  if (bytes.byteLength % 2 !== 0) {
    throw new AudioError(
      'AUDIO_ERR_ARGUMENT',
      `PCM16 needs an even number of bytes, got ${bytes.byteLength}`,
    );
  }
  const count = bytes.byteLength / 2;
  if (isLittleEndianHost && bytes.byteOffset % 2 === 0) {
    return new Int16Array(bytes.buffer, bytes.byteOffset, count);
  }
  const out = new Int16Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < count; i++) out[i] = view.getInt16(i * 2, true);
  return out;
}

/** Serializes samples as PCM16 little-endian into a new Buffer (a copy, safe to send). */
export function pcm16ToBytes(pcm: Int16Array): Buffer {
  const out = Buffer.allocUnsafe(pcm.length * 2);
  if (isLittleEndianHost) {
    out.set(new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
  } else {
    for (let i = 0; i < pcm.length; i++) out.writeInt16LE(pcm[i]!, i * 2);
  }
  return out;
}

/** Concatenates PCM chunks into one array. */
export function concatPcm(chunks: readonly Int16Array[]): Int16Array {
  let length = 0;
  for (const c of chunks) length += c.length;
  const out = new Int16Array(length);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}

/** Converts float samples in [-1, 1] to PCM16, clamping and rounding. */
export function pcm16FromFloat(samples: ArrayLike<number>): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.round(samples[i]! * 32767);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return out;
}
