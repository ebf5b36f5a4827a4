import type { PoolName } from './config.js';

/** The name of the route that matched, used as the `route` label and log field. */
export type RouteName =
  | 'media-stream'
  | 'sanspbx'
  | 'test-agent'
  | 'media-http'
  | 'test-agent-http'
  | 'test-agent-redirect'
  | 'healthz'
  | 'readyz'
  | 'none';

export type RouteMatch =
  | {
      kind: 'pool';
      route: RouteName;
      pool: PoolName;
      /** Canonical path without the query: what signatures and logs use. */
      pathname: string;
      /** Exactly what is forwarded: the raw path plus the query, byte for byte. */
      forwardUrl: string;
      /** The `/media-stream/<segment>` id (a CallSid for Twilio). */
      segment?: string;
      /** Pins the request to one backend (rendezvous hash). */
      sessionId?: string;
    }
  | { kind: 'local'; route: 'healthz' | 'readyz' }
  | { kind: 'redirect'; route: 'test-agent-redirect'; location: string }
  | {
      kind: 'reject';
      route: 'none';
      code: 'PROXY_ERR_BAD_PATH' | 'PROXY_ERR_NO_ROUTE';
      reason: string;
    };

export interface RouteTableOptions {
  /** The bare `/media-stream` path is the SansPBX entrance; `false` answers it with 404. */
  sansPbxEnabled: boolean;
}

export type CanonicalUrl =
  { ok: true; pathname: string; query: string | undefined } | { ok: false; reason: string };

// Unreserved characters and the sub-delimiters that no parser on the way rewrites. Left out on
// purpose: `%` (any escape: %2e, %2f, %5c, %00, double encoding), `;` (matrix parameters that
// WHATWG URL treats as part of a dot segment), `\` (url.parse turns it into `/`), `:` (http-proxy's
// urlJoin rewrites `http:/`), `'` (url.parse escapes it), spaces, controls and non-ASCII.
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&()*+,=@/]*$/;
// The query may carry escapes (tokens, form values) but nothing url.parse would re-escape.
const QUERY_CHARS = /^(?:[A-Za-z0-9\-._~!$&()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$/;
/**
 * A CallSid or session id: one path segment. Twilio's CallSids are `CA` + 32 hex digits and
 * test-agent session ids at most 64 characters. 64 is also the media worker's limit: a longer id
 * would pass here only to get a 404 from the worker, so the edge refuses it itself.
 */
const ID = /^[A-Za-z0-9_-]{1,64}$/;
const CHECK_BASE = 'http://edge.invalid';

/**
 * Accepts only a path that every parser on the way (WHATWG URL, url.parse, http-proxy, the
 * worker's router) reads the same way, so the proxy routes on exactly what it forwards: a path
 * that one parser normalises (`..`, `%2e`, `\\`, doubled slashes) and another does not could be
 * routed to one pool and served as another path. Never decodes anything; rejects instead.
 */
export function canonicalizeUrl(rawUrl: string): CanonicalUrl {
  if (!rawUrl.startsWith('/')) return { ok: false, reason: 'not an origin-form path' };
  if (rawUrl.includes('#')) return { ok: false, reason: 'fragment in request target' };
  const q = rawUrl.indexOf('?');
  const pathname = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const query = q === -1 ? undefined : rawUrl.slice(q + 1);
  if (!PATH_CHARS.test(pathname)) return { ok: false, reason: 'character not allowed in path' };
  if (pathname.includes('//')) return { ok: false, reason: 'empty path segment' };
  for (const segment of pathname.split('/')) {
    if (segment === '.' || segment === '..') return { ok: false, reason: 'dot segment' };
  }
  if (query !== undefined && !QUERY_CHARS.test(query)) {
    return { ok: false, reason: 'character not allowed in query' };
  }
  // Belt and braces: whatever WHATWG URL would normalize is not canonical.
  if (new URL(pathname, CHECK_BASE).pathname !== pathname) {
    return { ok: false, reason: 'path is not in normal form' };
  }
  return { ok: true, pathname, query };
}

/**
 * Maps a request target to a pool, a local endpoint, a redirect or a rejection. Pure: the Host
 * header is never an input, so it can neither pick a route nor break one.
 */
export class RouteTable {
  readonly #sansPbxEnabled: boolean;

  constructor(options: RouteTableOptions) {
    this.#sansPbxEnabled = options.sansPbxEnabled;
  }

  /** `isUpgrade`: the request arrived on the `upgrade` event. */
  match(method: string, rawUrl: string, isUpgrade: boolean): RouteMatch {
    const url = canonicalizeUrl(rawUrl);
    if (!url.ok)
      return { kind: 'reject', route: 'none', code: 'PROXY_ERR_BAD_PATH', reason: url.reason };
    const { pathname } = url;
    const forwardUrl = rawUrl;
    const noRoute = (reason: string): RouteMatch => ({
      kind: 'reject',
      route: 'none',
      code: 'PROXY_ERR_NO_ROUTE',
      reason,
    });

    if (isUpgrade) {
      if (pathname === '/media-stream') {
        if (!this.#sansPbxEnabled) return noRoute('SansPBX route disabled');
        return { kind: 'pool', route: 'sanspbx', pool: 'media', pathname, forwardUrl };
      }
      const segment = singleSegment(pathname, '/media-stream/');
      if (segment !== undefined) {
        return {
          kind: 'pool',
          route: 'media-stream',
          pool: 'media',
          pathname,
          forwardUrl,
          segment,
        };
      }
      const sessionId = singleSegment(pathname, '/test-agent/');
      if (sessionId !== undefined) {
        return {
          kind: 'pool',
          route: 'test-agent',
          pool: 'test-agent',
          pathname,
          forwardUrl,
          sessionId,
        };
      }
      return noRoute('no WebSocket route for this path');
    }

    if (pathname === '/healthz' || pathname === '/readyz') {
      if (method !== 'GET' && method !== 'HEAD') return noRoute('method not served here');
      return { kind: 'local', route: pathname === '/healthz' ? 'healthz' : 'readyz' };
    }
    if (pathname === '/test-agent') {
      const location = url.query === undefined ? '/test-agent/' : `/test-agent/?${url.query}`;
      return { kind: 'redirect', route: 'test-agent-redirect', location };
    }
    if (pathname.startsWith('/media-stream/')) {
      return { kind: 'pool', route: 'media-http', pool: 'media', pathname, forwardUrl };
    }
    if (pathname.startsWith('/test-agent/')) {
      const sessionId = singleSegment(pathname, '/test-agent/');
      const match: RouteMatch = {
        kind: 'pool',
        route: 'test-agent-http',
        pool: 'test-agent',
        pathname,
        forwardUrl,
      };
      // `/test-agent/<sessionId>` lands where its WebSocket will; the page and its assets go
      // least-loaded.
      if (sessionId !== undefined) match.sessionId = sessionId;
      return match;
    }
    return noRoute('no route for this path');
  }
}

/** `/prefix/<id>` with exactly one id-shaped segment after the prefix, else undefined. */
function singleSegment(pathname: string, prefix: string): string | undefined {
  if (!pathname.startsWith(prefix)) return undefined;
  const rest = pathname.slice(prefix.length);
  return ID.test(rest) ? rest : undefined;
}
