import { describe, expect, it } from 'vitest';
import { RouteTable, canonicalizeUrl } from '../src/route-table.js';

const table = new RouteTable({ sansPbxEnabled: true });

describe('canonicalizeUrl', () => {
  it.each([
    ['/media-stream/../admin', 'dot segment'],
    ['/media-stream/./x', 'dot segment'],
    ['/media-stream/..', 'dot segment'],
    ['/media-stream/%2e%2e/admin', 'character not allowed in path'],
    ['/media-stream/%2E%2E/admin', 'character not allowed in path'],
    ['/media-stream/..%2fadmin', 'character not allowed in path'],
    ['/media-stream/a%2Fb', 'character not allowed in path'],
    ['/media-stream%5c..%5cadmin', 'character not allowed in path'],
    ['/media-stream\\..\\admin', 'character not allowed in path'],
    ['/media-stream//x', 'empty path segment'],
    ['//evil.com/media-stream/x', 'empty path segment'],
    ['/media-stream;/../admin', 'character not allowed in path'],
    ['/media-stream/x;jsessionid=1', 'character not allowed in path'],
    ['/media-stream/a%00b', 'character not allowed in path'],
    ['/media-stream/%252e%252e/admin', 'character not allowed in path'],
    ['/media-stream/caf\u00e9', 'character not allowed in path'],
    ['/media-stream/a b', 'character not allowed in path'],
    ['/media-stream/http:/x', 'character not allowed in path'],
    ["/media-stream/it's", 'character not allowed in path'],
    ['http://evil.com/media-stream/x', 'not an origin-form path'],
    ['*', 'not an origin-form path'],
    ['', 'not an origin-form path'],
    ['/media-stream/x#frag', 'fragment in request target'],
    ["/test-agent/s1?token=a'b", 'character not allowed in query'],
    ['/test-agent/s1?token=%zz', 'character not allowed in query'],
    ['/test-agent/s1?token=a b', 'character not allowed in query'],
  ])('rejects %j (%s)', (raw, reason) => {
    expect(canonicalizeUrl(raw)).toEqual({ ok: false, reason });
  });

  it.each([
    ['/media-stream', '/media-stream', undefined],
    [
      '/media-stream/CA0123456789abcdef0123456789abcdef',
      '/media-stream/CA0123456789abcdef0123456789abcdef',
      undefined,
    ],
    ['/test-agent/', '/test-agent/', undefined],
    [
      '/test-agent/s-1_x?token=abc.DEF-_~%2B%2F%3D',
      '/test-agent/s-1_x',
      'token=abc.DEF-_~%2B%2F%3D',
    ],
    ['/test-agent/app.js', '/test-agent/app.js', undefined],
    ['/media-stream/twiml?', '/media-stream/twiml', ''],
    ['/media-stream/...', '/media-stream/...', undefined],
  ])('accepts %j', (raw, pathname, query) => {
    expect(canonicalizeUrl(raw)).toEqual({ ok: true, pathname, query });
  });
});

