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
  /** Where lines go; defaults to process.stdout. */
  stream?: { write(line: string): unknown };
  /** Fields on every line, e.g. `{ service: 'proxy' }`. */
  fields?: LogFields;
}

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
  const stream = options.stream ?? process.stdout;
  return makeLogger(minLevel, stream, options.fields ?? {});
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
): Logger {
  const write = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVELS[level] < minLevel) return;
    const line: LogFields = { time: new Date().toISOString(), level, msg, ...base };
    if (fields) for (const [k, v] of Object.entries(fields)) line[k] = serialize(v);
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
    child: (fields) => makeLogger(minLevel, stream, { ...base, ...fields }),
  };
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
