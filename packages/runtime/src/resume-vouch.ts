import { macMatches, signedMac } from './signed-token.js';

/**
 * The proxy's word that an upgrade is a live call moving to this worker (a resumption), not a
 * new stream. When the proxy moves a call off a dead or draining media worker, it replays the
 * caller's original upgrade with one more header:
 *
 *   X-Callgate-Resume: v1.<issuedAtMs>.<attempt>.<mac>
 *
 * mac = base64url(HMAC-SHA256(CALL_TOKEN_SECRET,
 *         "callgate-resume|v1|<issuedAtMs>|<attempt>|<path>|<tunnelId>"))
 *
 * `path` is the request target the worker receives (`req.url`, query included) and `tunnelId` the
 * `X-Tunnel-Id` of the same request. Without CALL_TOKEN_SECRET the proxy sends `-` as the MAC
 * (unsigned). The proxy strips any X-Callgate-Resume a caller sends, and the MAC binds the vouch to
 * one path and tunnel for `maxAgeMs`, so a caller can neither forge nor replay one elsewhere.
 */

/** The header, lower-case as Node presents it in `req.headers`. */
export const RESUME_HEADER = 'x-callgate-resume';

const VERSION = 'v1';
const UNSIGNED = '-';
const DEFAULT_MAX_AGE_MS = 30_000;
// HMAC-SHA256 in base64url without padding is 43 characters.
const VOUCH_RE = /^v1\.(\d{1,16})\.(\d{1,9})\.(-|[A-Za-z0-9_-]{43})$/;

export interface SignResumeVouchOptions {
  /** CALL_TOKEN_SECRET; undefined gives an unsigned vouch (`-` as the MAC). */
  secret: string | undefined;
  /** Date.now() at the proxy. */
  issuedAtMs: number;
  /** 1 for the first move of this call, 2 for the next, ... */
  attempt: number;
  /** The request target the worker will receive (`req.url`: path and query). */
  path: string;
  /** The `X-Tunnel-Id` sent on the same request. */
  tunnelId: string;
}

export type ResumeVouchFailure = 'malformed' | 'bad-signature' | 'stale' | 'unsigned';

export type ResumeVouchResult =
  | { ok: true; attempt: number; issuedAtMs: number; signed: boolean }
  | { ok: false; reason: ResumeVouchFailure };

export interface VerifyResumeVouchOptions {
  /** CALL_TOKEN_SECRET; without one nothing can be checked and any well-formed vouch is ok. */
  secret: string | undefined;
  /** The X-Callgate-Resume header value. */
  header: string | undefined;
  /** `req.url` as the worker received it. */
  path: string;
  /** The request's `X-Tunnel-Id`; a signed vouch without one cannot verify. */
  tunnelId: string | undefined;
  /** Default Date.now(). */
  nowMs?: number;
  /** A vouch issued more than this before (or after: clock skew) `nowMs` is stale. Default 30000. */
  maxAgeMs?: number;
}

/** The header value for one resumption (the proxy side). */
export function signResumeVouch(options: SignResumeVouchOptions): string {
  const { secret, issuedAtMs, attempt, path, tunnelId } = options;
  if (!Number.isSafeInteger(issuedAtMs) || issuedAtMs < 0) {
    throw new RangeError(`issuedAtMs must be a non-negative integer, got ${issuedAtMs}`);
  }
  if (!Number.isSafeInteger(attempt) || attempt < 1 || attempt > 999_999_999) {
    throw new RangeError(`attempt must be an integer from 1, got ${attempt}`);
  }
  const tag =
    secret === undefined
      ? UNSIGNED
      : mac(secret, issuedAtMs, attempt, path, tunnelId).toString('base64url');
  return `${VERSION}.${issuedAtMs}.${attempt}.${tag}`;
}

/**
 * Checks a vouch (the worker side). The MAC is compared in constant time before the age is looked
 * at, so a forged vouch learns nothing from the answer. With a secret, an unsigned vouch is
 * refused ('unsigned'); without one, any well-formed vouch is ok with `signed: false` (the worker
 * checks no call tokens either then).
 */
export function verifyResumeVouch(options: VerifyResumeVouchOptions): ResumeVouchResult {
  const { secret, header } = options;
  if (header === undefined) return { ok: false, reason: 'malformed' };
  const m = VOUCH_RE.exec(header);
  if (!m) return { ok: false, reason: 'malformed' };
  const issuedAtMs = Number(m[1]);
  const attempt = Number(m[2]);
  const tag = m[3]!;
  if (!Number.isSafeInteger(issuedAtMs) || attempt < 1) return { ok: false, reason: 'malformed' };
  if (secret === undefined) return { ok: true, attempt, issuedAtMs, signed: false };
  if (tag === UNSIGNED) return { ok: false, reason: 'unsigned' };
  const tunnelId = options.tunnelId;
  if (tunnelId === undefined) return { ok: false, reason: 'bad-signature' };
  if (!macMatches(tag, mac(secret, issuedAtMs, attempt, options.path, tunnelId))) {
    return { ok: false, reason: 'bad-signature' };
  }
  const nowMs = options.nowMs ?? Date.now();
  const maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
  // Symmetric: a proxy whose clock runs ahead of this host's must not lose every call it moves.
  if (Math.abs(nowMs - issuedAtMs) > maxAgeMs) {
    return { ok: false, reason: 'stale' };
  }
  return { ok: true, attempt, issuedAtMs, signed: true };
}

function mac(
  secret: string,
  issuedAtMs: number,
  attempt: number,
  path: string,
  tunnelId: string,
): Buffer {
  return signedMac(secret, 'callgate-resume', [VERSION, issuedAtMs, attempt, path, tunnelId]);
}
