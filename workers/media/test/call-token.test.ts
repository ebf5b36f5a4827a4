import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signCallToken, verifyCallToken } from '../src/index.js';

const secret = 'shared-secret-of-every-media-worker';
const callSid = 'CA0123456789abcdef0123456789abcdef';
const now = Date.UTC(2026, 0, 1, 12, 0, 0);
const token = signCallToken({ secret, callSid, ttlSeconds: 600, nowMs: now });

/** Replaces one dot-separated part of the token. */
function withPart(index: number, value: string): string {
  const parts = token.split('.');
  parts[index] = value;
  return parts.join('.');
}

/** Flips one character of the MAC to another valid base64url character. */
function tamperedMac(): string {
  const parts = token.split('.');
  const mac = parts[3]!;
  parts[3] = (mac[0] === 'A' ? 'B' : 'A') + mac.slice(1);
  return parts.join('.');
}

describe('call tokens', () => {
  it('have the documented shape', () => {
    expect(token).toMatch(/^v1\.\d+\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/);
    expect(token.split('.')[1]).toBe(String(now / 1000 + 600));
  });

  it('keep the MAC input of earlier releases, so old and new workers accept each other during a rollout', () => {
    const [, expiresAt, nonce, mac] = token.split('.');
    const expected = createHmac('sha256', secret)
      .update(`callgate-call-token|v1|${callSid}|${expiresAt}|${nonce}`, 'utf8')
      .digest('base64url');
    expect(mac).toBe(expected);
  });

  it('differ for every call answered, even for the same CallSid', () => {
    expect(signCallToken({ secret, callSid, ttlSeconds: 600, nowMs: now })).not.toBe(token);
  });

  it.each([
    {
      name: 'valid at once',
      token,
      sid: callSid,
      at: now,
      result: { ok: true, expiresAtMs: now + 600_000 },
    },
    {
      name: 'valid just before expiry',
      token,
      sid: callSid,
      at: now + 599_999,
      result: { ok: true, expiresAtMs: now + 600_000 },
    },
    {
      name: 'expired at the expiry',
      token,
      sid: callSid,
      at: now + 600_000,
      result: { ok: false, reason: 'expired' },
    },
    {
      name: 'expired long after',
      token,
      sid: callSid,
      at: now + 86_400_000,
      result: { ok: false, reason: 'expired' },
    },
    {
      name: 'for another CallSid',
      token,
      sid: 'CA0123456789abcdef0123456789abcdee',
      at: now,
      result: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'with an extended expiry',
      token: withPart(1, String(now / 1000 + 6000)),
      sid: callSid,
      at: now,
      result: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'with another nonce',
      token: withPart(2, 'AAAAAAAAAAAAAAAA'),
      sid: callSid,
      at: now,
      result: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'with a tampered MAC',
      token: tamperedMac(),
      sid: callSid,
      at: now,
      result: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'of another version',
      token: withPart(0, 'v2'),
      sid: callSid,
      at: now,
      result: { ok: false, reason: 'malformed' },
    },
    {
      name: 'with a short MAC',
      token: token.slice(0, -1),
      sid: callSid,
      at: now,
      result: { ok: false, reason: 'malformed' },
    },
    {
      name: 'with a trailing dot',
      token: `${token}.`,
      sid: callSid,
      at: now,
      result: { ok: false, reason: 'malformed' },
    },
    {
      name: 'of garbage',
      token: 'garbage',
      sid: callSid,
      at: now,
      result: { ok: false, reason: 'malformed' },
    },
    { name: 'empty', token: '', sid: callSid, at: now, result: { ok: false, reason: 'missing' } },
    {
      name: 'absent',
      token: undefined,
      sid: callSid,
      at: now,
      result: { ok: false, reason: 'missing' },
    },
  ])('a token $name', ({ token: t, sid, at, result }) => {
    expect(verifyCallToken({ secret, callSid: sid, token: t, nowMs: at })).toEqual(result);
  });

  it('is rejected under another secret', () => {
    expect(verifyCallToken({ secret: `${secret}!`, callSid, token, nowMs: now })).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
  });
});
