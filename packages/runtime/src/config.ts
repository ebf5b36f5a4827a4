import { ConfigError } from './errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** The marker the deployment examples put where a real value must go (any case). */
export const PLACEHOLDER = /(?:^|[^a-z0-9])change-?me(?:[^a-z0-9]|$)/i;

/**
 * Reads typed values from an environment and collects every problem, so a bad deployment gets
 * one error listing all of them. Call `done()` after the last read: it throws a `ConfigError`
 * (`CONFIG_ERR_INVALID`) if anything was wrong.
 */
export class EnvReader {
  readonly #env: Env;
  readonly #problems: string[] = [];

  constructor(env: Env) {
    this.#env = env;
  }

  #raw(name: string): string | undefined {
    const v = this.#env[name];
    if (v === undefined || v.trim() === '') return undefined;
    // The deployment examples ship CHANGE-ME placeholders: a forgotten edit must not start.
    if (PLACEHOLDER.test(v)) {
      this.#problems.push(`${name} still holds the placeholder "CHANGE-ME": set a real value`);
    }
    return v.trim();
  }

  /** Adds a problem found by the caller (cross-field checks). */
  problem(message: string): void {
    this.#problems.push(message);
  }

  string(name: string, fallback: string): string {
    return this.#raw(name) ?? fallback;
  }

  optionalString(name: string): string | undefined {
    return this.#raw(name);
  }

  int(name: string, fallback: number, range: { min?: number; max?: number } = {}): number {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    if (!/^-?\d+$/.test(raw)) {
      this.#problems.push(`${name} must be a whole number, got "${raw}"`);
      return fallback;
    }
    const n = Number(raw);
    const { min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER } = range;
    if (n < min || n > max) {
      this.#problems.push(`${name} must be between ${min} and ${max}, got ${n}`);
      return fallback;
    }
    return n;
  }

  port(name: string, fallback: number): number {
    return this.int(name, fallback, { min: 0, max: 65535 });
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    const v = raw.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    this.#problems.push(`${name} must be true or false, got "${raw}"`);
    return fallback;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const raw = this.#raw(name);
    if (raw === undefined) return fallback;
    if ((allowed as readonly string[]).includes(raw)) return raw as T;
    this.#problems.push(`${name} must be one of ${allowed.join(', ')}, got "${raw}"`);
    return fallback;
  }

  /** A comma-separated list; empty items are dropped. */
  list(name: string, fallback: readonly string[] = []): string[] {
    const raw = this.#raw(name);
    if (raw === undefined) return [...fallback];
    return raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  }

  /** An absolute URL whose protocol is one of `protocols` (e.g. `['https:', 'wss:']`). */
  optionalUrl(name: string, protocols: readonly string[]): URL | undefined {
    const raw = this.#raw(name);
    if (raw === undefined) return undefined;
    try {
      const url = new URL(raw);
      if (!protocols.includes(url.protocol)) {
        this.#problems.push(`${name} must use ${protocols.join(' or ')}, got "${url.protocol}"`);
        return undefined;
      }
      return url;
    } catch {
      this.#problems.push(`${name} must be an absolute URL, got "${raw}"`);
      return undefined;
    }
  }

  /** Throws `ConfigError` listing every problem, if there were any. */
  done(): void {
    if (this.#problems.length > 0) throw new ConfigError(this.#problems);
  }
}

/** Parses `host:port` (IPv6 as `[::1]:port`). Returns undefined when malformed. */
export function parseHostPort(value: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value.trim());
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return undefined;
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  return { host, port };
}

/** Recursively freezes a plain config object. */
export function deepFreeze<T>(value: T): Readonly<T> {
  if (value && typeof value === 'object' && !(value instanceof URL)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Logs a configuration failure as one line that lists every problem (`CONFIG_ERR_INVALID`), for a
 * process that has bound nothing yet. The caller exits.
 */
export function logConfigError(
  logger: { error(msg: string, fields?: Record<string, unknown>): void },
  err: unknown,
): void {
  logger.error('invalid configuration', {
    code: err instanceof ConfigError ? err.code : 'CONFIG_ERR_INVALID',
    problems: err instanceof ConfigError ? err.problems : undefined,
    err,
  });
}
