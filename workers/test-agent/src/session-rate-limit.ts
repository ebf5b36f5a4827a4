import type { IncomingMessage } from 'node:http';

/** Client buckets kept at once (each a few dozen bytes). */
const MAX_BUCKETS = 10_000;

/**
 * Session creations per client address: a token bucket of `ratePerMinute` tokens per client,
 * refilled over a minute. Full buckets carry no state and are forgotten first when the table is
 * at its bound.
 */
export class SessionRateLimit {
  readonly #ratePerMinute: number;
  /** Client address → its bucket. */
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(ratePerMinute: number) {
    if (!Number.isInteger(ratePerMinute) || ratePerMinute < 1) {
      throw new TypeError(`ratePerMinute must be a whole number >= 1, got ${ratePerMinute}`);
    }
    this.#ratePerMinute = ratePerMinute;
  }

  /** Takes one token from the client's bucket; returns 0, or the seconds until one is available. */
  take(client: string, now: number): number {
    const rate = this.#ratePerMinute;
    if (this.#buckets.size >= MAX_BUCKETS) this.#prune(now);
    const bucket = this.#buckets.get(client) ?? { tokens: rate, at: now };
    bucket.tokens = Math.min(rate, bucket.tokens + ((now - bucket.at) * rate) / 60_000);
    bucket.at = now;
    this.#buckets.set(client, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil(((1 - bucket.tokens) * 60) / rate));
  }

  /** Forgets buckets that have refilled; if that is not enough, the oldest. */
  #prune(now: number): void {
    const rate = this.#ratePerMinute;
    for (const [client, b] of this.#buckets) {
      if (b.tokens + ((now - b.at) * rate) / 60_000 >= rate) this.#buckets.delete(client);
    }
    for (const client of this.#buckets.keys()) {
      if (this.#buckets.size < MAX_BUCKETS) break;
      this.#buckets.delete(client);
    }
  }
}

/**
 * The client a request is from: the proxy overwrites X-Forwarded-For with the one address it
 * resolved (never appends), so its value is trusted here; without it, the socket peer.
 */
export function clientOf(req: IncomingMessage): string {
  const forwarded = req.headers['x-forwarded-for'];
  const value = Array.isArray(forwarded) ? forwarded[0] : forwarded;
  const first = value?.split(',')[0]?.trim();
  return first !== undefined && first !== '' ? first : (req.socket.remoteAddress ?? '');
}
