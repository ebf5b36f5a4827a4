/**
 * WebSocket frame boundaries (RFC 6455 §5.2) from headers only. The media route's tunnel runs one
 * scanner per direction so that it can forward whole frames, cut a stream at a frame boundary and
 * replay the caller's first messages to another worker. Payloads are never unmasked or copied here,
 * except the two status bytes of a close frame and, while `keepMessages` asks for it, the stream's
 * first bytes (the caller's `connected` and `start`).
 *
 * The scanner is fed the stream chunk by chunk in order; a header may be split anywhere across
 * chunks. It stops at the first fault or after a complete close frame: nothing after either is
 * trusted as a frame.
 */

/** Why a stream is not a well-formed WebSocket stream in this direction. */
export type FrameFault =
  | 'reserved-bits' // RSV1-3 set, but this route negotiates no extension
  | 'reserved-opcode' // opcodes 3-7 and 11-15
  | 'mask' // a client frame without a mask, or a server frame with one
  | 'length' // a 64-bit length with its most significant bit set
  | 'control-frame' // fragmented, a length past the 7-bit field, or a close with a 1-byte body
  | 'continuation' // a continuation with no message open, or a new message inside one
  | 'too-large'; // a payload above `maxPayloadBytes`

/** The close code a fault earns (1009 for size, 1002 for protocol errors). */
export function faultCloseCode(fault: FrameFault): number {
  return fault === 'too-large' ? 1009 : 1002;
}

export interface FrameScannerOptions {
  /** Client-to-server frames must be masked, server-to-client frames must not. */
  masked: boolean;
  /** The largest payload one frame may announce. */
  maxPayloadBytes: number;
  /** Keep the stream's first bytes verbatim up to the end of this many data messages (0: none). */
  keepMessages?: number;
  /** Above this many bytes, keeping stops and `prefixOverflow` is set. */
  maxKeepBytes?: number;
}

const OP_CONTINUATION = 0;
const OP_CLOSE = 8;
const HEADER_MAX = 14;

export class FrameScanner {
  /** Bytes scanned so far (the stream offset of the next chunk). */
  offset = 0;
  /** Stream offset just past the last complete frame. */
  boundary = 0;
  /** Set at the first malformed header; scanning stops there. */
  fault: FrameFault | undefined;
  /** Set when a close frame is complete: its status code (1005 when it carries none). */
  closeCode: number | undefined;
  /** Stream offset of the first byte of that close frame. */
  closeStart = -1;
  /** Data messages completed (a fragmented message counts once, at its final frame). */
  messages = 0;
  /** Keeping stopped because the first messages were larger than `maxKeepBytes`. */
  prefixOverflow = false;
  /**
   * Called with the stream offset at every frame end where no fragmented message is open: the
   * places where a stream may be cut and resumed. Unset (the usual case) it costs one check.
   */
  onCut: ((offset: number) => void) | undefined;

  readonly #masked: boolean;
  readonly #maxPayload: number;
  readonly #keepMessages: number;
  readonly #maxKeep: number;
  /** A header split across chunks is gathered here. */
  readonly #header = Buffer.allocUnsafe(HEADER_MAX);
  #headerHave = 0;
  /** Payload bytes of the current frame still to come; -1 while reading a header. */
  #remaining = -1;
  #frameStart = 0;
  #opcode = 0;
  #fin = false;
  #inMessage = false;
  /** Close frame status bytes (unmasked), gathered as they pass. */
  #closeMask = 0;
  #closeStatus = 0;
  #closeStatusHave = 0;
  #closePayload = 0;
  #prefix: Buffer[] | undefined;
  #prefixLength = 0;
  /** Stream offset where the last kept message ended. */
  #keptEnd = 0;

