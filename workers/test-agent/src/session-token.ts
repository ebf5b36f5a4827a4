import { randomBytes } from 'node:crypto';
import { SignedToken, type IssuedSignedToken, type SignedTokenFailure } from '@callgate/runtime';
import type { TestAgentErrorCode } from './errors.js';

/** Session ids are 16 random bytes in base64url (22 characters); ids from elsewhere may be longer. */
const SESSION_ID = /^[A-Za-z0-9_-]{16,64}$/;
/**
 * `v1.<expiry in Unix seconds>.<HMAC-SHA256 in base64url>`: the signed-token format of
 * @callgate/runtime without a nonce (a session id is already random and used once). Its own
 * purpose keeps a session token from ever passing as a call token, whatever the secrets.
 */
const SESSION_TOKEN = new SignedToken({ purpose: 'callgate-session-token', nonceBytes: 0 });
/** Shorter secrets make the HMAC guessable; TEST_AGENT_SECRET is checked against this too. */
export const MIN_SECRET_BYTES = 16;

/** A new random session id. */
export function createSessionId(): string {
  return randomBytes(16).toString('base64url');
}

/** True for a string usable as a session id in `/test-agent/<sessionId>`. */
export function isSessionId(value: string): boolean {
  return SESSION_ID.test(value);
}

/** A session token and when it stops opening sockets (Unix milliseconds, a whole second). */
export type IssuedToken = IssuedSignedToken;

export type TokenCheck =
  { ok: true; expiresAtMs: number } | { ok: false; code: TestAgentErrorCode; message: string };

export interface SessionTokensOptions {
  /** Shared by every test-agent worker, so any of them can verify a token another issued. */
  secret: Uint8Array;
  /** How long a token may be used to open the session's socket. */
  ttlSeconds: number;
  /** Milliseconds clock; injectable for expiry tests. */
  now?: () => number;
}

/**
 * Issues and verifies session tokens: an expiry and an HMAC-SHA256 over the session id and that
 * expiry. Stateless, so any worker with the same secret verifies any worker's tokens, and a token
 * of one session never opens another.
 */
export class SessionTokens {
  readonly #secret: Uint8Array;
  readonly #ttlSeconds: number;
  readonly #now: () => number;

  constructor(options: SessionTokensOptions) {
    if (options.secret.byteLength < MIN_SECRET_BYTES) {
      throw new TypeError(`secret must be at least ${MIN_SECRET_BYTES} bytes`);
    }
    if (!Number.isInteger(options.ttlSeconds) || options.ttlSeconds < 1) {
      throw new TypeError(`ttlSeconds must be a whole number >= 1, got ${options.ttlSeconds}`);
    }
    this.#secret = options.secret;
    this.#ttlSeconds = options.ttlSeconds;
    this.#now = options.now ?? Date.now;
  }

  issue(sessionId: string): IssuedToken {
    if (!isSessionId(sessionId)) throw new TypeError(`not a session id: "${sessionId}"`);
    return SESSION_TOKEN.sign({
      secret: this.#secret,
      subject: sessionId,
      ttlSeconds: this.#ttlSeconds,
      nowMs: this.#now(),
    });
  }

  /** Checks `token` for `sessionId`; never throws. The signature is checked before the expiry. */
  verify(sessionId: string, token: string | undefined): TokenCheck {
    const verdict = SESSION_TOKEN.verify({
      secret: this.#secret,
      subject: sessionId,
      token,
      nowMs: this.#now(),
    });
    return verdict.ok ? verdict : { ok: false, ...REFUSALS[verdict.reason] };
  }
}

const REFUSALS: Record<SignedTokenFailure, { code: TestAgentErrorCode; message: string }> = {
  missing: { code: 'TEST_AGENT_ERR_TOKEN_MISSING', message: 'session token missing' },
  malformed: { code: 'TEST_AGENT_ERR_TOKEN_MALFORMED', message: 'session token malformed' },
  'bad-signature': {
    code: 'TEST_AGENT_ERR_TOKEN_INVALID',
    message: 'session token does not match this session',
  },
  expired: { code: 'TEST_AGENT_ERR_TOKEN_EXPIRED', message: 'session token expired' },
};
