import { errorCode } from './errors.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{ callSid, streamSid }`). */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /**
   * Where lines go. Defaults to process.stdout, written in batches: the lines of one event-loop
   * turn go out in one write (see LineBatcher).
   */
  stream?: { write(line: string): unknown };
  /** Fields on every line, e.g. `{ service: 'proxy' }`. */
  fields?: LogFields;
  /**
   * Flood control for `warn` and `error` lines (on by default; `false` turns it off): per
   * message, code and source (the line's `callSid`, `sessionId`, `client` or `tunnelId`), the
   * first `lines` lines of each `intervalMs` are written, the rest are counted and summarised in
   * one `log lines suppressed` line (with `suppressed`, `suppressedMsg`, `suppressedCode`) when the
   * interval ends.
   */
  throttle?: Partial<LogThrottleOptions> | false;
}

export interface LogThrottleOptions {
  /** Lines written per key and interval before the rest are counted. Default 5. */
  lines: number;
  /** Default 10000. */
  intervalMs: number;
  /** Keys tracked at once; past it, lines are keyed by message and code only. Default 10000. */
  maxKeys: number;
}

export const DEFAULT_LOG_THROTTLE: Readonly<LogThrottleOptions> = {
  lines: 5,
  intervalMs: 10_000,
  maxKeys: 10_000,
};

/** The fields that say which call or client a line is about, in order of preference. */
const SOURCE_FIELDS = ['callSid', 'sessionId', 'client', 'tunnelId'] as const;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function isLogLevel(value: string): value is LogLevel {
  return value in LEVELS;
}

/**
 * A JSON-lines logger: one object per line with `time`, `level`, `msg` and the fields.
 * Error values in fields are written as `{ name, code, message }` (and `cause` when present) so
 * a line says what went wrong without a stack trace on every dropped call.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const minLevel = LEVELS[options.level ?? 'info'];
  const stream = options.stream ?? stdoutBatcher();
  const throttle =
    options.throttle === false
      ? undefined
      : new LogThrottle({ ...DEFAULT_LOG_THROTTLE, ...options.throttle }, stream);
  return makeLogger(minLevel, stream, options.fields ?? {}, throttle);
}

interface ThrottleEntry {
  written: number;
  suppressed: number;
  level: LogLevel;
  msg: string;
  code: unknown;
  fields: LogFields;
}

/**
 * Per key (level, msg, code, source), counts the lines of the current interval; one timer per
 * logger tree, unref'd and only while something is being counted, ends each interval and writes
 * one summary line per key that lost lines.
 */
class LogThrottle {
  readonly #o: LogThrottleOptions;
  readonly #stream: { write(line: string): unknown };
  #entries = new Map<string, ThrottleEntry>();
  #timer: NodeJS.Timeout | undefined;

  constructor(options: LogThrottleOptions, stream: { write(line: string): unknown }) {
    this.#o = options;
    this.#stream = stream;
  }

  /** True when the line may be written; false when it was counted instead. */
  admit(level: LogLevel, msg: string, base: LogFields, fields: LogFields | undefined): boolean {
    if (level !== 'warn' && level !== 'error') return true;
    const code = fields?.code ?? base.code;
    let source: unknown;
    for (const name of SOURCE_FIELDS) {
      source = fields?.[name] ?? base[name];
      if (source !== undefined) break;
    }
    let key = `${level}\u0000${msg}\u0000${String(code)}\u0000${String(source)}`;
    if (!this.#entries.has(key) && this.#entries.size >= this.#o.maxKeys) {
      key = `${level}\u0000${msg}\u0000${String(code)}\u0000*`;
    }
    let entry = this.#entries.get(key);
    if (!entry) {
      const where: LogFields = { ...base };
      for (const name of SOURCE_FIELDS) {
        const value = fields?.[name];
        if (value !== undefined) where[name] = value;
      }
      entry = { written: 0, suppressed: 0, level, msg, code, fields: where };
      this.#entries.set(key, entry);
      this.#timer ??= setInterval(() => this.#flush(), this.#o.intervalMs).unref();
    }
    if (entry.written < this.#o.lines) {
      entry.written++;
      return true;
    }
    entry.suppressed++;
    return false;
  }

