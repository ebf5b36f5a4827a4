import type { EnvReader } from './config.js';
import { isLogLevel, type LogLevel } from './logger.js';

/**
 * One environment variable of a process, declared once: its name, how it is read (an `EnvReader`
 * method, so each kind of value has one problem wording everywhere), its default as the README's
 * table shows it, and that table's doc line. A process declares all of its variables in
 * one `defineEnv` table; `readEnv` reads them and `envTableRows` is what the README table must say.
 */
export interface EnvVar<T> {
  readonly name: string;
  /** The README's default cell: `` `8080` ``, or `—` for none, or words for a derived default. */
  readonly shown: string;
  /** The README's description cell (markdown). */
  readonly doc: string;
  /** Reads the value; `earlier` holds the values of the entries above this one in its table. */
  read(r: EnvReader, earlier: Readonly<Record<string, unknown>>): T;
}

export type EnvSchema = Readonly<Record<string, EnvVar<unknown>>>;

/** The values a table reads, by the table's keys (the config's field names). */
export type EnvValues<S extends EnvSchema> = {
  -readonly [K in keyof S]: S[K] extends EnvVar<infer T> ? T : never;
};

/** A default, or a default computed from the entries read before (e.g. a drain deadline). */
type Fallback<T> = T | ((earlier: Readonly<Record<string, unknown>>) => T);

interface Common {
  /** Overrides the README's default cell. Needed when the default is computed. */
  shown?: string;
}

function resolve<T>(fallback: Fallback<T>, earlier: Readonly<Record<string, unknown>>): T {
  return typeof fallback === 'function'
    ? (fallback as (e: Readonly<Record<string, unknown>>) => T)(earlier)
    : fallback;
}

function shownOf(fallback: unknown, options: Common): string {
  if (options.shown !== undefined) return options.shown;
  if (fallback === undefined) return '—';
  if (typeof fallback === 'function') {
    throw new Error('a computed default needs `shown`: the README cannot show a function');
  }
  return `\`${String(fallback)}\``;
}

function variable<T>(
  name: string,
  doc: string,
  shown: string,
  read: (r: EnvReader, earlier: Readonly<Record<string, unknown>>) => T,
): EnvVar<T> {
  if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new Error(`bad environment variable name "${name}"`);
  return { name, shown, doc, read };
}

/** Builders, one per `EnvReader` method, plus `logLevel` (the same in every process). */
export const env = {
  string(name: string, fallback: Fallback<string>, doc: string, options: Common = {}) {
    return variable(name, doc, shownOf(fallback, options), (r, e) =>
      r.string(name, resolve(fallback, e)),
    );
  },

  /**
   * A value with no default. `minLength` adds the secret check
   * (`NAME must be at least N characters`); `check` returns any other problem with the value.
   */
  optionalString(
    name: string,
    doc: string,
    options: Common & { minLength?: number; check?: (value: string) => string | undefined } = {},
  ) {
    return variable(name, doc, shownOf(undefined, options), (r) => {
      const v = r.optionalString(name);
      if (v === undefined) return v;
      const min = options.minLength;
      if (min !== undefined && v.length < min)
        r.problem(`${name} must be at least ${min} characters`);
      const problem = options.check?.(v);
      if (problem !== undefined) r.problem(problem);
      return v;
    });
  },

  int(
    name: string,
    fallback: Fallback<number>,
    range: { min?: number; max?: number },
    doc: string,
    options: Common = {},
  ) {
    return variable(name, doc, shownOf(fallback, options), (r, e) =>
      r.int(name, resolve(fallback, e), range),
    );
  },

  port(name: string, fallback: number, doc: string, options: Common = {}) {
    return variable(name, doc, shownOf(fallback, options), (r) => r.port(name, fallback));
  },

  bool(name: string, fallback: boolean, doc: string, options: Common = {}) {
    return variable(name, doc, shownOf(fallback, options), (r) => r.bool(name, fallback));
  },

  oneOf<const T extends string>(
    name: string,
    allowed: readonly T[],
    fallback: Fallback<T>,
    doc: string,
    options: Common = {},
  ) {
    return variable(name, doc, shownOf(fallback, options), (r, e) =>
      r.oneOf(name, allowed, resolve(fallback, e)),
    );
  },

  /** One of a few numbers (sample rates), read as `oneOf` of their decimal text. */
  numberOf<const T extends number>(
    name: string,
    allowed: readonly T[],
    fallback: T,
    doc: string,
    options: Common = {},
  ) {
    const texts = allowed.map((n) => String(n));
    return variable(
      name,
      doc,
      shownOf(fallback, options),
      (r) => Number(r.oneOf(name, texts, String(fallback))) as T,
    );
  },

  list(name: string, doc: string, options: Common = {}) {
    return variable(name, doc, shownOf(undefined, options), (r) => r.list(name));
  },

  /** `check` returns any other problem with a URL of the right protocol (e.g. a path). */
  optionalUrl(
    name: string,
    protocols: readonly string[],
    doc: string,
    options: Common & { check?: (url: URL) => string | undefined } = {},
  ) {
    return variable(name, doc, shownOf(undefined, options), (r) => {
      const url = r.optionalUrl(name, protocols);
      const problem = url === undefined ? undefined : options.check?.(url);
      if (problem !== undefined) r.problem(problem);
      return url;
    });
  },

  /** `LOG_LEVEL`, with the loaders' own problem text. */
  logLevel(doc = '`debug`, `info`, `warn`, `error`', options: Common = {}) {
    return variable('LOG_LEVEL', doc, shownOf('info', options), (r): LogLevel => {
      const text = r.string('LOG_LEVEL', 'info');
      if (isLogLevel(text)) return text;
      r.problem('LOG_LEVEL must be debug, info, warn or error');
      return 'info';
    });
  },
};

/** Checks a table once, where it is declared: every variable named once. */
export function defineEnv<const S extends EnvSchema>(schema: S): S {
  const seen = new Set<string>();
  for (const v of Object.values(schema)) {
    if (seen.has(v.name)) throw new Error(`environment variable ${v.name} is declared twice`);
    seen.add(v.name);
  }
  return schema;
}

/**
 * Reads every variable of `schema`, in table order, with `r`. Problems go to `r`: the caller adds
 * its cross-field checks (`r.problem(...)`) and calls `r.done()`.
 */
export function readEnv<S extends EnvSchema>(schema: S, r: EnvReader): EnvValues<S> {
  const values: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(schema)) values[key] = v.read(r, values);
  return values as EnvValues<S>;
}

export interface EnvTableRow {
  name: string;
  shown: string;
  doc: string;
}

/** What a process's README table must list, in order (the docs test compares both ways). */
export function envTableRows(schema: EnvSchema): EnvTableRow[] {
  return Object.values(schema).map(({ name, shown, doc }) => ({ name, shown, doc }));
}

/** The README table of a process, header included, one line per variable. */
export function envMarkdownTable(schema: EnvSchema): string {
  const lines = ['| variable | default | meaning |', '|---|---|---|'];
  for (const row of envTableRows(schema)) {
    lines.push(`| \`${row.name}\` | ${row.shown} | ${row.doc} |`);
  }
  return lines.join('\n');
}
