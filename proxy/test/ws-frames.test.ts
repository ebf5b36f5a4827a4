import { describe, expect, it } from 'vitest';
import { FrameScanner, closeFrame, faultCloseCode, type FrameFault } from '../src/ws-frames.js';

/**
 * FrameScanner against a whole-buffer reference decoder. Every stream is fed whole, split into two
 * chunks at every offset, and one byte at a time; after each chunk the scanner's state must match
 * what the reference decoder says about the bytes scanned so far.
 */

// ---------------------------------------------------------------------------------------------
// Frame generator

const TEXT = 1;
const BINARY = 2;
const CLOSE = 8;
const PING = 9;
const PONG = 10;

/** Seeded PRNG (mulberry32): the same streams and masks on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(6455);

function randomBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (random() * 256) | 0;
  return b;
}

interface FrameSpec {
  opcode: number;
  payload?: Buffer;
  fin?: boolean;
  /** RSV1-3 as a 3-bit number (4: RSV1, 2: RSV2, 1: RSV3). */
  rsv?: number;
  /** Length form: 7-bit, 16-bit or 64-bit (default: the shortest that fits). */
  form?: 7 | 16 | 64 | undefined;
  /** Announce this length instead of the payload's (the payload is then whatever is given). */
  length?: bigint;
  /** Mask the frame (a client frame); default from the stream's direction. */
  masked?: boolean;
}

/** Encodes one frame. `masked` frames get a random mask key (now and then an all-zero one). */
function encode(spec: FrameSpec, masked: boolean): Buffer {
  const payload = spec.payload ?? Buffer.alloc(0);
  const isMasked = spec.masked ?? masked;
  const length = spec.length ?? BigInt(payload.length);
  const form = spec.form ?? (length < 126n ? 7 : length < 65536n ? 16 : 64);
  const ext = form === 16 ? 2 : form === 64 ? 8 : 0;
  const header = Buffer.alloc(2 + ext + (isMasked ? 4 : 0));
  header[0] = ((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | spec.opcode;
  header[1] = (isMasked ? 0x80 : 0) | (form === 16 ? 126 : form === 64 ? 127 : Number(length));
  if (form === 16) header.writeUInt16BE(Number(length), 2);
  if (form === 64) header.writeBigUInt64BE(length, 2);
  if (!isMasked) return Buffer.concat([header, payload]);
  const key = random() < 0.1 ? Buffer.alloc(4) : randomBytes(4);
  key.copy(header, 2 + ext);
  const body = Buffer.allocUnsafe(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([header, body]);
}

function closePayload(code?: number, reason = ''): Buffer {
  if (code === undefined) return Buffer.alloc(0);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason, 'utf8')]);
}

const text = (n: number, form?: 7 | 16 | 64): FrameSpec => ({
  opcode: TEXT,
  payload: randomBytes(n),
  form,
});
const binary = (n: number, form?: 7 | 16 | 64): FrameSpec => ({
  opcode: BINARY,
  payload: randomBytes(n),
  form,
});
const ping = (n = 0): FrameSpec => ({ opcode: PING, payload: randomBytes(n) });
const pong = (n = 0): FrameSpec => ({ opcode: PONG, payload: randomBytes(n) });
const close = (code?: number, reason?: string): FrameSpec => ({
  opcode: CLOSE,
  payload: closePayload(code, reason),
});
const json = (value: unknown): FrameSpec => ({
  opcode: TEXT,
  payload: Buffer.from(JSON.stringify(value)),
});

/**
 * A fragmented message: one frame per size, the first with `opcode`, the rest continuations, FIN on
 * the last; `between[i]` (control frames) goes after fragment i.
 */