  #flush(): void {
    const entries = this.#entries;
    this.#entries = new Map();
    for (const e of entries.values()) {
      if (e.suppressed === 0) continue;
      const line = {
        time: new Date().toISOString(),
        level: e.level,
        msg: 'log lines suppressed',
        ...e.fields,
        suppressed: e.suppressed,
        suppressedMsg: e.msg,
        suppressedCode: e.code,
        intervalMs: this.#o.intervalMs,
      };
      try {
        this.#stream.write(JSON.stringify(line) + '\n');
      } catch {
        // A broken stream loses the summary like any other line.
      }
    }
    if (this.#entries.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}

/**
 * Collects the lines written in one event-loop turn and hands them to the stream in one write, at
 * the end of the turn (or at once past 64 KiB). A busy proxy logs two lines per call it carries;
 * one write system call each cost as much as the rest of the upgrade's own work. Whatever is still
 * held when the process exits is written then (stdout is synchronous for files and pipes on Linux).
 */
export class LineBatcher {
  readonly #stream: { write(text: string): unknown };
  #lines: string[] = [];
  #bytes = 0;
  #scheduled = false;

  constructor(stream: { write(text: string): unknown }) {
    this.#stream = stream;
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#bytes += line.length;
    if (this.#bytes >= 65_536) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.#scheduled = false;
    if (this.#lines.length === 0) return;
    const text = this.#lines.length === 1 ? this.#lines[0]! : this.#lines.join('');
    this.#lines = [];
    this.#bytes = 0;
    this.#stream.write(text);
  }
}

let sharedStdout: LineBatcher | undefined;

/** One batcher for the process's stdout, flushed on exit. */
function stdoutBatcher(): LineBatcher {
  if (sharedStdout === undefined) {
    const batcher = new LineBatcher(process.stdout);
    process.once('exit', () => {
      try {
        batcher.flush();
      } catch {
        // A broken stdout loses the last lines like any other.
      }
    });
    sharedStdout = batcher;
  }
  return sharedStdout;
}

/** A logger that writes nothing, for tests and libraries used without one. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

function makeLogger(
  minLevel: number,
  stream: { write(line: string): unknown },
  base: LogFields,
  throttle: LogThrottle | undefined,
): Logger {
  const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVELS[level] < minLevel) return;
    if (throttle && !throttle.admit(level, msg, base, fields)) return;
    const line: LogFields = { time: isoNow(), level, msg, ...base };
    // for-in, not Object.entries: no array of pairs per line (a busy proxy writes two a call).
    if (fields) for (const k in fields) line[k] = serialize(fields[k]);
    let text: string;
    try {
      text = JSON.stringify(line);
    } catch {
      text = JSON.stringify({ time: line.time, level, msg, logError: 'unserializable fields' });
    }
    stream.write(text + '\n');
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
    child: (fields) => makeLogger(minLevel, stream, { ...base, ...fields }, throttle),
  };
}

let isoMs = -1;
let iso = '';
/** The time as ISO 8601, formatted once per millisecond (lines come in bursts: 0.5 µs each). */
function isoNow(): string {
  const ms = Date.now();
  if (ms !== isoMs) {
    isoMs = ms;
    iso = new Date(ms).toISOString();
  }
  return iso;
}

function serialize(value: unknown): unknown {
  if (value instanceof Error) {
    const out: LogFields = { name: value.name, code: errorCode(value, ''), message: value.message };
    if (out.code === '') delete out.code;
    if (value.cause !== undefined) out.cause = serialize(value.cause);
    return out;
  }
  if (typeof value === 'bigint') return value.toString();
  return value;
}
