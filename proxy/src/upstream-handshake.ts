import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

// The upgrade is sent to a worker on a raw socket and its answer parsed here: an `http.request()`
// per upgrade (and a library on top of it) costs several times the CPU and memory of the few
// lines this needs. Only a WebSocket handshake's answer is parsed: a status line and headers.

/** The largest answer head a worker may send before the proxy calls it broken. */
export const MAX_RESPONSE_HEAD_BYTES = 16_384;

const CRLF_CRLF = Buffer.from('\r\n\r\n');

/** The request head, ready to write: `GET <url> HTTP/1.1`, the headers, a blank line. */
export function requestHead(url: string, headers: IncomingHttpHeaders, extra = ''): Buffer {
  let text = `GET ${url} HTTP/1.1\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) text += `${name}: ${v}\r\n`;
    else text += `${name}: ${value}\r\n`;
  }
  return Buffer.from(`${text}${extra}\r\n`, 'latin1');
}

/** `Sec-WebSocket-Accept` for a key (RFC 6455 §4.2.2). */
export function acceptFor(key: string): string {
  return createHash('sha1')
    .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64');
}

export interface ResponseHead {
  status: number;
  /** Lower-case names, in order; repeated names repeat. */
  headers: Array<[name: string, value: string]>;
  /** The head as received, CRLFCRLF included. */
  raw: Buffer;
  /** Bytes after the head in the same read (WebSocket frames after a 101, or a body). */
  rest: Buffer;
}

export type HeadResult = ResponseHead | 'more' | 'malformed';

/** Gathers a worker's answer head across reads. */
export class ResponseHeadReader {
  #chunks: Buffer[] = [];
  #length = 0;

  /** Adds a read (copied: the caller's buffer may be reused). */
  push(chunk: Buffer): HeadResult {
    this.#chunks.push(Buffer.from(chunk));
    this.#length += chunk.length;
    const all = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
    this.#chunks = [all];
    const end = all.indexOf(CRLF_CRLF);
    if (end < 0) return this.#length > MAX_RESPONSE_HEAD_BYTES ? 'malformed' : 'more';
    if (end + 4 > MAX_RESPONSE_HEAD_BYTES) return 'malformed';
    const lines = all.toString('latin1', 0, end).split('\r\n');
    const status = statusOf(lines[0]!);
    if (status < 0) return 'malformed';
    const headers: Array<[string, string]> = [];
    for (let i = 1; i < lines.length; i++) {
      const header = headerOf(lines[i]!);
      if (header === undefined) return 'malformed';
      headers.push(header);
    }
    return {
      status,
      headers,
      raw: all.subarray(0, end + 4),
      rest: all.subarray(end + 4),
    };
  }
}

// Read with character tests rather than regular expressions: a match array and its strings per
// line were ~0.9 KiB of the ~33 KiB an upgrade allocates. The grammar is the same as before:
// `HTTP/1.<0|1> <3 digits>[ <reason>]` and `<token>:[ \t]*<value>[ \t]*`, no CR or LF inside.

/** Characters of an RFC 9110 token (a header name), by char code. */
const TOKEN_CHARS = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TOKEN_CHARS[c.charCodeAt(0)] = 1;
}

function hasCrOrLf(line: string, from: number): boolean {
  for (let i = from; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 13 || c === 10) return true;
  }
  return false;
}

/** The status code of a status line, or -1 when the line is not one. */
export function statusOf(line: string): number {
  if (line.length < 12 || !line.startsWith('HTTP/1.')) return -1;
  const minor = line.charCodeAt(7);
  if ((minor !== 48 && minor !== 49) || line.charCodeAt(8) !== 32) return -1;
  let status = 0;
  for (let i = 9; i < 12; i++) {
    const digit = line.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    status = status * 10 + digit;
  }
  if (line.length > 12 && (line.charCodeAt(12) !== 32 || hasCrOrLf(line, 13))) return -1;
  return status;
}

/** A header line as [lower-case name, value without surrounding blanks], or undefined. */
export function headerOf(line: string): [string, string] | undefined {
  const colon = line.indexOf(':');
  if (colon <= 0) return undefined;
  for (let i = 0; i < colon; i++) if (TOKEN_CHARS[line.charCodeAt(i)] !== 1) return undefined;
  if (hasCrOrLf(line, colon + 1)) return undefined;
  let from = colon + 1;
  let to = line.length;
  while (from < to && isBlank(line.charCodeAt(from))) from++;
  while (to > from && isBlank(line.charCodeAt(to - 1))) to--;
  return [line.slice(0, colon).toLowerCase(), line.slice(from, to)];
}

function isBlank(c: number): boolean {
  return c === 32 || c === 9;
}

export function headerValue(head: ResponseHead, name: string): string | undefined {
  for (const [n, v] of head.headers) if (n === name) return v;
  return undefined;
}

/** A 101 that completes the handshake for `key`: `Upgrade: websocket` and the right accept. */
export function isValidSwitch(head: ResponseHead, key: string | undefined): boolean {
  if (head.status !== 101) return false;
  if (headerValue(head, 'upgrade')?.toLowerCase() !== 'websocket') return false;
  return key === undefined || headerValue(head, 'sec-websocket-accept') === acceptFor(key);
}

// Framing and hop-by-hop fields of a refusal: the proxy re-delimits the body by closing.
const REFUSAL_DROPPED = new Set(['connection', 'keep-alive', 'transfer-encoding']);

/**
 * The head relayed to the caller for a worker's refusal (403, 410, ...): the worker's status and
 * headers, its body delimited by the close (`Connection: close`, no `Transfer-Encoding`), so a
 * chunked body is decoded on the way (ChunkedDecoder).
 */
export function refusalHead(head: ResponseHead): Buffer {
  const firstLineEnd = head.raw.indexOf('\r\n');
  let text = head.raw.toString('latin1', 0, firstLineEnd) + '\r\n';
  const chunked = bodyFraming(head) === 'chunked';
  for (const [name, value] of head.headers) {
    if (REFUSAL_DROPPED.has(name) || (chunked && name === 'content-length')) continue;
    text += `${name}: ${value}\r\n`;
  }
  return Buffer.from(`${text}connection: close\r\n\r\n`, 'latin1');
}

/** How a refusal's body ends. */
export function bodyFraming(head: ResponseHead): 'chunked' | number | 'close' {
  const te = headerValue(head, 'transfer-encoding');
  if (te !== undefined && te.toLowerCase().includes('chunked')) return 'chunked';
  const cl = headerValue(head, 'content-length');
  if (cl !== undefined && /^\d{1,9}$/.test(cl)) return Number(cl);
  return 'close';
}

/**
 * Decodes a chunked body (RFC 9112 §7.1) as it arrives; extensions and trailers are dropped.
 * `push` returns the decoded bytes of this read; `done` once the last chunk and trailers are in;
 * `failed` on a framing error.
 */
export class ChunkedDecoder {
  done = false;
  failed = false;
  #state: 'size' | 'data' | 'data-crlf' | 'trailer' = 'size';
  #line = '';
  #remaining = 0;

  push(chunk: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < chunk.length && !this.done && !this.failed) {
      if (this.#state === 'data') {
        const take = Math.min(this.#remaining, chunk.length - i);
        out.push(Buffer.from(chunk.subarray(i, i + take)));
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) this.#state = 'data-crlf';
        continue;
      }
      const nl = chunk.indexOf(10, i);
      const end = nl < 0 ? chunk.length : nl;
      this.#line += chunk.toString('latin1', i, end);
      i = nl < 0 ? chunk.length : nl + 1;
      if (nl < 0) {
        if (this.#line.length > 1024) this.failed = true;
        continue;
      }
      const line = this.#line.replace(/\r$/, '');
      this.#line = '';
      this.#lineDone(line);
    }
    return out;
  }

  #lineDone(line: string): void {
    switch (this.#state) {
      case 'size': {
        const m = /^([0-9A-Fa-f]{1,8})(?:;.*)?$/.exec(line);
        if (!m) {
          this.failed = true;
          return;
        }
        this.#remaining = parseInt(m[1]!, 16);
        this.#state = this.#remaining === 0 ? 'trailer' : 'data';
        return;
      }
      case 'data-crlf':
        if (line !== '') this.failed = true;
        this.#state = 'size';
        return;
      case 'trailer':
        if (line === '') this.done = true;
        return;
      default:
        return;
    }
  }
}
