import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestAgentError } from './errors.js';

/** The page's folder: `workers/test-agent/public`, next to both `src/` and `dist/`. */
export const DEFAULT_PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  // Module scripts and AudioWorklet modules are refused without a JavaScript MIME type.
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};
// Only plain lower-case names are served: no dot files, no sub-folders, nothing a URL could
// escape from.
const SERVABLE_NAME = /^[a-z0-9][a-z0-9._-]*$/;

// The page needs its own scripts, styles and worklets, a WebSocket and a fetch to its own origin,
// and the microphone; nothing else. 'self' covers ws:/wss: to the same host (CSP Level 3).
const PAGE_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'permissions-policy': 'microphone=(self), camera=()',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

interface StaticFile {
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

/**
 * The browser page and its assets, read into memory once at start. Requests are looked up by
 * exact file name in that table, never joined onto a filesystem path, so no request path can
 * reach a file outside the folder. Answers carry an ETag and `no-cache` (revalidate each time:
 * the names are not fingerprinted, and a stale worklet next to a new page would break audio).
 */
export class StaticFiles {
  readonly #dir: string;
  #files = new Map<string, StaticFile>();

  /** `dir` is read once by `load()`. */
  constructor(dir: string = DEFAULT_PUBLIC_DIR) {
    this.#dir = dir;
  }

  /** Reads the folder; rejects with TEST_AGENT_ERR_STATIC if it or `index.html` is missing. */
  async load(): Promise<void> {
    const files = new Map<string, StaticFile>();
    try {
      const entries = await readdir(this.#dir, { withFileTypes: true });
      for (const entry of entries) {
        const contentType = CONTENT_TYPES[extname(entry.name)];
        if (!entry.isFile() || !SERVABLE_NAME.test(entry.name) || !contentType) continue;
        const body = await readFile(join(this.#dir, entry.name));
        const hash = createHash('sha256').update(body).digest('base64url').slice(0, 22);
        files.set(entry.name, { body, contentType, etag: `"${hash}"` });
      }
    } catch (err) {
      throw new TestAgentError('TEST_AGENT_ERR_STATIC', `cannot read ${this.#dir}`, { cause: err });
    }
    if (!files.has('index.html')) {
      throw new TestAgentError('TEST_AGENT_ERR_STATIC', `${this.#dir} has no index.html`);
    }
    this.#files = files;
  }

  /** Names of the files served, for tests and the start-up log. */
  get names(): string[] {
    return [...this.#files.keys()].sort();
  }

  has(name: string): boolean {
    return this.#files.has(name);
  }

  /**
   * Answers GET/HEAD for `name` ('' is index.html). Returns false, writing nothing, when there is
   * no such file; the caller answers 404 (or 405 for other methods) in its own error format.
   */
  serve(req: IncomingMessage, res: ServerResponse, name: string): boolean {
    const file = this.#files.get(name === '' ? 'index.html' : name);
    if (!file) return false;
    const headers: Record<string, string | number> = {
      'content-type': file.contentType,
      'cache-control': 'no-cache',
      etag: file.etag,
      'x-content-type-options': 'nosniff',
      ...(file.contentType.startsWith('text/html') ? PAGE_HEADERS : {}),
    };
    if (etagMatches(req.headers['if-none-match'], file.etag)) {
      res.writeHead(304, headers);
      res.end();
      return true;
    }
    headers['content-length'] = file.body.byteLength;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : file.body);
    return true;
  }
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}
