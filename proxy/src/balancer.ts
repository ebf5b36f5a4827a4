import { createHash } from 'node:crypto';

/** What the pick policies need to know about a backend. */
export interface Candidate {
  readonly id: string;
  /** Open tunnels plus connections being set up and requests in flight. */
  readonly active: number;
}

/**
 * Least-connections (HAProxy `leastconn`, the right policy for hour-long tunnels): the candidate
 * with the fewest active connections; ties broken at random so that a burst of new calls onto
 * equally loaded backends spreads instead of piling onto the first.
 */
export function leastTunnels<T extends Candidate>(
  candidates: readonly T[],
  random: () => number = Math.random,
): T | undefined {
  let best: T[] = [];
  let min = Infinity;
  for (const c of candidates) {
    if (c.active < min) {
      min = c.active;
      best = [c];
    } else if (c.active === min) {
      best.push(c);
    }
  }
  if (best.length <= 1) return best[0];
  return best[Math.min(best.length - 1, Math.floor(random() * best.length))];
}

/**
 * Rendezvous (highest-random-weight) hashing: every proxy replica that sees the same candidates
 * sends `key` to the same one, and removing a candidate only moves the keys that were on it.
 */
export function rendezvous<T extends Candidate>(
  key: string,
  candidates: readonly T[],
): T | undefined {
  let best: T | undefined;
  let bestScore = -1;
  for (const c of candidates) {
    const score = rendezvousScore(key, c.id);
    if (score > bestScore || (score === bestScore && best !== undefined && c.id < best.id)) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

/** A 48-bit score of (key, backend id); SHA-256 so it is the same on every machine and version. */
export function rendezvousScore(key: string, id: string): number {
  return createHash('sha256').update(id).update('\0').update(key).digest().readUIntBE(0, 6);
}
