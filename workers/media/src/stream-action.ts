import { macMatches, signedMac } from '@callgate/runtime';

/**
 * State of the `<Connect action>` loop for one call, carried in the action URL's own query string
 * (workers share nothing, and Twilio requests the action URL exactly as the TwiML wrote it):
 *
 *   ?r=<reconnects in a row>&at=<ms the stream was offered>[&sig=<HMAC-SHA256 base64url>]
 *
 * - `r`: streams offered by the action handler since the last stream that lasted at least
 *   STREAM_STABLE_MS (0 in the voice webhook's TwiML).
 * - `at`: Date.now() of the worker that offered the stream; the action request's time minus `at`
 *   is how long the stream lived (plus Twilio's connect time, a few hundred ms).
 * - `sig`: with CALL_TOKEN_SECRET, a MAC over the CallSid and both numbers, so a caller who learns
 *   the URL can neither reset the count nor reuse the state for another call. Without the secret
 *   the state is unsigned: with TWILIO_AUTH_TOKEN, Twilio's signature covers the whole URL
 *   (query included) instead; with neither, the state is trusted as it comes (development only).
 */

const STATE_RE = /^\d{1,6}$/;
const TIME_RE = /^\d{1,15}$/;
const SIG_RE = /^[A-Za-z0-9_-]{43}$/;

export interface StreamActionState {
  /** Reconnects offered in a row without a stable stream. */
  reconnects: number;
  /** When the stream this action ends was offered (ms since the epoch). */
  offeredAtMs: number;
}

export type StreamActionStateResult =
  | { ok: true; state: StreamActionState; signed: boolean }
  | { ok: false; reason: 'missing' | 'malformed' | 'bad-signature' | 'unsigned' };

/** The query string (without `?`) for an action URL. */
export function encodeStreamActionState(
  secret: string | undefined,
  callSid: string,
  state: StreamActionState,
): string {
  const q = new URLSearchParams({ r: String(state.reconnects), at: String(state.offeredAtMs) });
  if (secret !== undefined) q.set('sig', mac(secret, callSid, state).toString('base64url'));
  return q.toString();
}

/**
 * Reads the state back from the action request's query. With a secret the MAC is required and
 * checked in constant time; without one, a `sig` present is ignored (nothing to check it with).
 */
export function decodeStreamActionState(
  secret: string | undefined,
  callSid: string,
  query: URLSearchParams,
): StreamActionStateResult {
  const r = query.get('r');
  const at = query.get('at');
  if (r === null || at === null) return { ok: false, reason: 'missing' };
  if (!STATE_RE.test(r) || !TIME_RE.test(at)) return { ok: false, reason: 'malformed' };
  const state: StreamActionState = { reconnects: Number(r), offeredAtMs: Number(at) };
  if (secret === undefined) return { ok: true, state, signed: false };
  const sig = query.get('sig');
  if (sig === null) return { ok: false, reason: 'unsigned' };
  if (!SIG_RE.test(sig)) return { ok: false, reason: 'malformed' };
  if (!macMatches(sig, mac(secret, callSid, state))) {
    return { ok: false, reason: 'bad-signature' };
  }
  return { ok: true, state, signed: true };
}

export type StreamActionDecision =
  | { kind: 'reconnect'; reconnects: number; streamLastedMs: number; stable: boolean }
  | { kind: 'give-up'; reconnects: number; streamLastedMs: number };

/**
 * What to do for a call still in progress: offer another stream, or stop after `limit` offers in
 * a row whose streams each lived less than `stableMs`. A stream that lived `stableMs` or more
 * resets the count (a proxy restart an hour into a call is not a failure). `limit` 0 never offers.
 */
export function decideStreamAction(
  state: StreamActionState,
  nowMs: number,
  limit: number,
  stableMs: number,
): StreamActionDecision {
  const streamLastedMs = Math.max(0, nowMs - state.offeredAtMs);
  const stable = streamLastedMs >= stableMs;
  const before = stable ? 0 : state.reconnects;
  if (before >= limit) return { kind: 'give-up', reconnects: before, streamLastedMs };
  return { kind: 'reconnect', reconnects: before + 1, streamLastedMs, stable };
}

function mac(secret: string, callSid: string, state: StreamActionState): Buffer {
  return signedMac(secret, 'callgate-stream-action', [
    'v1',
    callSid,
    state.reconnects,
    state.offeredAtMs,
  ]);
}
