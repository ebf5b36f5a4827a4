import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SignedToken } from '../src/index.js';

const SECRET = 'a-secret-of-the-signed-token-test';
const NOW = Date.UTC(2030, 0, 1, 12, 0, 0);
const WITH_NONCE = new SignedToken({ purpose: 'test-with-nonce', nonceBytes: 12 });
const PLAIN = new SignedToken({ purpose: 'test-plain', nonceBytes: 0 });

function macOf(input: string, secret: string | Uint8Array = SECRET): string {
  return createHmac('sha256', secret).update(input, 'utf8').digest('base64url');
}

describe('SignedToken', () => {
  it('without a nonce: v1.<expiry>.<MAC over purpose, version, subject, expiry>', () => {
    const { token, expiresAtMs } = PLAIN.sign({
      secret: SECRET,
      subject: 'S1',
      ttlSeconds: 60,
      nowMs: NOW,
    });
    const expiresAt = NOW / 1000 + 60;
    expect(expiresAtMs).toBe(expiresAt * 1000);
    expect(token).toBe(`v1.${expiresAt}.${macOf(`test-plain|v1|S1|${expiresAt}|`)}`);
  });

  it('with a nonce: v1.<expiry>.<nonce>.<MAC over purpose, version, subject, expiry, nonce>', () => {
    const { token } = WITH_NONCE.sign({
      secret: SECRET,
      subject: 'S1',
      ttlSeconds: 60,
      nowMs: NOW,
    });
    const [version, expiry, nonce, mac] = token.split('.') as [string, string, string, string];
    expect(version).toBe('v1');
    expect(expiry).toBe(String(NOW / 1000 + 60));
    expect(nonce).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(mac).toBe(macOf(`test-with-nonce|v1|S1|${expiry}|${nonce}`));
    const again = WITH_NONCE.sign({ secret: SECRET, subject: 'S1', ttlSeconds: 60, nowMs: NOW });
    expect(again.token).not.toBe(token);
  });

  it('rounds the expiry up to a whole second, so a token lives at least its ttl', () => {
    const { expiresAtMs } = PLAIN.sign({
      secret: SECRET,
      subject: 'S1',
      ttlSeconds: 60,
      nowMs: NOW + 1,
    });
    expect(expiresAtMs).toBe(NOW + 61_000);
  });

  it('treats a string secret as its UTF-8 bytes', () => {
    const { token } = PLAIN.sign({ secret: SECRET, subject: 'S1', ttlSeconds: 60, nowMs: NOW });
    expect(PLAIN.verify({ secret: Buffer.from(SECRET), subject: 'S1', token, nowMs: NOW })).toEqual(
      { ok: true, expiresAtMs: NOW + 60_000 },
    );
  });

  it('is valid until its expiry, then expired', () => {
    const { token, expiresAtMs } = WITH_NONCE.sign({
      secret: SECRET,
      subject: 'S1',
      ttlSeconds: 60,
      nowMs: NOW,
    });
    const at = (nowMs: number) =>
      WITH_NONCE.verify({ secret: SECRET, subject: 'S1', token, nowMs });
    expect(at(expiresAtMs - 1)).toEqual({ ok: true, expiresAtMs });
    expect(at(expiresAtMs)).toEqual({ ok: false, reason: 'expired' });
  });

  it('never lets a token of one purpose pass as another, even under the same secret', () => {
    const other = new SignedToken({ purpose: 'test-other', nonceBytes: 0 });
    const { token } = PLAIN.sign({ secret: SECRET, subject: 'S1', ttlSeconds: 60, nowMs: NOW });
    expect(other.verify({ secret: SECRET, subject: 'S1', token, nowMs: NOW })).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
    // A token of a kind with a nonce does not even have the shape of one without.
    const nonced = WITH_NONCE.sign({ secret: SECRET, subject: 'S1', ttlSeconds: 60, nowMs: NOW });
    expect(
      PLAIN.verify({ secret: SECRET, subject: 'S1', token: nonced.token, nowMs: NOW }),
    ).toEqual({ ok: false, reason: 'malformed' });
  });

  const { token } = PLAIN.sign({ secret: SECRET, subject: 'S1', ttlSeconds: 60, nowMs: NOW });
  const [, expiry, mac] = token.split('.') as [string, string, string];

  it.each([
    ['absent', undefined, 'missing'],
    ['empty', '', 'missing'],
    ['garbage', 'garbage', 'malformed'],
    ['of another version', `v2.${expiry}.${mac}`, 'malformed'],
    ['with a 13-digit expiry', `v1.1${'0'.repeat(12)}.${mac}`, 'malformed'],
    ['with a short MAC', `v1.${expiry}.${mac.slice(1)}`, 'malformed'],
    ['with a trailing dot', `${token}.`, 'malformed'],
    ['over-long', `${token}${'A'.repeat(200)}`, 'malformed'],
    ['for another subject', token, 'bad-signature', 'S2'],
    ['with a pushed-back expiry', `v1.${Number(expiry) + 3600}.${mac}`, 'bad-signature'],
  ])('refuses a token %s', (_name, given, reason, subject = 'S1') => {
    expect(PLAIN.verify({ secret: SECRET, subject, token: given, nowMs: NOW })).toEqual({
      ok: false,
      reason,
    });
  });

  it('checks the MAC before the expiry: a forged old token is a bad signature, not expired', () => {
    const late = NOW + 3_600_000;
    expect(PLAIN.verify({ secret: `${SECRET}!`, subject: 'S1', token, nowMs: late })).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
    expect(PLAIN.verify({ secret: SECRET, subject: 'S1', token, nowMs: late })).toEqual({
      ok: false,
      reason: 'expired',
    });
  });

  it.each([
    ['a purpose with a separator', { purpose: 'a|b', nonceBytes: 0 }],
    ['an empty purpose', { purpose: '', nonceBytes: 0 }],
    ['a nonce that would need padding', { purpose: 'p', nonceBytes: 4 }],
    ['a negative nonce', { purpose: 'p', nonceBytes: -3 }],
  ])('throws at construction for %s', (_name, kind) => {
    expect(() => new SignedToken(kind)).toThrow(TypeError);
  });

  it.each([0, 1.5, -1])('refuses to sign with a ttl of %s', (ttlSeconds) => {
    expect(() => PLAIN.sign({ secret: SECRET, subject: 'S1', ttlSeconds })).toThrow(TypeError);
  });
});
