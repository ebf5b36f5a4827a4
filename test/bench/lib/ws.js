// Minimal WebSocket framing for the benchmark's own processes (RFC 6455, text/close/ping only, no
// extensions, no fragmentation). Written on raw sockets on purpose: the load generator and the echo
// backend must cost as little CPU as possible, so the machine's cores go to the proxy under test.
import { createHash } from 'node:crypto';

export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
export const OP_TEXT = 0x1;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

export function acceptKey(key) {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** An unmasked server frame (FIN set) holding `payload` (a Buffer). */
export function serverFrame(opcode, payload, from = 0, to = payload.length) {
  const len = to - from;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + len);
  out[0] = 0x80 | opcode;
  if (head === 2) out[1] = len;
  else if (head === 4) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(0, 2);
    out.writeUInt32BE(len, 6);
  }
  payload.copy(out, head, from, to);
  return out;
}

let seed = (Date.now() ^ (process.pid << 16)) >>> 0;
/** xorshift32: a fresh masking key per frame, as a browser or Twilio would send. */
function nextMask() {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed;
}

/** A masked client frame (FIN set) of a latin1/ASCII string or a Buffer. */
export function clientFrame(opcode, data) {
  const len = typeof data === 'string' ? data.length : data.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (head === 2) out[1] = 0x80 | len;
  else if (head === 4) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(0, 2);
    out.writeUInt32BE(len, 6);
  }
  const mask = nextMask();
  out.writeUInt32BE(mask, head);
  const p = head + 4;
  if (typeof data === 'string') out.write(data, p, len, 'latin1');
  else data.copy(out, p);
  const m0 = mask >>> 24;
  const m1 = (mask >>> 16) & 0xff;
  const m2 = (mask >>> 8) & 0xff;
  const m3 = mask & 0xff;
  let i = 0;
  for (; i + 3 < len; i += 4) {
    out[p + i] ^= m0;
    out[p + i + 1] ^= m1;
    out[p + i + 2] ^= m2;
    out[p + i + 3] ^= m3;
  }
  for (; i < len; i++) out[p + i] ^= (mask >>> (24 - 8 * (i & 3))) & 0xff;
  return out;
}

/**
 * Incremental frame parser. `onFrame(opcode, buf, start, end)` gets the (unmasked, in place)
 * payload bytes buf[start, end). Keeps at most one partial frame between chunks.
 */
export class FrameParser {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.rest = null;
  }

  /** Returns false on a protocol error (the caller closes the socket). */
  push(chunk) {
    let buf = chunk;
    if (this.rest !== null) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let p = 0;
    const n = buf.length;
    while (n - p >= 2) {
      const b0 = buf[p];
      const b1 = buf[p + 1];
      if ((b0 & 0x70) !== 0) return false; // RSV bits: no extension was negotiated
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      let h = p + 2;
      if (len === 126) {
        if (n - p < 4) break;
        len = buf.readUInt16BE(p + 2);
        h = p + 4;
      } else if (len === 127) {
        if (n - p < 10) break;
        len = buf.readUInt32BE(p + 6);
        h = p + 10;
      }
      const need = h + (masked ? 4 : 0) + len;
      if (need > n) break;
      let start = h;
      if (masked) {
        const k0 = buf[h];
        const k1 = buf[h + 1];
        const k2 = buf[h + 2];
        const k3 = buf[h + 3];
        start = h + 4;
        let i = 0;
        for (; i + 3 < len; i += 4) {
          buf[start + i] ^= k0;
          buf[start + i + 1] ^= k1;
          buf[start + i + 2] ^= k2;
          buf[start + i + 3] ^= k3;
        }
        for (; i < len; i++) buf[start + i] ^= buf[h + (i & 3)];
      }
      this.onFrame(b0 & 0x0f, buf, start, start + len);
      p = need;
    }
    if (p < n) this.rest = p === 0 && buf !== chunk ? buf : buf.subarray(p);
    return true;
  }
}
