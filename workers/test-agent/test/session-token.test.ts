import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SessionTokens, createSessionId, isSessionId } from '../src/session-token.js';

const SECRET = Buffer.from('a-test-secret-of-32-characters!!');
const OTHER_SECRET = Buffer.from('another-secret-of-32-characters!');
const T0 = Date.UTC(2030, 0, 1, 12, 0, 0);
const ID = 'AAAAAAAAAAAAAAAAAAAAAA';
const OTHER_ID = 'BBBBBBBBBBBBBBBBBBBBBB';

function tokensAt(clock: { now: number }, secret = SECRET, ttlSeconds = 120): SessionTokens {
  return new SessionTokens({ secret, ttlSeconds, now: () => clock.now });
}

describe('createSessionId / isSessionId', () => {
  it('creates distinct 22-character base64url ids that pass the check', () => {
    const ids = new Set(Array.from({ length: 100 }, () => createSessionId()));
    expect(ids.size).toBe(100);
    for (const id of ids) {
      expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(isSessionId(id)).toBe(true);
    }
  });

  it.each([
    ['too short', 'abc'],
    ['the sessions endpoint', 'sessions'],
    ['a dot', 'AAAAAAAAAAAAAAAAAAAA.AAA'],
    ['a slash', 'AAAAAAAAAAAA/AAAAAAAAAA'],
    ['percent-encoding', 'AAAAAAAAAAAA%2FAAAAAAAA'],
    ['too long', 'A'.repeat(65)],
    ['empty', ''],
  ])('rejects %s', (_name, id) => {
    expect(isSessionId(id)).toBe(false);
  });
});

describe('SessionTokens', () => {
  it('issues a token that verifies for its session until it expires', () => {
    const clock = { now: T0 };
    const tokens = tokensAt(clock);
    const { token, expiresAtMs } = tokens.issue(ID);
    expect(token).toMatch(/^v1\.\d+\.[A-Za-z0-9_-]{43}$/);
    expect(expiresAtMs).toBe(T0 + 120_000);
    expect(tokens.verify(ID, token)).toEqual({ ok: true, expiresAtMs });
    clock.now = expiresAtMs - 1;
    expect(tokens.verify(ID, token).ok).toBe(true);
    clock.now = expiresAtMs;
    expect(tokens.verify(ID, token)).toMatchObject({
      ok: false,
      code: 'TEST_AGENT_ERR_TOKEN_EXPIRED',
    });
  });

  it('signs the session id under its own purpose, so it never passes as a call token', () => {
    const { token } = tokensAt({ now: T0 }).issue(ID);
    const [, expiry, mac] = token.split('.');
    const expected = createHmac('sha256', SECRET)
      .update(`callgate-session-token|v1|${ID}|${expiry}|`, 'utf8')
      .digest('base64url');
    expect(mac).toBe(expected);
  });

  it('verifies on another instance with the same secret (any worker can check)', () => {
    const clock = { now: T0 };
    const { token } = tokensAt(clock).issue(ID);
    expect(tokensAt(clock).verify(ID, token).ok).toBe(true);
  });

  const clock = { now: T0 };
  const issued = tokensAt(clock).issue(ID).token;
  const [, expiry, signature] = issued.split('.') as [string, string, string];
  const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1);

  it.each([
    ['no token', ID, undefined, 'TEST_AGENT_ERR_TOKEN_MISSING'],
    ['an empty token', ID, '', 'TEST_AGENT_ERR_TOKEN_MISSING'],
    ['garbage', ID, 'hello', 'TEST_AGENT_ERR_TOKEN_MALFORMED'],
    ['another version', ID, `v2.${expiry}.${signature}`, 'TEST_AGENT_ERR_TOKEN_MALFORMED'],
    [
      'a short signature',
      ID,
      `v1.${expiry}.${signature.slice(1)}`,
      'TEST_AGENT_ERR_TOKEN_MALFORMED',
    ],
    ['a non-numeric expiry', ID, `v1.x${expiry}.${signature}`, 'TEST_AGENT_ERR_TOKEN_MALFORMED'],
    ['an over-long token', ID, `${issued}${'A'.repeat(200)}`, 'TEST_AGENT_ERR_TOKEN_MALFORMED'],
    ['the token of another session', OTHER_ID, issued, 'TEST_AGENT_ERR_TOKEN_INVALID'],
    ['a changed signature', ID, `v1.${expiry}.${flipped}`, 'TEST_AGENT_ERR_TOKEN_INVALID'],
    [
      'a pushed-back expiry',
      ID,
      `v1.${Number(expiry) + 3600}.${signature}`,
      'TEST_AGENT_ERR_TOKEN_INVALID',
    ],
  ])('refuses %s', (_name, sessionId, token, code) => {
    expect(tokensAt({ now: T0 }).verify(sessionId, token)).toMatchObject({ ok: false, code });
  });

  it('refuses a token signed with another secret', () => {
    expect(tokensAt({ now: T0 }, OTHER_SECRET).verify(ID, issued)).toMatchObject({
      ok: false,
      code: 'TEST_AGENT_ERR_TOKEN_INVALID',
    });
  });

  it('checks the signature before the expiry, so a forged old token is not "expired"', () => {
    const late = tokensAt({ now: T0 + 3_600_000 });
    expect(late.verify(OTHER_ID, issued)).toMatchObject({ code: 'TEST_AGENT_ERR_TOKEN_INVALID' });
    expect(late.verify(ID, issued)).toMatchObject({ code: 'TEST_AGENT_ERR_TOKEN_EXPIRED' });
  });

  it.each([
    ['a short secret', { secret: Buffer.from('short'), ttlSeconds: 60 }],
    ['a zero ttl', { secret: SECRET, ttlSeconds: 0 }],
    ['a fractional ttl', { secret: SECRET, ttlSeconds: 1.5 }],
  ])('throws at construction for %s', (_name, options) => {
    expect(() => new SessionTokens(options)).toThrow(TypeError);
  });

  it('refuses to issue for something that is not a session id', () => {
    expect(() => tokensAt({ now: T0 }).issue('../x')).toThrow(TypeError);
  });
});
