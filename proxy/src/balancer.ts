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
 * The key is hashed once per pick and each candidate costs a few multiplications, so a pick over
 * a large pool stays cheap (a cryptographic hash per candidate cost ~1.6 µs each: 25 µs of every
 * upgrade's CPU with 16 workers).
 */
export function rendezvous<T extends Candidate>(
  key: string,
  candidates: readonly T[],
): T | undefined {
  const k1 = fnv1a(key, SEED_HIGH);
  const k2 = fnv1a(key, SEED_LOW);
  let best: T | undefined;
  let bestScore = -1;
  for (const c of candidates) {
    const score = combine(k1, k2, c.id);
    if (score > bestScore || (score === bestScore && best !== undefined && c.id < best.id)) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

/**
 * A 48-bit score of (key, backend id), the same on every machine and in every process: FNV-1a
 * of each string in two lanes (different seeds), mixed with murmur3's finalizer so that every
 * bit of either string moves every bit of the score. Not a cryptographic hash, and it need not
 * be: a caller who picks a key can choose its worker anyway by trying keys, and gains nothing.
 */
export function rendezvousScore(key: string, id: string): number {
  return combine(fnv1a(key, SEED_HIGH), fnv1a(key, SEED_LOW), id);
}

const SEED_HIGH = 0x811c9dc5; // FNV-1a's offset basis
const SEED_LOW = 0x5bd1e995;

function combine(k1: number, k2: number, id: string): number {
  const high = fmix32(k1 ^ fmix32(fnv1a(id, SEED_HIGH)));
  const low = fmix32(k2 ^ fmix32(fnv1a(id, SEED_LOW) + 0x9e3779b9)) >>> 16;
  return high * 0x10000 + low;
}

/** 32-bit FNV-1a over the UTF-16 code units of `s`. */
function fnv1a(s: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's 32-bit finalizer (avalanche). */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
