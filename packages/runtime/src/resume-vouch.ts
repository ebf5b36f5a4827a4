import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The proxy's word that an upgrade resumes a live call moved from another worker. Only the proxy
 * can say it: it strips this header from every caller, and signs it with CALL_TOKEN_SECRET, which
 * it shares with the media workers:
 *
 *   X-Callgate-Resume: v1.<issuedAtMs>.<attempt>.<base64url HMAC-SHA256 | "-">
 *
 * The MAC covers the request path and the tunnel id, so a vouch seen once opens nothing else.
 */
export const RESUME_HEADER = 'x-callgate-resume';

const VOUCH_RE = /^v1\.(\d{1,15})\.(\d{1,6})\.([A-Za-z0-9_-]{43}|-)$/;

export interface SignResumeVouchOptions {
  secret: string | undefined;
  issuedAtMs: number;
  attempt: number;
  path: string;
  tunnelId: string;
}

export type ResumeVouchResult =
  | { ok: true; attempt: number; issuedAtMs: number; signed: boolean }
  | { ok: false; reason: 'malformed' | 'bad-signature' | 'stale' | 'unsigned' };

export interface VerifyResumeVouchOptions {
  secret: string | undefined;
  header: string | undefined;
  path: string;
  tunnelId: string | undefined;
  nowMs?: number;
  /** How old (or how far ahead) a vouch may be; default 30 s. */
  maxAgeMs?: number;
}

export function signResumeVouch(o: SignResumeVouchOptions): string {
  const mac =
    o.secret === undefined ? '-' : vouchMac(o.secret, o.issuedAtMs, o.attempt, o.path, o.tunnelId);
  return `v1.${o.issuedAtMs}.${o.attempt}.${mac}`;
}

export function verifyResumeVouch(o: VerifyResumeVouchOptions): ResumeVouchResult {
  const m = VOUCH_RE.exec(o.header ?? '');
  if (!m || o.tunnelId === undefined) return { ok: false, reason: 'malformed' };
  const issuedAtMs = Number(m[1]);
  const attempt = Number(m[2]);
  const given = m[3]!;
  let signed = false;
  if (o.secret !== undefined) {
    if (given === '-') return { ok: false, reason: 'unsigned' };
    const expected = Buffer.from(
      vouchMac(o.secret, issuedAtMs, attempt, o.path, o.tunnelId),
      'base64url',
    );
    const actual = Buffer.from(given, 'base64url');
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      return { ok: false, reason: 'bad-signature' };
    }
    signed = true;
  }
  const age = (o.nowMs ?? Date.now()) - issuedAtMs;
  if (Math.abs(age) > (o.maxAgeMs ?? 30_000)) return { ok: false, reason: 'stale' };
  return { ok: true, attempt, issuedAtMs, signed };
}

function vouchMac(
  secret: string,
  issuedAtMs: number,
  attempt: number,
  path: string,
  tunnelId: string,
): string {
  // A domain prefix keeps this MAC from ever matching another use of the same secret.
  return createHmac('sha256', secret)
    .update(`callgate-resume|v1|${issuedAtMs}|${attempt}|${path}|${tunnelId}`, 'utf8')
    .digest('base64url');
}
