import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export type SignedTokenFailure = 'missing' | 'malformed' | 'bad-signature' | 'expired';

export type SignedTokenResult =
  { ok: true; expiresAtMs: number } | { ok: false; reason: SignedTokenFailure };

export interface SignedTokenKind {
  /** Goes first into the MAC; one per kind of token (`callgate-call-token`). */
  purpose: string;
  /** Random bytes carried in the token; 0 for none. A multiple of 3 keeps base64url unpadded. */
  nonceBytes: number;
}

export interface SignTokenOptions {
  /** The HMAC key (a string is used as its UTF-8 bytes). */
  secret: string | Uint8Array;
  subject: string;
  /** How long the token stays valid; whole seconds, at least 1. */
  ttlSeconds: number;
  /** Milliseconds since the epoch; defaults to Date.now(). */
  nowMs?: number | undefined;
}

export interface VerifyTokenOptions {
  secret: string | Uint8Array;
  /** The subject the token must be bound to. */
  subject: string;
  token: string | undefined;
  /** Milliseconds since the epoch; defaults to Date.now(). */
  nowMs?: number | undefined;
}

export interface IssuedSignedToken {
  token: string;
  /** When the token stops being valid (Unix milliseconds, a whole second). */
  expiresAtMs: number;
}

const VERSION = 'v1';

/**
 * The one MAC construction of callgate's signed values (tokens, the resume vouch, the
 * `<Connect action>` state): HMAC-SHA256 over `<purpose>|<field>|<field>...`, raw bytes. The
 * purpose comes first, so a MAC made for one use never verifies for another under the same secret;
 * callers pass fields that cannot contain `|` (digits, base64url, ids, paths) or come last.
 */
export function signedMac(
  secret: string | Uint8Array,
  purpose: string,
  fields: readonly (string | number)[],
): Buffer {
  return createHmac('sha256', secret)
    .update(`${purpose}|${fields.join('|')}`, 'utf8')
    .digest();
}

/** Whether `given` (base64url) is `expected`, compared in constant time. */
export function macMatches(given: string, expected: Buffer): boolean {
  const bytes = Buffer.from(given, 'base64url');
  return bytes.length === expected.length && timingSafeEqual(bytes, expected);
}
const MAC_CHARS = 43; // HMAC-SHA256 (32 bytes) in unpadded base64url
const MAX_EXPIRY_DIGITS = 12;

/**
 * One kind of signed token: the one format of the short-lived HMAC tokens workers hand out and
 * check later, possibly on another worker (media call tokens, test-agent session tokens). Workers
 * share only the secret, so the token carries everything else:
 *
 *   v1.<expiresAt, Unix seconds>[.<nonce, base64url>].<MAC, base64url>
 *   MAC = HMAC-SHA256(secret, "<purpose>|v1|<subject>|<expiresAt>|<nonce>")
 *
 * - `purpose` names the kind of token and comes first in every MAC, so a token of one kind never
 *   verifies as another, even when an operator gives both the same secret.
 * - `subject` binds the token to one thing (a CallSid, a session id): a token of one call or
 *   session does not open another. It is not in the token; the verifier knows it from elsewhere.
 *   Every other field is digits or base64url, so the `|`-joined MAC input parses one way only.
 * - The nonce (only for kinds that ask for one) makes two tokens for the same subject and second
 *   differ. Tokens are not one-time: nothing shared between workers remembers use.
 * - The version leads the token so a later format can be told apart during a rollout.
 */
export class SignedToken {
  readonly #purpose: string;
  readonly #nonceBytes: number;
  readonly #pattern: RegExp;
  readonly #maxChars: number;

  constructor(kind: SignedTokenKind) {
    if (!/^[a-z0-9-]+$/.test(kind.purpose)) {
      throw new TypeError(
        `purpose must be lower-case letters, digits and dashes: "${kind.purpose}"`,
      );
    }
    if (!Number.isInteger(kind.nonceBytes) || kind.nonceBytes < 0 || kind.nonceBytes % 3 !== 0) {
      throw new TypeError(`nonceBytes must be 0 or a multiple of 3, got ${kind.nonceBytes}`);
    }
    this.#purpose = kind.purpose;
    this.#nonceBytes = kind.nonceBytes;
    const nonceChars = (kind.nonceBytes / 3) * 4;
    const nonce = nonceChars === 0 ? '' : `([A-Za-z0-9_-]{${nonceChars}})\\.`;
    this.#pattern = new RegExp(
      `^${VERSION}\\.(\\d{1,${MAX_EXPIRY_DIGITS}})\\.${nonce}([A-Za-z0-9_-]{${MAC_CHARS}})$`,
    );
    this.#maxChars = VERSION.length + 1 + MAX_EXPIRY_DIGITS + 1 + nonceChars + 1 + MAC_CHARS;
  }

  /** A new token for `subject`. The expiry is rounded up to a whole second. */
  sign(options: SignTokenOptions): IssuedSignedToken {
    const { ttlSeconds } = options;
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
      throw new TypeError(`ttlSeconds must be a whole number >= 1, got ${ttlSeconds}`);
    }
    const expiresAt = Math.ceil((options.nowMs ?? Date.now()) / 1000) + ttlSeconds;
    const nonce = this.#nonceBytes === 0 ? '' : randomBytes(this.#nonceBytes).toString('base64url');
    const mac = this.#mac(options.secret, options.subject, expiresAt, nonce).toString('base64url');
    const token =
      nonce === '' ? `${VERSION}.${expiresAt}.${mac}` : `${VERSION}.${expiresAt}.${nonce}.${mac}`;
    return { token, expiresAtMs: expiresAt * 1000 };
  }

  /**
   * Checks `token` for `subject`; never throws. The MAC is compared in constant time before the
   * expiry is looked at, so a forged token learns nothing from the answer.
   */
  verify(options: VerifyTokenOptions): SignedTokenResult {
    const { token } = options;
    if (token === undefined || token === '') return { ok: false, reason: 'missing' };
    const m = token.length <= this.#maxChars ? this.#pattern.exec(token) : null;
    if (!m) return { ok: false, reason: 'malformed' };
    const expiresAt = Number(m[1]);
    const nonce = this.#nonceBytes === 0 ? '' : m[2]!;
    const expected = this.#mac(options.secret, options.subject, expiresAt, nonce);
    if (!macMatches(m[m.length - 1]!, expected)) {
      return { ok: false, reason: 'bad-signature' };
    }
    const expiresAtMs = expiresAt * 1000;
    if ((options.nowMs ?? Date.now()) >= expiresAtMs) return { ok: false, reason: 'expired' };
    return { ok: true, expiresAtMs };
  }

  #mac(secret: string | Uint8Array, subject: string, expiresAt: number, nonce: string): Buffer {
    return signedMac(secret, this.#purpose, [VERSION, subject, expiresAt, nonce]);
  }
}
