import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  RESUME_HEADER,
  signResumeVouch,
  verifyResumeVouch,
  type ResumeVouchResult,
} from '../src/index.js';

const SECRET = 'resume-test-secret';
const NOW = 1_700_000_000_000;
const PATH = '/media-stream/CA00000000000000000000000000000001?x=1';
const TUNNEL = '3f0c6a52-6f8e-4d4b-9b7a-1c2d3e4f5a6b';

const signed = (over: Partial<Parameters<typeof signResumeVouch>[0]> = {}): string =>
  signResumeVouch({
    secret: SECRET,
    issuedAtMs: NOW,
    attempt: 1,
    path: PATH,
    tunnelId: TUNNEL,
    ...over,
  });

describe('resume vouch', () => {
  it('is the lower-case header name Node presents', () => {
    expect(RESUME_HEADER).toBe('x-callgate-resume');
  });

  it('has the contract format and MAC (domain-separated HMAC-SHA256, base64url)', () => {
    const mac = createHmac('sha256', SECRET)
      .update(`callgate-resume|v1|${NOW}|2|${PATH}|${TUNNEL}`)
      .digest('base64url');
    expect(signed({ attempt: 2 })).toBe(`v1.${NOW}.2.${mac}`);
    expect(signed({ secret: undefined, attempt: 3 })).toBe(`v1.${NOW}.3.-`);
  });

  it('refuses to sign nonsense', () => {
    expect(() => signed({ attempt: 0 })).toThrow(RangeError);
    expect(() => signed({ attempt: 1.5 })).toThrow(RangeError);
    expect(() => signed({ issuedAtMs: -1 })).toThrow(RangeError);
  });

  const other = signed({ tunnelId: 'another-tunnel' });
  const cases: Array<{
    name: string;
    secret: string | undefined;
    header: string | undefined;
    path?: string;
    tunnelId?: string | undefined;
    nowMs?: number;
    maxAgeMs?: number;
    want: ResumeVouchResult;
  }> = [
    {
      name: 'a fresh signed vouch',
      secret: SECRET,
      header: signed({ attempt: 4 }),
      want: { ok: true, attempt: 4, issuedAtMs: NOW, signed: true },
    },
    {
      name: 'a signed vouch 29.9 s old',
      secret: SECRET,
      header: signed(),
      nowMs: NOW + 29_900,
      want: { ok: true, attempt: 1, issuedAtMs: NOW, signed: true },
    },
    {
      name: 'a signed vouch 30.1 s old',
      secret: SECRET,
      header: signed(),
      nowMs: NOW + 30_100,
      want: { ok: false, reason: 'stale' },
    },
    {
      name: 'a custom maxAgeMs',
      secret: SECRET,
      header: signed(),
      nowMs: NOW + 2_000,
      maxAgeMs: 1_000,
      want: { ok: false, reason: 'stale' },
    },
    {
      name: 'a vouch issued a little in the future (clock skew)',
      secret: SECRET,
      header: signed({ issuedAtMs: NOW + 3_000 }),
      want: { ok: true, attempt: 1, issuedAtMs: NOW + 3_000, signed: true },
    },
    {
      name: 'a vouch from far in the future',
      secret: SECRET,
      header: signed({ issuedAtMs: NOW + 60_000 }),
      want: { ok: false, reason: 'stale' },
    },
    {
      name: 'a stale and forged vouch: the signature is checked first',
      secret: SECRET,
      header: signed({ secret: 'wrong' }),
      nowMs: NOW + 3_600_000,
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'another secret',
      secret: SECRET,
      header: signed({ secret: 'wrong' }),
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'another path',
      secret: SECRET,
      header: signed(),
      path: '/media-stream/CA00000000000000000000000000000002?x=1',
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'another query',
      secret: SECRET,
      header: signed(),
      path: '/media-stream/CA00000000000000000000000000000001',
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'another tunnel',
      secret: SECRET,
      header: other,
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'no X-Tunnel-Id',
      secret: SECRET,
      header: signed(),
      tunnelId: undefined,
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'a raised attempt number',
      secret: SECRET,
      header: signed().replace(`.${NOW}.1.`, `.${NOW}.2.`),
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'a renewed issuedAtMs',
      secret: SECRET,
      header: signed().replace(`.${NOW}.`, `.${NOW + 1}.`),
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'a MAC of the right length with one character changed',
      secret: SECRET,
      header: ((v) => v.slice(0, -2) + (v.at(-2) === 'A' ? 'B' : 'A') + v.at(-1))(signed()),
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'a call-token-style MAC over the same fields (domain separation)',
      secret: SECRET,
      header: `v1.${NOW}.1.${createHmac('sha256', SECRET)
        .update(`callgate-call-token|v1|${NOW}|1|${PATH}|${TUNNEL}`)
        .digest('base64url')}`,
      want: { ok: false, reason: 'bad-signature' },
    },
    {
      name: 'an unsigned vouch while a secret is set',
      secret: SECRET,
      header: signed({ secret: undefined }),
      want: { ok: false, reason: 'unsigned' },
    },
    {
      name: 'an unsigned vouch without a secret',
      secret: undefined,
      header: signed({ secret: undefined, attempt: 2 }),
      want: { ok: true, attempt: 2, issuedAtMs: NOW, signed: false },
    },
    {
      name: 'a signed vouch without a secret (cannot be checked)',
      secret: undefined,
      header: signed(),
      want: { ok: true, attempt: 1, issuedAtMs: NOW, signed: false },
    },
    {
      name: 'no header',
      secret: SECRET,
      header: undefined,
      want: { ok: false, reason: 'malformed' },
    },
    { name: 'empty', secret: SECRET, header: '', want: { ok: false, reason: 'malformed' } },
    {
      name: 'another version',
      secret: SECRET,
      header: signed().replace(/^v1/, 'v2'),
      want: { ok: false, reason: 'malformed' },
    },
    {
      name: 'attempt 0',
      secret: undefined,
      header: `v1.${NOW}.0.-`,
      want: { ok: false, reason: 'malformed' },
    },
    {
      name: 'a negative time',
      secret: undefined,
      header: `v1.-5.1.-`,
      want: { ok: false, reason: 'malformed' },
    },
    {
      name: 'a short MAC',
      secret: SECRET,
      header: `v1.${NOW}.1.abc`,
      want: { ok: false, reason: 'malformed' },
    },
    {
      name: 'trailing garbage',
      secret: SECRET,
      header: `${signed()} `,
      want: { ok: false, reason: 'malformed' },
    },
    {
      name: 'a base64 (not base64url) MAC',
      secret: SECRET,
      header: `v1.${NOW}.1.${'+'.repeat(43)}`,
      want: { ok: false, reason: 'malformed' },
    },
    {
      name: 'too many fields',
      secret: undefined,
      header: `v1.${NOW}.1.2.-`,
      want: { ok: false, reason: 'malformed' },
    },
  ];

  it.each(cases)('$name', (c) => {
    const result = verifyResumeVouch({
      secret: c.secret,
      header: c.header,
      path: c.path ?? PATH,
      tunnelId: 'tunnelId' in c ? c.tunnelId : TUNNEL,
      nowMs: c.nowMs ?? NOW,
      ...(c.maxAgeMs === undefined ? {} : { maxAgeMs: c.maxAgeMs }),
    });
    expect(result).toEqual(c.want);
  });

  it('uses Date.now() when nowMs is not given', () => {
    const header = signed({ issuedAtMs: Date.now() });
    expect(
      verifyResumeVouch({ secret: SECRET, header, path: PATH, tunnelId: TUNNEL }),
    ).toMatchObject({ ok: true, signed: true });
  });
});
