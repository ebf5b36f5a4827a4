import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TestAgentErrorCode } from './errors.js';

/** Session ids are 16 random bytes in base64url (22 characters); ids from elsewhere may be longer. */
const SESSION_ID = /^[A-Za-z0-9_-]{16,64}$/;
// `v1.<expiry in Unix seconds>.<HMAC-SHA256 in base64url>`; the version lets a later format
// coexist during a rollout.
const TOKEN = /^v1\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/;
const MAX_TOKEN_CHARS = 128;
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

export interface IssuedToken {
  token: string;
  /** When the token stops opening sockets (Unix milliseconds, a whole second). */
  expiresAtMs: number;
}

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
    const expiresAtSeconds = Math.ceil(this.#now() / 1000) + this.#ttlSeconds;
    const token = `v1.${expiresAtSeconds}.${this.#sign(sessionId, expiresAtSeconds).toString('base64url')}`;
    return { token, expiresAtMs: expiresAtSeconds * 1000 };
  }

  /** Checks `token` for `sessionId`; never throws. The signature is checked before the expiry. */
  verify(sessionId: string, token: string | undefined): TokenCheck {
    if (token === undefined || token === '') {
      return { ok: false, code: 'TEST_AGENT_ERR_TOKEN_MISSING', message: 'session token missing' };
    }
    const m = token.length <= MAX_TOKEN_CHARS ? TOKEN.exec(token) : null;
    if (!m) {
      return {
        ok: false,
        code: 'TEST_AGENT_ERR_TOKEN_MALFORMED',
        message: 'session token malformed',
      };
    }
    const expiresAtSeconds = Number(m[1]);
    const given = Buffer.from(m[2]!, 'base64url');
    const expected = this.#sign(sessionId, expiresAtSeconds);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return {
        ok: false,
        code: 'TEST_AGENT_ERR_TOKEN_INVALID',
        message: 'session token does not match this session',
      };
    }
    const expiresAtMs = expiresAtSeconds * 1000;
    if (this.#now() >= expiresAtMs) {
      return { ok: false, code: 'TEST_AGENT_ERR_TOKEN_EXPIRED', message: 'session token expired' };
    }
    return { ok: true, expiresAtMs };
  }

  #sign(sessionId: string, expiresAtSeconds: number): Buffer {
    return createHmac('sha256', this.#secret)
      .update(`callgate-test-agent.v1.${sessionId}.${expiresAtSeconds}`)
      .digest();
  }
}
