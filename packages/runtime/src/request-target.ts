import type { IncomingMessage } from 'node:http';

// URLs are parsed against a constant base, never the Host header: Host is attacker-controlled and
// a malformed one would make `new URL` throw or change what the path means.
const URL_BASE = 'http://worker.invalid';

/** The request target (`req.url`) as a URL, or undefined when it does not parse. */
export function parseRequestTarget(req: IncomingMessage): URL | undefined {
  try {
    return new URL(req.url ?? '/', URL_BASE);
  } catch {
    return undefined;
  }
}
