import type { IncomingHttpHeaders } from 'node:http';
import { headerTokens as tokens } from '@callgate/runtime';

export interface ForwardedInfo {
  /** The peer address of the client socket: the only X-Forwarded-For a worker sees. */
  clientAddress: string;
  /** `ws`/`wss` for upgrades, `http`/`https` otherwise. */
  proto: string;
  /** The client's (already validated) Host, if any. */
  host: string | undefined;
  requestId: string;
  /** Set for upgrades, so worker logs can be joined with the proxy's tunnel lines. */
  tunnelId?: string;
}

// RFC 9110 §7.6.1 hop-by-hop fields, plus the legacy ones nginx and HAProxy also drop.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'upgrade',
]);
// Fields a client must not be able to pre-set: the proxy writes them itself.
// X-Callgate-Resume vouches for a moved call: only the proxy may send it (see tunnel.ts).
const PROXY_OWNED = new Set([
  'forwarded',
  'x-real-ip',
  'x-request-id',
  'x-tunnel-id',
  'x-callgate-resume',
]);
// Fields `Connection` may not nominate away: the request would change meaning, not just lose a hop.
const END_TO_END = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
]);

/**
 * The exact header set sent to a worker: hop-by-hop fields and every field named in `Connection`
 * removed (a client could otherwise strip a header the worker relies on by naming it there),
 * client `X-Forwarded-*`, `Forwarded` and `X-Real-IP` removed, then `X-Forwarded-For/-Proto/-Host`,
 * `X-Request-Id` (and `X-Tunnel-Id`) written fresh: overwritten, never appended, so a client
 * cannot make a worker believe it comes from another address or scheme. Upgrades get `Connection: Upgrade`
 * and `Upgrade: websocket` back; plain requests keep their body framing.
 */
export function upstreamHeaders(
  headers: IncomingHttpHeaders,
  info: ForwardedInfo,
  isUpgrade: boolean,
): IncomingHttpHeaders {
  const nominated = new Set(tokens(headers.connection).filter((name) => !END_TO_END.has(name)));
  const out: IncomingHttpHeaders = {};
  // for-in, not Object.entries: no array of pairs on every upgrade.
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || PROXY_OWNED.has(name) || nominated.has(name)) continue;
    if (name.startsWith('x-forwarded-') || name.startsWith('proxy-')) continue;
    // An upgrade has no body (the gate made sure); framing fields would only confuse the worker.
    if (isUpgrade && (name === 'content-length' || name === 'transfer-encoding')) continue;
    out[name] = value;
  }
  out['x-forwarded-for'] = info.clientAddress;
  out['x-forwarded-proto'] = info.proto;
  if (info.host !== undefined) out['x-forwarded-host'] = info.host;
  out['x-request-id'] = info.requestId;
  if (info.tunnelId !== undefined) out['x-tunnel-id'] = info.tunnelId;
  if (isUpgrade) {
    out.connection = 'Upgrade';
    out.upgrade = 'websocket';
  }
  return out;
}