  constructor(options: FrameScannerOptions) {
    this.#masked = options.masked;
    this.#maxPayload = options.maxPayloadBytes;
    this.#keepMessages = options.keepMessages ?? 0;
    this.#maxKeep = options.maxKeepBytes ?? 16_384;
    if (this.#keepMessages > 0) this.#prefix = [];
  }

  /** True while the scanned stream ends exactly at a frame boundary. */
  get atBoundary(): boolean {
    return this.boundary === this.offset;
  }

  /** Still gathering the stream's first messages. */
  get isKeeping(): boolean {
    return this.#prefix !== undefined && this.messages < this.#keepMessages;
  }

  /** Scanning has stopped (a fault or a close frame); later bytes are only counted. */
  get stopped(): boolean {
    return this.fault !== undefined || this.closeCode !== undefined;
  }

  /**
   * The kept first bytes of the stream: complete messages once `isKeeping` is false, everything
   * scanned so far while it is true. Undefined when nothing is kept (or keeping overflowed).
   */
  prefix(): Buffer | undefined {
    if (this.#prefix === undefined) return undefined;
    if (this.#prefix.length > 1) this.#prefix = [Buffer.concat(this.#prefix, this.#prefixLength)];
    return this.#prefix[0] ?? Buffer.alloc(0);
  }

  /** Stream offset where the kept prefix ends. */
  get prefixLength(): number {
    return this.#prefixLength;
  }

  /** Scans the next chunk of the stream. */
  scan(chunk: Buffer): void {
    const base = this.offset;
    const n = chunk.length;
    this.offset = base + n;
    if (this.fault !== undefined || this.closeCode !== undefined) return;
    const keeping = this.isKeeping;
    let i = 0;
    while (i < n) {
      if (this.#remaining > 0) {
        const take = this.#remaining < n - i ? this.#remaining : n - i;
        if (this.#opcode === OP_CLOSE && this.#closeStatusHave < 2) {
          this.#gatherClose(chunk, i, take);
        }
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0 && this.#frameEnd(base + i)) break;
        continue;
      }
      // A header: straight from the chunk when it is all there, else gathered across chunks.
      let src = chunk;
      let at = i;
      let avail = n - i;
      if (this.#headerHave > 0 || avail < 2) {
        const copy = Math.min(HEADER_MAX - this.#headerHave, avail);
        chunk.copy(this.#header, this.#headerHave, i, i + copy);
        src = this.#header;
        at = 0;
        avail = this.#headerHave + copy;
      }
      const length = this.#parseHeader(src, at, avail);
      if (length < 0) break; // fault
      if (length === 0) {
        // Incomplete: everything left is in #header now.
        if (src !== this.#header) {
          chunk.copy(this.#header, 0, i, n);
          this.#headerHave = n - i;
        } else {
          this.#headerHave = avail;
        }
        break;
      }
      // The header was `length` bytes long; of those, #headerHave came from earlier chunks.
      const fromChunk = length - (src === this.#header ? this.#headerHave : 0);
      this.#frameStart = base + i - (src === this.#header ? this.#headerHave : 0);
      this.#headerHave = 0;
      i += fromChunk;
      if (this.#remaining === 0 && this.#frameEnd(base + i)) break;
    }
    if (keeping) this.#keep(chunk, base);
  }

  /**
   * Parses a header at `buf[at..at+avail)`. Returns its length, 0 when more bytes are needed, or
   * -1 on a fault (which is recorded). Sets #remaining to the payload length.
   */
  #parseHeader(buf: Buffer, at: number, avail: number): number {
    if (avail < 2) return 0;
    const b0 = buf[at]!;
    const b1 = buf[at + 1]!;
    if ((b0 & 0x70) !== 0) return this.#fail('reserved-bits');
    const opcode = b0 & 0x0f;
    if ((opcode > 2 && opcode < 8) || opcode > 10) return this.#fail('reserved-opcode');
    const masked = (b1 & 0x80) !== 0;
    if (masked !== this.#masked) return this.#fail('mask');
    const fin = (b0 & 0x80) !== 0;
    const len7 = b1 & 0x7f;
    // A control frame is never fragmented and its length always fits the 7-bit field (§5.5): a
    // 16-bit length field is malformed even when it says 125 or less (ws rejects it too).
    if (opcode >= OP_CLOSE && (!fin || len7 > 125)) return this.#fail('control-frame');
    const extra = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const length = 2 + extra + (masked ? 4 : 0);
    if (avail < length) return 0;
    let payload = len7;
    if (len7 === 126) payload = buf.readUInt16BE(at + 2);
    else if (len7 === 127) {
      const high = buf.readUInt32BE(at + 2);
      if (high >= 0x80000000) return this.#fail('length');
      payload = high * 0x100000000 + buf.readUInt32BE(at + 6);
    }
    if (opcode === OP_CLOSE) {
      // A close body starts with a 2-byte status code (RFC 6455 §5.5.1): one byte is malformed.
      if (payload === 1) return this.#fail('control-frame');
      this.#closeMask = masked ? buf.readUInt32BE(at + 2) : 0;
      this.#closeStatus = 0;
      this.#closeStatusHave = 0;
      this.#closePayload = payload;
    } else if (opcode < OP_CLOSE) {
      if ((opcode === OP_CONTINUATION) !== this.#inMessage) return this.#fail('continuation');
      if (payload > this.#maxPayload) return this.#fail('too-large');
    }
    this.#opcode = opcode;
    this.#fin = fin;
    this.#remaining = payload;
    return length;
  }

  #gatherClose(chunk: Buffer, at: number, take: number): void {
    for (let k = 0; k < take && this.#closeStatusHave < 2; k++) {
      const index = this.#closeStatusHave;
      const maskByte = (this.#closeMask >>> (8 * (3 - index))) & 0xff;
      this.#closeStatus = (this.#closeStatus << 8) | (chunk[at + k]! ^ maskByte);
      this.#closeStatusHave++;
    }
  }

  /** A frame ended at stream offset `end`. Returns true when scanning stops (a close frame). */
  #frameEnd(end: number): boolean {
    this.boundary = end;
    this.#remaining = -1;
    const opcode = this.#opcode;
    if (opcode === OP_CLOSE) {
      this.closeCode = this.#closePayload >= 2 ? this.#closeStatus : 1005;
      this.closeStart = this.#frameStart;
      return true;
    }
    if (opcode < OP_CLOSE) {
      this.#inMessage = !this.#fin;
      if (this.#fin && ++this.messages === this.#keepMessages) this.#keptEnd = end;
    }
    if (!this.#inMessage) this.onCut?.(end);
    return false;
  }

  #fail(fault: FrameFault): number {
    this.fault = fault;
    return -1;
  }

  /** Copies this chunk's part of the kept prefix (up to the end of the last kept message). */
  #keep(chunk: Buffer, base: number): void {
    const prefix = this.#prefix!;
    // Done keeping inside this chunk: the prefix ends where the last kept message ended. Stopped
    // inside it: the prefix ends at the last trusted byte (after a close frame, before a bad
    // header), which may lie in an earlier chunk when that header began there.
    const end = !this.isKeeping ? this.#keptEnd : this.stopped ? this.boundary : this.offset;
    if (end < base) {
      this.#prefix = [Buffer.concat(prefix, this.#prefixLength).subarray(0, end)];
      this.#prefixLength = end;
      return;
    }
    const take = end - base;
    if (this.#prefixLength + take > this.#maxKeep) {
      this.prefixOverflow = true;
      this.#prefix = undefined;
      this.#prefixLength = 0;
      return;
    }
    if (take > 0) {
      prefix.push(Buffer.from(chunk.subarray(0, take)));
      this.#prefixLength += take;
    }
  }
}

/**
 * A close frame as the proxy sends it: unmasked toward a client (the caller); toward a server
 * (a worker) a client frame must be masked, and a zero mask is a valid mask.
 */
export function closeFrame(code: number, reason: string, toServer: boolean): Buffer {
  // At most 123 bytes of reason, cut at a character boundary: the reason must stay valid UTF-8
  // (a receiver fails the connection otherwise). No UTF-16 unit encodes to fewer bytes than one.
  let text = Buffer.from(reason.slice(0, 123), 'utf8');
  if (text.length > 123) {
    let end = 123;
    while ((text[end]! & 0xc0) === 0x80) end--; // back to the first byte of the cut character
    text = text.subarray(0, end);
  }
  const payload = 2 + text.length;
  const headerLength = toServer ? 6 : 2;
  const frame = Buffer.alloc(headerLength + payload);
  frame[0] = 0x88;
  frame[1] = (toServer ? 0x80 : 0) | payload;
  frame.writeUInt16BE(code, headerLength);
  text.copy(frame, headerLength + 2);
  return frame;
}
