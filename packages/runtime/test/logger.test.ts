import { describe, expect, it } from 'vitest';
import {
  CallgateError,
  createLogger,
  isLogLevel,
  silentLogger,
  type LogLevel,
  type LoggerOptions,
} from '../src/index.js';

function capture(options: Omit<LoggerOptions, 'stream'> = {}): {
  lines: Record<string, unknown>[];
  raw: string[];
  options: LoggerOptions;
} {
  const raw: string[] = [];
  const lines: Record<string, unknown>[] = [];
  return {
    raw,
    lines,
    options: {
      ...options,
      stream: {
        write(text: string) {
          raw.push(text);
          lines.push(JSON.parse(text) as Record<string, unknown>);
        },
      },
    },
  };
}

const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];

describe('createLogger', () => {
  it.each<[LogLevel, LogLevel[]]>([
    ['debug', ['debug', 'info', 'warn', 'error']],
    ['info', ['info', 'warn', 'error']],
    ['warn', ['warn', 'error']],
    ['error', ['error']],
  ])('at level %s writes %j', (level, written) => {
    const c = capture({ level });
    const logger = createLogger(c.options);
    for (const l of LEVELS) logger[l](`at ${l}`);
    expect(c.lines.map((l) => l.level)).toEqual(written);
  });

  it('defaults to info', () => {
    const c = capture();
    const logger = createLogger(c.options);
    logger.debug('hidden');
    logger.info('shown');
    expect(c.lines.map((l) => l.msg)).toEqual(['shown']);
  });

  it('writes one JSON object per line: time, level, msg, then base and call fields', () => {
    const c = capture({ fields: { service: 'media' } });
    createLogger(c.options).info('call started', { callSid: 'CA1', streamSid: 'MZ1' });
    expect(c.raw).toHaveLength(1);
    expect(c.raw[0]!.endsWith('\n')).toBe(true);
    expect(c.raw[0]!.trimEnd()).not.toContain('\n');
    expect(Object.keys(c.lines[0]!)).toEqual([
      'time',
      'level',
      'msg',
      'service',
      'callSid',
      'streamSid',
    ]);
    expect(new Date(c.lines[0]!.time as string).toISOString()).toBe(c.lines[0]!.time);
    expect(c.lines[0]).toMatchObject({ level: 'info', msg: 'call started', service: 'media' });
  });

  it('child() adds fields to every line and call fields win over them', () => {
    const c = capture({ fields: { service: 'media' } });
    const child = createLogger(c.options).child({ callSid: 'CA1', sessionId: 's1' });
    child.warn('late frame', { sessionId: 's2' });
    child.child({ tunnelId: 't1' }).error('gone');
    expect(c.lines[0]).toMatchObject({ service: 'media', callSid: 'CA1', sessionId: 's2' });
    expect(c.lines[1]).toMatchObject({
      service: 'media',
      callSid: 'CA1',
      sessionId: 's1',
      tunnelId: 't1',
    });
  });

  it.each<[string, unknown, unknown]>([
    [
      'a CallgateError',
      new CallgateError('PROXY_ERR_NO_BACKEND', 'no backend'),
      { name: 'CallgateError', code: 'PROXY_ERR_NO_BACKEND', message: 'no backend' },
    ],
    ['a plain Error (no code)', new TypeError('bad'), { name: 'TypeError', message: 'bad' }],
    [
      'an error with a cause',
      new Error('outer', { cause: Object.assign(new Error('inner'), { code: 'ECONNRESET' }) }),
      {
        name: 'Error',
        message: 'outer',
        cause: { name: 'Error', code: 'ECONNRESET', message: 'inner' },
      },
    ],
    ['a bigint', 12345678901234567890n, '12345678901234567890'],
    ['a plain value', { nested: [1, 'two'] }, { nested: [1, 'two'] }],
  ])('serializes %s', (_label, value, expected) => {
    const c = capture();
    createLogger(c.options).error('failed', { err: value });
    expect(c.lines[0]!.err).toEqual(expected);
  });

  it('writes a fallback line instead of throwing on unserializable fields', () => {
    const c = capture();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => createLogger(c.options).info('loop', { circular })).not.toThrow();
    expect(c.lines[0]).toMatchObject({
      level: 'info',
      msg: 'loop',
      logError: 'unserializable fields',
    });
  });
});

describe('silentLogger', () => {
  it('accepts every call, and its child is silent too', () => {
    for (const l of LEVELS) expect(() => silentLogger[l]('x', { a: 1 })).not.toThrow();
    expect(silentLogger.child({ a: 1 })).toBe(silentLogger);
  });
});

describe('isLogLevel', () => {
  it.each<[string, boolean]>([
    ['debug', true],
    ['info', true],
    ['warn', true],
    ['error', true],
    ['trace', false],
    ['INFO', false],
    ['', false],
  ])('%j → %s', (value, expected) => {
    expect(isLogLevel(value)).toBe(expected);
  });
});