function fragmented(opcode: number, sizes: number[], between: FrameSpec[][] = []): FrameSpec[] {
  const out: FrameSpec[] = [];
  sizes.forEach((size, i) => {
    out.push({
      opcode: i === 0 ? opcode : 0,
      fin: i === sizes.length - 1,
      payload: randomBytes(size),
    });
    out.push(...(between[i] ?? []));
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reference decoder: whole buffer, one frame after another, as RFC 6455 §5.2 reads

interface RefFrame {
  start: number;
  end: number;
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

interface RefFault {
  fault: FrameFault;
  /** Stream offset of the bad frame's first byte. */
  start: number;
  /** Stream offset just past its header: the fault must be known once this much is scanned. */
  headerEnd: number;
}

interface RefResult {
  frames: RefFrame[];
  fault?: RefFault;
}

function refDecode(buf: Buffer, masked: boolean, maxPayload: number): RefResult {
  const frames: RefFrame[] = [];
  let open = false;
  let i = 0;
  while (buf.length - i >= 2) {
    const b0 = buf[i]!;
    const b1 = buf[i + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const rsv = (b0 >> 4) & 7;
    const opcode = b0 & 15;
    const isMasked = (b1 & 0x80) !== 0;
    const len7 = b1 & 127;
    const ext = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
    const headerLen = 2 + ext + (isMasked ? 4 : 0);
    if (buf.length - i < headerLen) break;
    const length =
      len7 === 126
        ? BigInt(buf.readUInt16BE(i + 2))
        : len7 === 127
          ? buf.readBigUInt64BE(i + 2)
          : BigInt(len7);
    const control = opcode >= 8;
    let fault: FrameFault | undefined;
    if (rsv !== 0) fault = 'reserved-bits';
    else if (![0, 1, 2, 8, 9, 10].includes(opcode)) fault = 'reserved-opcode';
    else if (isMasked !== masked) fault = 'mask';
    else if (length >= 1n << 63n) fault = 'length';
    else if (control && (!fin || len7 > 125 || (opcode === CLOSE && length === 1n)))
      fault = 'control-frame';
    else if (!control && (opcode === 0) !== open) fault = 'continuation';
    else if (!control && length > BigInt(maxPayload)) fault = 'too-large';
    if (fault !== undefined)
      return { frames, fault: { fault, start: i, headerEnd: i + headerLen } };
    const end = i + headerLen + Number(length);
    if (end > buf.length) break;
    const payload = Buffer.from(buf.subarray(i + headerLen, end));
    if (isMasked) {
      const key = buf.subarray(i + headerLen - 4, i + headerLen);
      for (let k = 0; k < payload.length; k++) payload[k]! ^= key[k & 3]!;
    }
    frames.push({ start: i, end, fin, opcode, payload });
    if (!control) open = !fin;
    i = end;
    if (opcode === CLOSE) break;
  }
  return { frames };
}

// ---------------------------------------------------------------------------------------------
// Expected scanner state at every stream offset, from the reference decoder

const KEEP = 2;

interface Expect {
  stream: Buffer;
  masked: boolean;
  maxPayload: number;
  maxKeep: number;
  /** boundary[o]: end of the last complete frame within the first o bytes. */
  boundary: Int32Array;
  /** messages[o]: data messages complete within the first o bytes. */
  messages: Int32Array;
  cuts: number[];
  close: { start: number; end: number; code: number } | undefined;
  fault: RefFault | undefined;
  /** End of the KEEP-th data message, or Infinity. */
  keptEnd: number;
  /** Where the stream stops being trusted: end of the close frame, start of the bad frame. */
  stopAt: number;
  /** Stream offsets where frames (and their payloads) start and end. */
  edges: number[];
}

function expectations(
  stream: Buffer,
  masked: boolean,
  maxPayload: number,
  maxKeep: number,
): Expect {
  const ref = refDecode(stream, masked, maxPayload);
  const boundary = new Int32Array(stream.length + 1);
  const messages = new Int32Array(stream.length + 1);
  const cuts: number[] = [];
  let close: Expect['close'];
  let keptEnd = Infinity;
  let count = 0;
  let open = false;
  let last = 0;
  let o = 0;
  const fill = (to: number): void => {
    for (; o < to; o++) {
      boundary[o] = last;
      messages[o] = count;
    }
  };
  const edges: number[] = [];
  for (const f of ref.frames) {
    edges.push(f.start, f.start + 2, f.end - f.payload.length, f.end);
    fill(f.end);
    last = f.end;
    if (f.opcode === CLOSE) {
      const p = f.payload;
      close = { start: f.start, end: f.end, code: p.length >= 2 ? p.readUInt16BE(0) : 1005 };
      continue;
    }
    if (f.opcode < 8) {
      open = !f.fin;
      if (f.fin && ++count === KEEP) keptEnd = f.end;
    }
    if (!open) cuts.push(f.end);
  }
  fill(stream.length + 1);
  const stopAt = close?.end ?? ref.fault?.start ?? Infinity;
  return {
    ...{ stream, masked, maxPayload, maxKeep, boundary, messages, cuts, close, keptEnd, stopAt },
    fault: ref.fault,
    edges: ref.fault ? [...edges, ref.fault.start, ref.fault.headerEnd] : edges,
  };
}

// ---------------------------------------------------------------------------------------------
// Feeding a scanner and checking it after every chunk

class Checker {
  readonly errors: string[] = [];
  constructor(readonly e: Expect) {}

  fail(label: string, o: number, what: string, got: unknown, want: unknown): void {
    if (this.errors.length < 12) {
      this.errors.push(`${label} @${o}: ${what} ${String(got)}, want ${String(want)}`);
    }
  }

  /** Feeds the stream in chunks ending at `ends` (the last is the stream's length). */
  feed(label: string, ends: Iterable<number>, keep = true): void {
    const e = this.e;
    const sc = new FrameScanner({
      masked: e.masked,
      maxPayloadBytes: e.maxPayload,
      ...(keep ? { keepMessages: KEEP, maxKeepBytes: e.maxKeep } : {}),
    });
    const cuts: number[] = [];
    sc.onCut = (at) => {
      if (at > sc.offset) this.fail(label, sc.offset, 'onCut ahead of the scan at', at, '');
      cuts.push(at);
    };
    let from = 0;
    let overflow = false;
    for (const to of ends) {
      sc.scan(e.stream.subarray(from, to));
      from = to;
      overflow = this.state(label, sc, to, keep, overflow);
      if (this.errors.length > 0) return;
    }
    const want = e.cuts;
    if (cuts.length !== want.length || cuts.some((c, k) => c !== want[k])) {
      this.fail(label, from, 'cuts', cuts.join(','), want.join(','));
    }
  }

  /** Checks the scanner after `o` bytes; returns whether keeping has overflowed by now. */
  state(
    label: string,
    sc: FrameScanner,
    o: number,
    keep: boolean,
    overflowBefore: boolean,
  ): boolean {
    const e = this.e;
    const fail = (what: string, got: unknown, want: unknown) =>
      this.fail(label, o, what, got, want);
    if (sc.offset !== o) fail('offset', sc.offset, o);
    const boundary = e.boundary[o]!;
    if (sc.boundary !== boundary) fail('boundary', sc.boundary, boundary);
    if (sc.atBoundary !== (boundary === o)) fail('atBoundary', sc.atBoundary, boundary === o);
    if (sc.messages !== e.messages[o]) fail('messages', sc.messages, e.messages[o]);
    const closed = e.close !== undefined && o >= e.close.end;
    if (sc.closeCode !== (closed ? e.close!.code : undefined)) {
      fail('closeCode', sc.closeCode, closed ? e.close!.code : undefined);
    }
    const closeStart = closed ? e.close!.start : -1;
    if (sc.closeStart !== closeStart) fail('closeStart', sc.closeStart, closeStart);
    const f = e.fault;
    if (f === undefined || o <= f.start) {
      if (sc.fault !== undefined) fail('fault', sc.fault, undefined);
    } else if (
      o >= f.headerEnd ? sc.fault !== f.fault : sc.fault !== undefined && sc.fault !== f.fault
    ) {
      fail('fault', sc.fault, f.fault);
    }
    const stopped = closed || sc.fault !== undefined;
    if (sc.stopped !== stopped) fail('stopped', sc.stopped, stopped);

    if (!keep) {
      if (sc.prefix() !== undefined || sc.isKeeping)
        fail('prefix without keeping', sc.prefix(), undefined);
      return false;
    }
    // Kept: up to the end of the KEEP-th message; before that, everything scanned (and trusted).
    const length = o >= e.keptEnd ? e.keptEnd : stopped ? Math.min(o, e.stopAt) : o;
    const overflow = overflowBefore || length > e.maxKeep;
    if (sc.prefixOverflow !== overflow) fail('prefixOverflow', sc.prefixOverflow, overflow);
    const keeping = !overflow && sc.messages < KEEP;
    if (sc.isKeeping !== keeping) fail('isKeeping', sc.isKeeping, keeping);
    const prefix = sc.prefix();
    if (overflow) {
      if (prefix !== undefined) fail('prefix length', prefix.length, 'undefined (overflow)');
    } else if (prefix === undefined || prefix.length !== length || sc.prefixLength !== length) {
      fail('prefix length', prefix?.length, length);
    } else if (e.stream.compare(prefix, 0, length, 0, length) !== 0) {
      fail('prefix bytes', 'differ', 'the stream');
    }
    return overflow;
  }
}

interface Case {
  name: string;
  /** A client stream (masked frames) or a server stream (unmasked). */
  client: boolean;
  frames: (FrameSpec | Buffer)[];
  maxPayload?: number;
  maxKeep?: number;
  fault?: FrameFault;
}

function build(c: Case): Expect {
  const stream = Buffer.concat(c.frames.map((f) => (Buffer.isBuffer(f) ? f : encode(f, c.client))));
  const e = expectations(stream, c.client, c.maxPayload ?? 1 << 20, c.maxKeep ?? 2048);
  // The table itself must say what it means: the fault it names, nothing else.
  expect(e.fault?.fault).toBe(c.fault);
  return e;
}

function* range(from: number, to: number): Generator<number> {
  for (let o = from; o <= to; o++) yield o;
}

/**
 * Where to split a stream in two: at every offset up to EVERY_SPLIT bytes. In longer streams, at
 * every offset within 20 bytes of a frame's start, header end or end, in the first kept bytes, and
 * every 101st offset inside payloads (all alike to a scanner that reads headers only).
 */
const EVERY_SPLIT = 70_000;

function splitPoints(e: Expect): Iterable<number> {
  const n = e.stream.length;
  if (n <= EVERY_SPLIT) return range(0, n);
  const at = new Uint8Array(n + 1);
  for (let o = 0; o <= n; o += 101) at[o] = 1;
  for (let o = 0; o <= Math.min(n, e.maxKeep + 20); o++) at[o] = 1;
  for (const edge of e.edges) {
    for (let o = Math.max(0, edge - 20); o <= Math.min(n, edge + 20); o++) at[o] = 1;
  }
  at[n] = 1;
  const points: number[] = [];
  at.forEach((v, o) => v && points.push(o));
  return points;
}

/** Whole, split in two (see splitPoints), one byte at a time; plus once without keeping. */
function runAll(e: Expect): string[] {
  const ck = new Checker(e);
  const n = e.stream.length;
  ck.feed('whole', [n]);
  ck.feed('whole, no keep', [n], false);
  for (const k of splitPoints(e)) {
    ck.feed(`split ${k}`, [k, n]);
    if (ck.errors.length > 0) break;
  }
  ck.feed('1-byte chunks', range(1, n));
  return ck.errors;
}

// ---------------------------------------------------------------------------------------------
// Well-formed streams

const connected = json({ event: 'connected', protocol: 'Call', version: '1.0.0' });
const start = json({
  event: 'start',
  sequenceNumber: '1',
  start: { streamSid: 'MZ' + 'a'.repeat(32) },
});
const media = (n: number) => text(n);

function wellFormed(client: boolean): Case[] {
  const side = client ? 'client' : 'server';
  return [
    {
      name: `${side}: payloads 0, 1, 125, 126, 127 in every length form, pings, a close with reason`,
      client,
      frames: [
        text(0),
        binary(1),
        text(125),
        binary(126),
        text(127),
        ping(0),
        pong(125),
        text(0, 16),
        binary(5, 64),
        text(125, 16),
        binary(126, 64),
        ping(7),
        close(1000, 'normal closure, thanks'),
      ],
    },
    {
      name: `${side}: fragmented messages with pings and pongs between the fragments`,
      client,
      frames: [
        connected,
        ...fragmented(TEXT, [3, 0, 126, 1], [[ping(2)], [pong(0), ping(125)], [pong(4)]]),
        binary(10),
        ...fragmented(BINARY, [0, 0]),
        ...fragmented(TEXT, [200, 65536 - 200], [[ping(1), pong(1)]]),
        pong(3),
        close(1012),
      ],
    },
    {
      name: `${side}: 65,535 and 65,536 bytes`,
      client,
      frames: [connected, text(65535), ping(1), binary(65536), pong(0), close(1000)],
    },
    {
      name: `${side}: above 2^16`,
      client,
      frames: [
        binary(65537, 64),
        text(100_000),
        ...fragmented(BINARY, [70_000, 3], [[ping(0)]]),
        close(),
        // Never scanned: after the close frame nothing is trusted.
        text(10),
        Buffer.from([0xff, 0xff, 0xff]),
      ],
    },
    {
      name: `${side}: close with a 123-byte reason, then garbage`,
      client,
      frames: [media(40), close(4000, 'r'.repeat(123)), Buffer.from([0x70, 0x80, 0x01])],
    },
    {
      name: `${side}: close with status only inside a fragmented message`,
      client,
      frames: [...fragmented(TEXT, [5, 5]).slice(0, 1), ping(), close(1001), text(3)],
    },
    {
      name: `${side}: the stream ends inside a frame`,
      client,
      frames: [text(3), encode(binary(300), client).subarray(0, 150)],
    },
  ];
}

/** Streams for the kept prefix: the caller's `connected` and `start`, then media. */
const prefixCases: Case[] = [
  {
    name: 'connected, start, media',
    client: true,
    frames: [connected, start, media(60), media(60)],
  },
  {
    name: 'pings before and between, start fragmented around a pong',
    client: true,
    frames: [
      ping(4),
      connected,
      pong(),
      ...fragmented(TEXT, [20, 30], [[pong(2)]]),
      media(9),
      close(),
    ],
  },
  {
    name: 'a close before the second message: the prefix ends with the close frame',
    client: true,
    frames: [connected, close(1000, 'bye'), Buffer.from('trailing bytes, never kept')],
  },
  {
    name: 'a fault before the second message: the prefix ends at the last good frame',
    client: true,
    frames: [connected, ping(3), { opcode: TEXT, payload: randomBytes(4), rsv: 4 }, media(20)],
    fault: 'reserved-bits',
  },
  {
    name: 'first messages larger than maxKeepBytes overflow',
    client: true,
    frames: [connected, text(300), media(20)],
    maxKeep: 256,
  },
  {
    name: 'overflow with the second message still fragmented',
    client: true,
    frames: [connected, ...fragmented(TEXT, [100, 100, 100]), media(20)],
    maxKeep: 200,
  },
  // Exactly maxKeepBytes: no overflow (connected: 6 + 60 bytes, text(100): 6 + 100).
  {
    name: 'first messages exactly maxKeepBytes long',
    client: true,
    frames: [connected, text(100), media(20)],
    maxKeep: encode(connected, true).length + 106,
  },
  {
    name: 'server side keeps too',
    client: false,
    frames: [json({ a: 1 }), ping(), json({ b: 2 })],
  },
];

describe('FrameScanner on well-formed streams', () => {
  const cases = [...wellFormed(true), ...wellFormed(false), ...prefixCases];
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(runAll(build(c))).toEqual([]);
  });

  it('the generator and the reference decoder agree on message contents', () => {
    const parts = fragmented(BINARY, [3, 4, 5], [[ping(1)], [pong(2)]]);
    const client = Buffer.concat(parts.map((p) => encode(p, true)));
    const ref = refDecode(client, true, 1000);
    const data = ref.frames.filter((f) => f.opcode < 8).map((f) => f.payload);
    const sent = parts.filter((p) => p.opcode < 8).map((p) => p.payload!);
    expect(Buffer.concat(data)).toEqual(Buffer.concat(sent));
    expect(ref.frames.map((f) => f.opcode)).toEqual([2, 9, 0, 10, 0]);
  });
});

// ---------------------------------------------------------------------------------------------
// Malformed streams

/** A 64-bit length with its top bit set, written by hand (the generator refuses nothing). */
function hugeLength(client: boolean, top: bigint): Buffer {
  return encode({ opcode: BINARY, length: top, payload: randomBytes(16), form: 64 }, client);
}

function malformed(client: boolean): Case[] {
  const side = client ? 'client' : 'server';
  const good = [text(3), ping(1), binary(130)];
  const bad = (
    name: string,
    fault: FrameFault,
    frame: FrameSpec | Buffer,
    before = good,
    maxPayload = 70_000,
  ): Case => ({
    name: `${side}: ${name}`,
    client,
    fault,
    maxPayload,
    frames: [...before, frame, text(5), close(1000)],
  });
  const open = [...good, ...fragmented(TEXT, [4, 4]).slice(0, 1), pong(2)];
  return [
    bad('RSV1', 'reserved-bits', { opcode: TEXT, payload: randomBytes(3), rsv: 4 }),
    bad('RSV2', 'reserved-bits', { opcode: BINARY, payload: randomBytes(3), rsv: 2 }),
    bad('RSV3 on a ping', 'reserved-bits', { opcode: PING, rsv: 1 }),
    bad(
      'RSV1 on a continuation',
      'reserved-bits',
      { opcode: 0, payload: randomBytes(2), rsv: 4 },
      open,
    ),
    ...[3, 4, 5, 6, 7, 11, 12, 13, 14, 15].map((op) =>
      bad(`reserved opcode ${op}`, 'reserved-opcode', { opcode: op, payload: randomBytes(2) }),
    ),
    client
      ? bad('an unmasked client frame', 'mask', {
          opcode: TEXT,
          payload: randomBytes(9),
          masked: false,
        })
      : bad('a masked server frame', 'mask', {
          opcode: TEXT,
          payload: randomBytes(9),
          masked: true,
        }),
    client
      ? bad('an unmasked client close', 'mask', { ...close(1000), masked: false })
      : bad('a masked server pong', 'mask', { ...pong(2), masked: true }),
    bad('64-bit length with the top bit set', 'length', hugeLength(client, 1n << 63n)),
    bad('64-bit length of all ones', 'length', hugeLength(client, (1n << 64n) - 1n)),
    bad('a ping of 126 bytes', 'control-frame', ping(126)),
    bad('a close of 126 bytes', 'control-frame', close(1000, 'x'.repeat(124))),
    bad('a pong of 65,536 bytes (64-bit form)', 'control-frame', {
      ...pong(0),
      length: 65536n,
      form: 64,
    }),
    bad('a ping with a 16-bit length of 5', 'control-frame', { ...ping(5), form: 16 }),
    bad('a close with a 64-bit length of 2', 'control-frame', { ...close(1000), form: 64 }),
    bad('a ping with FIN clear', 'control-frame', { ...ping(2), fin: false }),
    bad('a close with FIN clear', 'control-frame', { ...close(1000), fin: false }),
    bad('a close with a 1-byte body', 'control-frame', {
      opcode: CLOSE,
      payload: Buffer.from([3]),
    }),
    bad('a continuation with no message open', 'continuation', {
      opcode: 0,
      payload: randomBytes(4),
    }),
    bad('a continuation after a finished message', 'continuation', { opcode: 0 }, [
      ...fragmented(TEXT, [2, 2]),
    ]),
    bad('a text frame inside a fragmented message', 'continuation', text(4), open),
    bad('a binary frame inside a fragmented message', 'continuation', binary(0), open),
    bad('a payload above maxPayloadBytes', 'too-large', binary(70_001)),
    bad(
      'a 16-bit continuation above maxPayloadBytes',
      'too-large',
      { opcode: 0, length: 65535n, form: 16 },
      fragmented(BINARY, [10, 10]).slice(0, 1),
      1000,
    ),
    bad('a 64-bit length of 2^53', 'too-large', { opcode: TEXT, length: 1n << 53n, form: 64 }),
    // A bad first frame: the boundary never moves.
    bad('a bad first frame', 'mask', { ...text(1), masked: !client }, []),
  ];
}

describe('FrameScanner on malformed streams', () => {
  const cases = [...malformed(true), ...malformed(false)];
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const e = build(c);
    expect(runAll(e)).toEqual([]);
    // Whole-stream summary: the fault, its close code, the boundary at the last good frame.
    const sc = new FrameScanner({ masked: c.client, maxPayloadBytes: e.maxPayload });
    sc.scan(e.stream);
    expect(sc.fault).toBe(c.fault);
    expect(sc.boundary).toBe(e.fault!.start);
    expect(faultCloseCode(sc.fault!)).toBe(c.fault === 'too-large' ? 1009 : 1002);
  });

  it('faultCloseCode: 1009 for size, 1002 for every protocol error', () => {
    const faults: FrameFault[] = [
      'reserved-bits',
      'reserved-opcode',
      'mask',
      'length',
      'control-frame',
      'continuation',
    ];
    for (const f of faults) expect(faultCloseCode(f)).toBe(1002);
    expect(faultCloseCode('too-large')).toBe(1009);
  });
});

// ---------------------------------------------------------------------------------------------
// closeFrame

describe('closeFrame', () => {
  const reasons = [
    '',
    'bye',
    'x'.repeat(123),
    'x'.repeat(124),
    'y'.repeat(500),
    'é'.repeat(100),
    'a' + '€'.repeat(60),
    '😀'.repeat(40),
    'ab' + '😀'.repeat(40),
    'x'.repeat(119) + '😀' + 'tail',
  ];
  const table = [1000, 1002, 1009, 1011, 1012, 4000].flatMap((code) =>
    reasons.flatMap((reason) => [true, false].map((toServer) => [code, reason, toServer] as const)),
  );
  it.each(table)('code %i, reason %j, toward a server: %s', (code, reason, toServer) => {
    const frame = closeFrame(code, reason, toServer);
    const ref = refDecode(frame, toServer, 0);
    expect(ref.fault).toBeUndefined();
    expect(ref.frames).toHaveLength(1);
    const f = ref.frames[0]!;
    expect(f).toMatchObject({ start: 0, end: frame.length, fin: true, opcode: CLOSE });
    expect(f.payload.length).toBeLessThanOrEqual(125);
    expect(f.payload.readUInt16BE(0)).toBe(code);
    // The reason is valid UTF-8, a prefix of the one given, as long as fits in 123 bytes.
    const got = new TextDecoder('utf-8', { fatal: true }).decode(f.payload.subarray(2));
    expect(reason.startsWith(got)).toBe(true);
    if (got.length < reason.length) {
      const next = String.fromCodePoint(reason.codePointAt(got.length)!);
      expect(Buffer.byteLength(got + next)).toBeGreaterThan(123);
    }
    // And the scanner on the receiving side reads it as a close with that code.
    const sc = new FrameScanner({ masked: toServer, maxPayloadBytes: 1 << 20 });
    sc.scan(frame);
    expect([sc.fault, sc.closeCode, sc.closeStart, sc.boundary]).toEqual([
      undefined,
      code,
      0,
      frame.length,
    ]);
  });
});
