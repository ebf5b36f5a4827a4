import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Per-call stream tokens. The worker that answers the voice webhook puts one in the TwiML as
 * `<Parameter name="callToken">`; whichever worker receives the stream checks it on `start`.
 * Workers share only CALL_TOKEN_SECRET, so the token carries everything else:
 *
 *   v1.<expiresAt unix seconds>.<nonce base64url>.<HMAC-SHA256 base64url>
 *
 * The MAC covers the CallSid, so a token minted for one call does not open another. It is not
 * one-time: Twilio may open a second stream for the same call with the same parameters (see
 * the second-stream policy in README.md), and nothing is shared between workers to remember use.
 */

const VERSION = 'v1';
const TOKEN_RE = /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{43})$/;

export interface SignCallTokenOptions {
  secret: string;
  callSid: string;
  ttlSeconds: number;
  /** Milliseconds since the epoch; defaults to Date.now(). */
  nowMs?: number;
}

export type CallTokenFailure = 'missing' | 'malformed' | 'bad-signature' | 'expired';

export type CallTokenResult =
  { ok: true; expiresAtMs: number } | { ok: false; reason: CallTokenFailure };

export interface VerifyCallTokenOptions {
  secret: string;
  callSid: string;
  token: string | undefined;
  nowMs?: number;
}

/** Mints a token for `callSid`, valid for `ttlSeconds` (to connect; the call may last longer). */
export function signCallToken(options: SignCallTokenOptions): string {
  const nowMs = options.nowMs ?? Date.now();
  const expiresAt = Math.floor(nowMs / 1000) + options.ttlSeconds;
  const nonce = randomBytes(12).toString('base64url');
  return `${VERSION}.${expiresAt}.${nonce}.${mac(options.secret, options.callSid, expiresAt, nonce)}`;
}

/**
 * Checks a token against the CallSid it must be bound to. The signature is checked (in constant
 * time) before the expiry, so a forged token never learns anything from the answer.
 */
export function verifyCallToken(options: VerifyCallTokenOptions): CallTokenResult {
  const { token } = options;
  if (token === undefined || token === '') return { ok: false, reason: 'missing' };
  const m = TOKEN_RE.exec(token);
  if (!m) return { ok: false, reason: 'malformed' };
  const expiresAt = Number(m[1]);
  const nonce = m[2]!;
  const given = Buffer.from(m[3]!, 'base64url');
  const expected = Buffer.from(mac(options.secret, options.callSid, expiresAt, nonce), 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: 'bad-signature' };
  }
  const nowMs = options.nowMs ?? Date.now();
  if (nowMs >= expiresAt * 1000) return { ok: false, reason: 'expired' };
  return { ok: true, expiresAtMs: expiresAt * 1000 };
}

function mac(secret: string, callSid: string, expiresAt: number, nonce: string): string {
  // A domain prefix keeps this MAC from ever matching another use of the same secret.
  return createHmac('sha256', secret)
    .update(`callgate-call-token|${VERSION}|${callSid}|${expiresAt}|${nonce}`, 'utf8')
    .digest('base64url');
}
