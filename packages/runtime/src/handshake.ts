import type { IncomingHttpHeaders } from 'node:http';
import { isIPv6 } from 'node:net';

/** What the check reads of a request: Node's `IncomingMessage` has it, and so has the proxy's. */
export interface HandshakeRequest {
  method?: string | undefined;
  httpVersion: string;
  headers: IncomingHttpHeaders;
  /** Alternating names and values, as received: duplicates are only visible here. */
  rawHeaders: readonly string[];
}

/** The two refusals, named in the caller's area: `<AREA>_ERR_BAD_HANDSHAKE`, `<AREA>_ERR_BAD_HOST`. */
export type HandshakeResult<Area extends string> =
  | { ok: true }
  | { ok: false; code: `${Area}_ERR_BAD_HANDSHAKE` | `${Area}_ERR_BAD_HOST`; reason: string };

const OK = { ok: true } as const;
// RFC 6455 §4.1: the base64 of 16 random bytes.
const WS_KEY = /^[A-Za-z0-9+/]{22}==$/;
// reg-name (letters, digits, `-`, `.`, `_`; a trailing dot is a valid FQDN) or an IPv6 literal.
const HOST = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9_][A-Za-z0-9._-]*))(?::(\d{1,5}))?$/;

/**
 * The strict WebSocket handshake check, run by the proxy before a pool is touched and by the
 * workers' StreamServer before `routeUpgrade`: HTTP/1.1 GET, exactly one `Upgrade: websocket`,
 * `Connection` naming `upgrade`, version 13 (RFC 6455 §4.1; the drafts' 8 is not spoken), a
 * well-formed key, no body (no Content-Length, no Transfer-Encoding, nothing sent before the 101)
 * and a well-formed Host. Anything else is refused with a 400 and never reaches a backend: an
 * `Upgrade: h2c` or a body smuggled behind the handshake would otherwise be read by the next hop
 * as a second request (request smuggling). Codes are `<area>_ERR_BAD_HANDSHAKE` and
 * `<area>_ERR_BAD_HOST`.
 */
export function checkWebSocketHandshake<Area extends string>(
  area: Area,
  req: HandshakeRequest,
  /** Bytes the client sent after the request head (`head` of the `upgrade` event). */
  headLength: number,
): HandshakeResult<Area> {
  const bad = (reason: string): HandshakeResult<Area> => ({
    ok: false,
    code: `${area}_ERR_BAD_HANDSHAKE`,
    reason,
  });
  if (req.httpVersion !== '1.1') return bad(`HTTP/${req.httpVersion} cannot upgrade`);
  if (req.method !== 'GET') return bad(`WebSocket upgrades use GET, got ${req.method ?? 'none'}`);
  const counts = headerCounts(req.rawHeaders);
  const upgrade = req.headers.upgrade;
  if (counts.get('upgrade') !== 1 || upgrade?.trim().toLowerCase() !== 'websocket') {
    return bad('Upgrade must be websocket');
  }
  if (!headerTokens(req.headers.connection).includes('upgrade'))
    return bad('Connection lacks "upgrade"');
  const version = req.headers['sec-websocket-version'];
  if (counts.get('sec-websocket-version') !== 1 || version?.trim() !== '13') {
    return bad('missing or invalid Sec-WebSocket-Version');
  }
  const key = req.headers['sec-websocket-key'];
  if (counts.get('sec-websocket-key') !== 1 || !WS_KEY.test(key?.trim() ?? '')) {
    return bad('missing or invalid Sec-WebSocket-Key');
  }
  if (counts.has('content-length') || counts.has('transfer-encoding')) {
    return bad('an upgrade request carries no body');
  }
  if (headLength !== 0) return bad('bytes sent before the 101');
  return hostVerdict(area, req.headers.host, counts.get('host'));
}

/**
 * RFC 9112 §3.2: exactly one Host, `reg-name` or `[IPv6]` with an optional port 1–65535. The
 * value is never parsed into a URL or used to route; it is only checked so that a hostile value
 * (`[`, `a b`, `x:99999`) gets a 400 instead of reaching a worker.
 */
export function checkHost<Area extends string>(
  area: Area,
  req: Pick<HandshakeRequest, 'headers' | 'rawHeaders'>,
): HandshakeResult<Area> {
  let sent = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i]!.toLowerCase() === 'host') sent++;
  }
  return hostVerdict(area, req.headers.host, sent);
}

/** `sent`: how many Host headers came (the handshake check has counted them already). */
function hostVerdict<Area extends string>(
  area: Area,
  host: string | undefined,
  sent: number | undefined,
): HandshakeResult<Area> {
  const bad = (reason: string): HandshakeResult<Area> => ({
    ok: false,
    code: `${area}_ERR_BAD_HOST`,
    reason,
  });
  if (sent !== 1 || host === undefined) return bad('exactly one Host header needed');
  if (host.length > 255) return bad('Host too long');
  const m = HOST.exec(host);
  if (!m) return bad('Host is not host[:port]');
  if (m[1] !== undefined && !isIPv6(m[1])) return bad('Host has a malformed IPv6 literal');
  if (m[3] !== undefined) {
    const port = Number(m[3]);
    if (port < 1 || port > 65535) return bad('Host port out of range');
  }
  return OK;
}

/** Lowercased header name → how many times it was sent. */
function headerCounts(rawHeaders: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** A comma-separated header as lowercase tokens. */
export function headerTokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const text = Array.isArray(value) ? value.join(',') : value;
  return text
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t.length > 0);
}
