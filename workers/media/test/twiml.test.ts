import { describe, expect, it } from 'vitest';
import { buildStreamTwiml, publicOrigins } from '../src/index.js';

/** Reads the one `<Connect><Stream>` and its `<Parameter>`s out of a TwiML document. */
function parse(xml: string): {
  url: string | undefined;
  attrs: Record<string, string>;
  params: Record<string, string>;
} {
  const decode = (v: string): string =>
    v
      .replace(/&quot;/g, '"')
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&apos;/g, "'")
      .replace(/&amp;/g, '&');
  const attrsOf = (s: string): Record<string, string> =>
    Object.fromEntries([...s.matchAll(/([\w:]+)="([^"]*)"/g)].map((m) => [m[1]!, decode(m[2]!)]));
  const m =
    /^<\?xml version="1\.0" encoding="UTF-8"\?><Response><Connect><Stream((?:[^>"]|"[^"]*")*?)(?:\/>|>(.*)<\/Stream>)<\/Connect><\/Response>$/.exec(
      xml,
    );
  if (!m) throw new Error(`unexpected TwiML: ${xml}`);
  const attrs = attrsOf(m[1]!);
  const params: Record<string, string> = {};
  for (const p of (m[2] ?? '').matchAll(/<Parameter((?:[^>"]|"[^"]*")*)\/>/g)) {
    const a = attrsOf(p[1]!);
    params[a.name!] = a.value!;
  }
  return { url: attrs.url, attrs, params };
}

describe('buildStreamTwiml', () => {
  it('connects a bidirectional stream with the call token as a Parameter', () => {
    const xml = buildStreamTwiml({
      streamUrl: 'wss://edge.example.com/media-stream/CA123',
      callToken: 'v1.1.abc.def',
      statusCallbackUrl: 'https://edge.example.com/media-stream/status',
    });
    expect(parse(xml)).toEqual({
      url: 'wss://edge.example.com/media-stream/CA123',
      attrs: {
        url: 'wss://edge.example.com/media-stream/CA123',
        statusCallback: 'https://edge.example.com/media-stream/status',
        statusCallbackMethod: 'POST',
      },
      params: { callToken: 'v1.1.abc.def' },
    });
  });

  it('has no Parameter when there is no token, and escapes attribute values', () => {
    const xml = buildStreamTwiml({ streamUrl: 'wss://h/media-stream/a"<&>' });
    expect(xml).not.toContain('<Parameter');
    expect(parse(xml).url).toBe('wss://h/media-stream/a"<&>');
  });
});

describe('publicOrigins', () => {
  it.each([
    {
      name: 'https PUBLIC_URL',
      url: 'https://edge.example.com',
      headers: { host: 'evil' },
      ws: 'wss://edge.example.com',
      http: 'https://edge.example.com',
      configured: true,
    },
    {
      name: 'PUBLIC_URL with a port',
      url: 'https://edge.example.com:8443',
      headers: {},
      ws: 'wss://edge.example.com:8443',
      http: 'https://edge.example.com:8443',
      configured: true,
    },
    {
      name: 'http PUBLIC_URL (development)',
      url: 'http://127.0.0.1:8080',
      headers: {},
      ws: 'ws://127.0.0.1:8080',
      http: 'http://127.0.0.1:8080',
      configured: true,
    },
    {
      name: 'Host header',
      url: undefined,
      headers: { host: 'abc.ngrok.app' },
      ws: 'wss://abc.ngrok.app',
      http: 'https://abc.ngrok.app',
      configured: false,
    },
    {
      name: 'X-Forwarded-Host first',
      url: undefined,
      headers: { host: 'internal:8081', 'x-forwarded-host': 'abc.ngrok.app, proxy2' },
      ws: 'wss://abc.ngrok.app',
      http: 'https://abc.ngrok.app',
      configured: false,
    },
    {
      name: 'IPv6 Host',
      url: undefined,
      headers: { host: '[::1]:8080' },
      ws: 'wss://[::1]:8080',
      http: 'https://[::1]:8080',
      configured: false,
    },
  ])('from $name', ({ url, headers, ws, http, configured }) => {
    expect(publicOrigins(url === undefined ? undefined : new URL(url), headers)).toEqual({
      ws,
      http,
      configured,
    });
  });

  it.each([
    {},
    { host: 'a"><b' },
    { host: 'h/path' },
    { host: 'h@evil' },
    { 'x-forwarded-host': 'x y' },
  ])('refuses unusable host headers %o', (headers) => {
    expect(publicOrigins(undefined, headers)).toBeUndefined();
  });
});
