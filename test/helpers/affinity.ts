import { rendezvous } from '../../proxy/src/balancer.js';

/**
 * `count` CallSids that the proxy's rendezvous hash sends to `target` among `backends` (all `up`),
 * so an e2e test can place calls on the worker it needs whatever ports the workers got.
 */
export function callSidsFor(
  target: string,
  backends: readonly string[],
  count: number,
  /** Hex digits that keep the CallSids of different calls of one test apart. */
  tag = 'e',
): string[] {
  const candidates = backends.map((id) => ({ id, active: 0 }));
  if (!/^[0-9a-f]{1,8}$/.test(tag)) throw new Error(`tag must be hex: ${tag}`);
  const sids: string[] = [];
  for (let i = 0; sids.length < count; i++) {
    const sid = `CA${tag}${String(i).padStart(32 - tag.length, '0')}`;
    if (rendezvous(sid, candidates)?.id === target && !sids.includes(sid)) sids.push(sid);
  }
  return sids;
}
