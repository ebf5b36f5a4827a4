import { describe, expect, it } from 'vitest';
import { getExpectedTwilioSignature, validateRequest } from 'twilio/lib/webhooks/webhooks.js';
import { SignatureCheck } from '../src/signature.js';
import {
  closed,
  metricValue,
  openWs,
  refusedStatus,
  startProxy,
  startWsBackend,
  type WsBackend,
} from './helpers/index.js';

// A vector computed with twilio@6.3.1's getExpectedTwilioSignature.
const TOKEN = 'test_auth_token_123';
const VECTOR = 'Uy/a+D6qJXlryo4pKMzgcaeJ5qY=';

describe('SignatureCheck', () => {
  const check = new SignatureCheck({
    authToken: TOKEN,
    publicUrl: new URL('https://edge.example.com'),
    mode: 'enforce',
  });

  it('signs the public wss:// URL of the path', () => {
    expect(check.signedUrl('/media-stream/abc')).toBe('wss://edge.example.com/media-stream/abc');
  });

  it.each<[string, string | string[] | undefined, string]>([
    ['/media-stream/abc', VECTOR, 'valid'],
    ['/media-stream/abd', VECTOR, 'invalid'],
    ['/media-stream/abc/', VECTOR, 'invalid'],
    ['/media-stream/abc', 'Uy/a+D6qJXlryo4pKMzgcaeJ5qZ=', 'invalid'],
    ['/media-stream/abc', `${VECTOR}, ${VECTOR}`, 'invalid'],
    ['/media-stream/abc', '', 'missing'],
    ['/media-stream/abc', undefined, 'missing'],
    ['/media-stream/abc', [VECTOR], 'missing'],
  ])('%s with %j is %s', (path, header, verdict) => {
    expect(check.verify(path, header)).toBe(verdict);
  });

  it('does not accept a signature made for another token or scheme', () => {
    const other = new SignatureCheck({
      authToken: 'other',
      publicUrl: new URL('https://edge.example.com'),
      mode: 'log',
    });
    expect(other.verify('/media-stream/abc', VECTOR)).toBe('invalid');
    // A signature over the https:// URL does not validate the wss:// one (twilio-aspnet#162).
    const plain = new SignatureCheck({
      authToken: TOKEN,
      publicUrl: new URL('http://edge.example.com'),
      mode: 'log',
    });
    expect(plain.signedUrl('/media-stream/abc')).toBe('ws://edge.example.com/media-stream/abc');
    expect(plain.verify('/media-stream/abc', VECTOR)).toBe('invalid');
  });

  // The exact URL is checked with one HMAC first; the verdict must stay exactly twilio's.
  it.each([
    ['https://edge.example.com', 'wss://edge.example.com/media-stream/abc'],
    ['https://edge.example.com', 'wss://edge.example.com:80/media-stream/abc'],
    ['https://edge.example.com', 'wss://edge.example.com:443/media-stream/abc'],
    ['https://edge.example.com', 'wss://edge.example.com/media-stream/abd'],
    ['https://edge.example.com', 'https://edge.example.com/media-stream/abc'],
    ['https://edge.example.com:8443', 'wss://edge.example.com:8443/media-stream/abc'],
    ['https://edge.example.com:8443', 'wss://edge.example.com/media-stream/abc'],
    ['http://edge.example.com', 'ws://edge.example.com:80/media-stream/abc'],
  ])(
    'with PUBLIC_URL %s, a signature over %s gets twilio.validateRequest verdict',
    (origin, signed) => {
      const c = new SignatureCheck({
        authToken: TOKEN,
        publicUrl: new URL(origin),
        mode: 'enforce',
      });
      const header = getExpectedTwilioSignature(TOKEN, signed, {});
      const twilio = validateRequest(TOKEN, header, c.signedUrl('/media-stream/abc'), {});
      expect(c.verify('/media-stream/abc', header)).toBe(twilio ? 'valid' : 'invalid');
    },
  );

  it('keeps a non-default port of PUBLIC_URL in the signed URL', () => {
    const ported = new SignatureCheck({
      authToken: TOKEN,
      publicUrl: new URL('https://edge.example.com:8443'),
      mode: 'enforce',
    });
    expect(ported.signedUrl('/media-stream/abc')).toBe(
      'wss://edge.example.com:8443/media-stream/abc',
    );
  });
});

describe('Twilio signature at the edge', () => {
  const env = (backend: WsBackend, mode?: string): Record<string, string> => ({
    MEDIA_BACKENDS: backend.hostPort,
    TWILIO_AUTH_TOKEN: 'test_auth_token_123',
    PUBLIC_URL: 'https://edge.example.com',
    ...(mode ? { TWILIO_SIGNATURE_MODE: mode } : {}),
  });
  // The same vector: the signature of wss://edge.example.com/media-stream/abc.
  const valid = { 'X-Twilio-Signature': 'Uy/a+D6qJXlryo4pKMzgcaeJ5qY=' };

  it('lets a correctly signed stream through and refuses others with 403 before any backend', async () => {
    const backend = await startWsBackend();
    const t = await startProxy(env(backend));
    await openWs(`${t.wsUrl}/media-stream/abc`, { headers: valid });
    // Query strings are not signed (Twilio drops them).
    await openWs(`${t.wsUrl}/media-stream/abc?x=1`, { headers: valid });
    for (const [path, headers] of [
      ['/media-stream/abd', valid],
      ['/media-stream/abc', {}],
      ['/media-stream/abc', { 'X-Twilio-Signature': 'AAAA' }],
    ] as const) {
      const refused = await refusedStatus(`${t.wsUrl}${path}`, { headers });
      expect(refused.status).toBe(403);
      expect(refused.body).toContain('PROXY_ERR_BAD_SIGNATURE');
    }
    expect(backend.upgrades).toHaveLength(2);
    expect(
      await metricValue(t.adminUrl, 'proxy_signature_checks_total', { outcome: 'invalid' }),
    ).toBe(2);
    expect(
      await metricValue(t.adminUrl, 'proxy_signature_checks_total', { outcome: 'missing' }),
    ).toBe(1);
  });

  it('exempts the bare SansPBX path, which SansPBX does not sign', async () => {
    const backend = await startWsBackend();
    const t = await startProxy(env(backend));
    await openWs(`${t.wsUrl}/media-stream`);
    expect(backend.upgrades[0]!.url).toBe('/media-stream');
  });

  it('answers 404 on the SansPBX path when SANSPBX_ENABLED=false', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ ...env(backend), SANSPBX_ENABLED: 'false' });
    expect((await refusedStatus(`${t.wsUrl}/media-stream`)).status).toBe(404);
  });

  it('logs and counts, then forwards, in log mode', async () => {
    const backend = await startWsBackend();
    const t = await startProxy(env(backend, 'log'));
    await openWs(`${t.wsUrl}/media-stream/abc`, { headers: { 'X-Twilio-Signature': 'AAAA' } });
    expect(backend.upgrades).toHaveLength(1);
    expect(t.logs.find((l) => l.code === 'PROXY_ERR_BAD_SIGNATURE')).toMatchObject({
      verdict: 'invalid',
      signedUrl: 'wss://edge.example.com/media-stream/abc',
    });
    expect(
      await metricValue(t.adminUrl, 'proxy_errors_total', { code: 'PROXY_ERR_BAD_SIGNATURE' }),
    ).toBe(1);
  });

  it('does not check test-agent upgrades', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ ...env(backend), TEST_AGENT_BACKENDS: backend.hostPort });
    const ws = await openWs(`${t.wsUrl}/test-agent/sess-1`);
    ws.close();
    await closed(ws);
  });
});
