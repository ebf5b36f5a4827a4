import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestAgentError } from './errors.js';

/** The page's folder: `workers/test-agent/public`, next to both `src/` and `dist/`. */
export const DEFAULT_PUBLIC_DIR = fileURLToPath(new URL('../public/', import.meta.url));

/**
 * Where the page finds @callgate/audio's built ES modules: `/test-agent/audio/<file>.js`, so the
 * worklets import the resampler the Call uses (`./audio/halfband.js`) instead of keeping their own.
 */
export const AUDIO_PREFIX = 'audio/';
/** The module the page imports; the modules it imports in turn are served with it. */
const AUDIO_ENTRY = 'halfband.js';
// A relative import of a sibling module, as tsc writes them: `from './kaiser.js'`.
const IMPORT = /^\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]/gm;

/** The folder of @callgate/audio's built modules (`packages/audio/dist`), as Node resolves it. */
export function defaultAudioDir(): string {
  return dirname(createRequire(import.meta.url).resolve('@callgate/audio'));
}

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
 * The browser page and its assets, read into memory once at start, with the @callgate/audio
 * modules its worklets import (under AUDIO_PREFIX). Requests are looked up by exact name in that
 * table, never joined onto a filesystem path, so no request path can reach any other file. Answers carry an ETag and `no-cache` (revalidate each time:
 * the names are not fingerprinted, and a stale worklet next to a new page would break audio).
 */
export class StaticFiles {
  readonly #dir: string;
  readonly #audioDir: string | undefined;
  #files = new Map<string, StaticFile>();

  /**
   * Both folders are read once by `load()`. `audioDir`: @callgate/audio's built modules; default
   * `defaultAudioDir()`.
   */
  constructor(dir: string = DEFAULT_PUBLIC_DIR, audioDir?: string) {
    this.#dir = dir;
    this.#audioDir = audioDir;
  }

  /**
   * Reads the page's folder and the audio modules; rejects with TEST_AGENT_ERR_STATIC if the
   * folder, its `index.html` or an audio module is missing, or an audio module imports anything
   * but a sibling module (a browser could not load it).
   */
  async load(): Promise<void> {
    const files = new Map<string, StaticFile>();
    try {
      const entries = await readdir(this.#dir, { withFileTypes: true });
      for (const entry of entries) {
        const contentType = CONTENT_TYPES[extname(entry.name)];
        if (!entry.isFile() || !SERVABLE_NAME.test(entry.name) || !contentType) continue;
        files.set(entry.name, file(await readFile(join(this.#dir, entry.name)), contentType));
      }
    } catch (err) {
      throw new TestAgentError('TEST_AGENT_ERR_STATIC', `cannot read ${this.#dir}`, { cause: err });
    }
    if (!files.has('index.html')) {
      throw new TestAgentError('TEST_AGENT_ERR_STATIC', `${this.#dir} has no index.html`);
    }
    await this.#loadAudio(files);
    this.#files = files;
  }

  /** Adds AUDIO_ENTRY and every module it imports, transitively, under AUDIO_PREFIX. */
  async #loadAudio(files: Map<string, StaticFile>): Promise<void> {
    let dir: string;
    try {
      dir = this.#audioDir ?? defaultAudioDir();
    } catch (err) {
      throw new TestAgentError('TEST_AGENT_ERR_STATIC', 'cannot find @callgate/audio (built?)', {
        cause: err,
      });
    }
    const pending = [AUDIO_ENTRY];
    for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
      if (files.has(AUDIO_PREFIX + name)) continue;
      let body: Buffer;
      try {
        body = await readFile(join(dir, name));
      } catch (err) {
        throw new TestAgentError('TEST_AGENT_ERR_STATIC', `cannot read ${join(dir, name)}`, {
          cause: err,
        });
      }
      files.set(AUDIO_PREFIX + name, file(body, CONTENT_TYPES['.js']!));
      for (const [, specifier] of body.toString('utf8').matchAll(IMPORT)) {
        const sibling = /^\.\/([a-z0-9][a-z0-9_-]*\.js)$/.exec(specifier!)?.[1];
        if (sibling === undefined) {
          throw new TestAgentError(
            'TEST_AGENT_ERR_STATIC',
            `${join(dir, name)} imports "${specifier}", which a browser cannot load`,
          );
        }
        pending.push(sibling);
      }
    }
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

function file(body: Buffer, contentType: string): StaticFile {
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 22);
  return { body, contentType, etag: `"${hash}"` };
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header
    .split(',')
    .map((t) => t.trim().replace(/^W\//, ''))
    .some((t) => t === etag || t === '*');
}
