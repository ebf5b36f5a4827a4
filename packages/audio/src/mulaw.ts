/**
 * G.711 μ-law, the classic Sun g711.c / CCITT variant (BIAS 0x84, CLIP 32635), which is what Twilio
 * sends and expects. Both directions go through lookup tables built once at load time, so the
 * per-frame path is one array read per sample.
 */

/** μ-law byte for digital silence (encodes 0). */
export const MULAW_SILENCE = 0xff;

const BIAS = 0x84;
const CLIP = 32635;

function encodeByFormula(sample: number): number {
  let sign = 0;
  let magnitude = sample;
  if (magnitude < 0) {
    sign = 0x80;
    magnitude = -magnitude;
  }
  if (magnitude > CLIP) magnitude = CLIP;
  magnitude += BIAS;
  // Exponent = position of the highest set bit among bits 14..7.
  let exponent = 7;
  for (let mask = 0x4000; (magnitude & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (magnitude >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function decodeByFormula(byte: number): number {
  const u = ~byte & 0xff;
  const sign = u & 0x80;
  const exponent = (u >> 4) & 0x07;
  const mantissa = u & 0x0f;
  const magnitude = (((mantissa << 3) + BIAS) << exponent) - BIAS;
  return sign ? -magnitude : magnitude;
}

// Indexed by sample + 32768.
const ENCODE_TABLE = new Uint8Array(65536);
for (let i = 0; i < 65536; i++) ENCODE_TABLE[i] = encodeByFormula(i - 32768);
const DECODE_TABLE = new Int16Array(256);
for (let b = 0; b < 256; b++) DECODE_TABLE[b] = decodeByFormula(b);

function toInt16(s: number): number {
  if (!(s >= -32768)) return s !== s ? 0 : -32768; // NaN → 0, -Infinity/below → min.
  if (s > 32767) return 32767;
  return Math.round(s);
}

/** Encodes one linear sample (clamped and rounded to int16) to a μ-law byte. */
export function mulawEncodeSample(s: number): number {
  return ENCODE_TABLE[toInt16(s) + 32768]!;
}

/** Decodes one μ-law byte (only the low 8 bits are used) to a linear int16 sample. */
export function mulawDecodeSample(b: number): number {
  return DECODE_TABLE[b & 0xff]!;
}

/** Encodes PCM16 to μ-law, one byte per sample. */
export function mulawEncode(pcm: Int16Array): Uint8Array {
  const out = new Uint8Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = ENCODE_TABLE[pcm[i]! + 32768]!;
  return out;
}

/** Decodes μ-law bytes to PCM16, one sample per byte. */
export function mulawDecode(bytes: Uint8Array): Int16Array {
  const out = new Int16Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) out[i] = DECODE_TABLE[bytes[i]!]!;
  return out;
}

/**
 * `mulawEncode` into a caller's buffer (no allocation): encodes `pcm` into `out[0 … pcm.length)`
 * and returns the number of bytes written. `out` must hold `pcm.length` bytes.
 */
export function mulawEncodeInto(pcm: Int16Array, out: Uint8Array): number {
  const n = pcm.length;
  if (out.length < n) throw new RangeError(`mulawEncodeInto: ${out.length} bytes < ${n} samples`);
  for (let i = 0; i < n; i++) out[i] = ENCODE_TABLE[pcm[i]! + 32768]!;
  return n;
}

/**
 * `mulawDecode` into a caller's buffer (no allocation): decodes `bytes[0 … length)` into
 * `out[0 … length)`. `out` must hold `length` samples.
 */
export function mulawDecodeInto(bytes: Uint8Array, length: number, out: Int16Array): void {
  if (length > bytes.length || out.length < length) {
    throw new RangeError(`mulawDecodeInto: ${length} bytes do not fit`);
  }
  for (let i = 0; i < length; i++) out[i] = DECODE_TABLE[bytes[i]!]!;
}