describe('RouteTable#match', () => {
  describe('upgrades', () => {
    it.each([
      ['/media-stream', 'sanspbx', 'media', {}],
      ['/media-stream/CAabc123', 'media-stream', 'media', { segment: 'CAabc123' }],
      ['/media-stream/CAabc123?ignored=1', 'media-stream', 'media', { segment: 'CAabc123' }],
      ['/test-agent/sess-42', 'test-agent', 'test-agent', { sessionId: 'sess-42' }],
      ['/test-agent/sess-42?token=t0k', 'test-agent', 'test-agent', { sessionId: 'sess-42' }],
      // 64 characters: the longest id both workers accept.
      ['/media-stream/' + 'C'.repeat(64), 'media-stream', 'media', { segment: 'C'.repeat(64) }],
      ['/test-agent/' + 's'.repeat(64), 'test-agent', 'test-agent', { sessionId: 's'.repeat(64) }],
    ])('%s → %s', (url, route, pool, extra) => {
      expect(table.match('GET', url, true)).toEqual({
        kind: 'pool',
        route,
        pool,
        pathname: url.split('?')[0],
        forwardUrl: url,
        ...extra,
      });
    });

    it.each([
      ['/', 'PROXY_ERR_NO_ROUTE'],
      ['/healthz', 'PROXY_ERR_NO_ROUTE'],
      ['/media-stream/', 'PROXY_ERR_NO_ROUTE'],
      ['/media-stream/a/b', 'PROXY_ERR_NO_ROUTE'],
      ['/media-stream/a.b', 'PROXY_ERR_NO_ROUTE'],
      ['/media-streamX', 'PROXY_ERR_NO_ROUTE'],
      ['/test-agent', 'PROXY_ERR_NO_ROUTE'],
      ['/test-agent/', 'PROXY_ERR_NO_ROUTE'],
      ['/test-agent/a/b', 'PROXY_ERR_NO_ROUTE'],
      ['/test-agent/' + 'x'.repeat(129), 'PROXY_ERR_NO_ROUTE'],
      // 65–128 characters used to pass here and get a 404 from the worker.
      ['/media-stream/' + 'C'.repeat(65), 'PROXY_ERR_NO_ROUTE'],
      ['/media-stream/' + 'C'.repeat(128), 'PROXY_ERR_NO_ROUTE'],
      ['/test-agent/' + 's'.repeat(65), 'PROXY_ERR_NO_ROUTE'],
      ['/admin', 'PROXY_ERR_NO_ROUTE'],
      ['/media-stream/../admin', 'PROXY_ERR_BAD_PATH'],
      ['//evil.com/media-stream/x', 'PROXY_ERR_BAD_PATH'],
      ['/test-agent/%2e%2e', 'PROXY_ERR_BAD_PATH'],
    ])('%s → %s', (url, code) => {
      expect(table.match('GET', url, true)).toMatchObject({ kind: 'reject', route: 'none', code });
    });

    it('answers the bare SansPBX path with 404 when SansPBX is off', () => {
      const off = new RouteTable({ sansPbxEnabled: false });
      expect(off.match('GET', '/media-stream', true)).toMatchObject({ code: 'PROXY_ERR_NO_ROUTE' });
      expect(off.match('GET', '/media-stream/CA1', true)).toMatchObject({ route: 'media-stream' });
    });
  });

  describe('plain requests', () => {
    it.each([
      ['POST', '/media-stream/twiml', 'media-http', 'media', undefined],
      ['POST', '/media-stream/status?x=1', 'media-http', 'media', undefined],
      ['GET', '/media-stream/', 'media-http', 'media', undefined],
      ['GET', '/test-agent/', 'test-agent-http', 'test-agent', undefined],
      ['GET', '/test-agent/app.js', 'test-agent-http', 'test-agent', undefined],
      ['POST', '/test-agent/api/sessions', 'test-agent-http', 'test-agent', undefined],
      ['GET', '/test-agent/sess-42', 'test-agent-http', 'test-agent', 'sess-42'],
      // Too long for a session id: the page's assets path, least-loaded, not pinned.
      ['GET', '/test-agent/' + 's'.repeat(65), 'test-agent-http', 'test-agent', undefined],
    ])('%s %s → %s', (method, url, route, pool, sessionId) => {
      const match = table.match(method, url, false);
      expect(match).toMatchObject({ kind: 'pool', route, pool, forwardUrl: url });
      expect(match.kind === 'pool' ? match.sessionId : 'not a pool').toBe(sessionId);
    });

    it.each([
      ['GET', '/healthz', 'healthz'],
      ['HEAD', '/readyz', 'readyz'],
      ['GET', '/readyz?verbose', 'readyz'],
    ])('%s %s is answered locally', (method, url, route) => {
      expect(table.match(method, url, false)).toEqual({ kind: 'local', route });
    });

    it.each([
      ['GET', '/'],
      ['POST', '/healthz'],
      ['GET', '/media-stream'],
      ['GET', '/favicon.ico'],
      ['GET', '/test-agentx'],
    ])('%s %s → 404', (method, url) => {
      expect(table.match(method, url, false)).toMatchObject({ code: 'PROXY_ERR_NO_ROUTE' });
    });

    it.each([
      ['/test-agent', '/test-agent/'],
      ['/test-agent?k=v', '/test-agent/?k=v'],
    ])('redirects %s to %s', (url, location) => {
      expect(table.match('GET', url, false)).toEqual({
        kind: 'redirect',
        route: 'test-agent-redirect',
        location,
      });
    });
  });
});
