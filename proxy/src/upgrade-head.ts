import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** What the router reads of an upgrade request: Node's `IncomingMessage`, or a head parsed here. */
export type UpgradeRequest = Pick<
  IncomingMessage,
  'method' | 'url' | 'httpVersion' | 'headers' | 'rawHeaders' | 'socket'
>;

/** Node's http.Server keeps only this many headers (set on the listener's server too). */
export const MAX_HEADERS = 100;

const CRLFCRLF = Buffer.from('\r\n\r\n');
const GET = Buffer.from('GET ');
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const NOT_PRINTABLE = /[^\x20-\x7e\r\n]/;
const BARE_CR_OR_LF = /\r(?!\n)|(?<!\r)\n/;

/** True while the bytes so far could still be a WebSocket upgrade (they begin like `GET `). */
export function couldBeUpgrade(buf: Buffer): boolean {
  const n = Math.min(buf.length, GET.length);
  return buf.compare(GET, 0, n, 0, n) === 0;
}

/** Where the head ends (the index of its blank line's CRLF CRLF), or -1. */
export function headEnd(buf: Buffer): number {
  return buf.indexOf(CRLFCRLF);
}

/**
 * Parses an upgrade request head the way Node's parser would see it, for the one shape that the
 * listener answers without Node's HTTP server: `GET <target> HTTP/1.1`, header lines of printable
 * ASCII, each name once, no body framing, and `Connection: upgrade` with an `Upgrade` header (what
 * makes Node emit 'upgrade'). Anything else returns undefined, and Node's own parser decides
 * (with its status codes), so this fast path can only agree with it, never answer differently.
 * `end` is `headEnd(buf)`.
 */
export function parseUpgradeHead(
  buf: Buffer,
  end: number,
  socket: Socket,
): UpgradeRequest | undefined {
  const text = buf.toString('latin1', 0, end);
  // Printable ASCII and CR LF pairs only (no tabs, no obs-text, no NUL, no bare CR or LF):
  // anything else goes to Node.
  if (NOT_PRINTABLE.test(text) || BARE_CR_OR_LF.test(text)) return undefined;
  const lines = text.split('\r\n');
  const requestLine = lines[0]!;
  if (!requestLine.startsWith('GET ') || !requestLine.endsWith(' HTTP/1.1')) return undefined;
  const url = requestLine.slice(4, -9);
  if (url.length === 0 || url.includes(' ')) return undefined;
  if (lines.length - 1 > MAX_HEADERS) return undefined;
  const headers: IncomingHttpHeaders = {};
  const rawHeaders: string[] = [];
  let upgrade = false;
  let connectionUpgrade = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return undefined;
    const key = name.toLowerCase();
    // Repeated names and body framing have rules of their own in Node: it decides those.
    if (key in headers || key === '__proto__') return undefined;
    if (key === 'content-length' || key === 'transfer-encoding') return undefined;
    const value = line.slice(colon + 1).trim();
    if (key === 'upgrade') upgrade = true;
    else if (key === 'connection') connectionUpgrade = hasToken(value, 'upgrade');
    headers[key] = value;
    rawHeaders.push(name, value);
  }
  if (!upgrade || !connectionUpgrade) return undefined;
  return { method: 'GET', url, httpVersion: '1.1', headers, rawHeaders, socket };
}

function hasToken(value: string, token: string): boolean {
  for (const item of value.split(',')) if (item.trim().toLowerCase() === token) return true;
  return false;
}
