import { SignedToken, type SignedTokenFailure, type SignedTokenResult } from '@callgate/runtime';

/**
 * Per-call stream tokens. The worker that answers the voice webhook puts one in the TwiML as
 * `<Parameter name="callToken">`; whichever worker receives the stream checks it on `start`.
 * Workers share only CALL_TOKEN_SECRET, so the token carries everything else, in the signed-token
 * format of @callgate/runtime with a nonce:
 *
 *   v1.<expiresAt unix seconds>.<nonce base64url>.<HMAC-SHA256 base64url>
 *
 * The MAC covers the CallSid, so a token minted for one call does not open another. It is not
 * one-time: Twilio may open a second stream for the same call with the same parameters (see
 * the second-stream policy in README.md), and nothing is shared between workers to remember use.
 */
const CALL_TOKEN = new SignedToken({ purpose: 'callgate-call-token', nonceBytes: 12 });

export interface SignCallTokenOptions {
  secret: string;
  callSid: string;
  ttlSeconds: number;
  /** Milliseconds since the epoch; defaults to Date.now(). */
  nowMs?: number;
}

export type CallTokenFailure = SignedTokenFailure;

export type CallTokenResult = SignedTokenResult;

export interface VerifyCallTokenOptions {
  secret: string;
  callSid: string;
  token: string | undefined;
  nowMs?: number;
}

/** Mints a token for `callSid`, valid for `ttlSeconds` (to connect; the call may last longer). */
export function signCallToken(options: SignCallTokenOptions): string {
  const { secret, callSid: subject, ttlSeconds, nowMs } = options;
  return CALL_TOKEN.sign({ secret, subject, ttlSeconds, nowMs }).token;
}

/**
 * Checks a token against the CallSid it must be bound to. The signature is checked (in constant
 * time) before the expiry, so a forged token never learns anything from the answer.
 */
export function verifyCallToken(options: VerifyCallTokenOptions): CallTokenResult {
  const { secret, callSid: subject, token, nowMs } = options;
  return CALL_TOKEN.verify({ secret, subject, token, nowMs });
}
