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

describe('log throttling', () => {
  it('writes the first lines per call and source, then one summary per interval', async () => {
    const c = capture({ throttle: { lines: 3, intervalMs: 50 } });
    const logger = createLogger(c.options);
    const call = logger.child({ callSid: 'CA1' });
    for (let i = 0; i < 1000; i++) call.warn('bad message ignored', { code: 'X_BAD' });
    // Another call and another code are counted apart; info lines are never throttled.
    for (let i = 0; i < 4; i++) logger.child({ callSid: 'CA2' }).warn('bad message ignored');
    for (let i = 0; i < 10; i++) call.info('fine');
    expect(c.lines.filter((l) => l.callSid === 'CA1' && l.level === 'warn')).toHaveLength(3);
    expect(c.lines.filter((l) => l.callSid === 'CA2')).toHaveLength(3);
    expect(c.lines.filter((l) => l.msg === 'fine')).toHaveLength(10);
    await new Promise((resolve) => setTimeout(resolve, 120));
    const summaries = c.lines.filter((l) => l.msg === 'log lines suppressed');
    expect(summaries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          callSid: 'CA1',
          suppressed: 997,
          suppressedMsg: 'bad message ignored',
          suppressedCode: 'X_BAD',
        }),
        expect.objectContaining({ callSid: 'CA2', suppressed: 1 }),
      ]),
    );
    expect(summaries).toHaveLength(2);
    // A new interval writes again.
    call.warn('bad message ignored', { code: 'X_BAD' });
    expect(c.lines.at(-1)).toMatchObject({ msg: 'bad message ignored', callSid: 'CA1' });
  });

  it('keys lines by client address when there is no call', () => {
    const c = capture({ throttle: { lines: 2 } });
    const logger = createLogger(c.options);
    for (let i = 0; i < 50; i++) logger.warn('bad request', { client: '127.0.0.2', requestId: i });
    logger.warn('bad request', { client: '127.0.0.1' });
    expect(c.lines.map((l) => l.client)).toEqual(['127.0.0.2', '127.0.0.2', '127.0.0.1']);
  });

  it('can be turned off', () => {
    const c = capture({ throttle: false });
    const logger = createLogger(c.options);
    for (let i = 0; i < 20; i++) logger.warn('same');
    expect(c.lines).toHaveLength(20);
  });
});
