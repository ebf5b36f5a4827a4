import { describe, expect, it } from 'vitest';
import { ConfigError, EnvReader, deepFreeze, parseHostPort, type Env } from '../src/index.js';

/** Runs `read` against `env` and returns its value and the problems done() reports. */
function read<T>(env: Env, fn: (r: EnvReader) => T): { value: T; problems: readonly string[] } {
  const reader = new EnvReader(env);
  const value = fn(reader);
  try {
    reader.done();
    return { value, problems: [] };
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return { value, problems: (err as ConfigError).problems };
  }
}

describe('EnvReader', () => {
  it.each([
    ['CHANGE-ME'],
    ['https://CHANGE-ME.example.com'],
    ['change-me-to-64-hex-chars'],
    ['changeme'],
  ])('refuses the deployment placeholder in %j', (value) => {
    const { problems } = read({ SECRET: value }, (r) => r.optionalString('SECRET'));
    expect(problems).toEqual(['SECRET still holds the placeholder "CHANGE-ME": set a real value']);
  });

  it('does not mistake words that contain the letters for the placeholder', () => {
    expect(read({ NAME: 'exchangemedia' }, (r) => r.string('NAME', 'x')).problems).toEqual([]);
  });

  it.each<[Env, string]>([
    [{}, 'fallback'],
    [{ NAME: '' }, 'fallback'],
    [{ NAME: '   ' }, 'fallback'],
    [{ NAME: ' media ' }, 'media'],
  ])('string(%j) → %j', (env, expected) => {
    expect(read(env, (r) => r.string('NAME', 'fallback'))).toEqual({
      value: expected,
      problems: [],
    });
  });

  it.each<[Env, string | undefined]>([
    [{}, undefined],
    [{ TOKEN: ' ' }, undefined],
    [{ TOKEN: 'abc' }, 'abc'],
  ])('optionalString(%j) → %j', (env, expected) => {
    expect(read(env, (r) => r.optionalString('TOKEN')).value).toBe(expected);
  });

  it.each<[string | undefined, { min?: number; max?: number }, number, string | undefined]>([
    [undefined, {}, 7, undefined],
    ['42', {}, 42, undefined],
    ['-3', {}, -3, undefined],
    ['  9 ', {}, 9, undefined],
    ['1.5', {}, 7, 'N must be a whole number, got "1.5"'],
    ['ten', {}, 7, 'N must be a whole number, got "ten"'],
    ['1e3', {}, 7, 'N must be a whole number, got "1e3"'],
    ['0', { min: 1 }, 7, 'N must be between 1 and 9007199254740991, got 0'],
    ['11', { min: 1, max: 10 }, 7, 'N must be between 1 and 10, got 11'],
    ['10', { min: 1, max: 10 }, 10, undefined],
  ])('int(%j, %j)', (raw, range, expected, problem) => {
    const result = read({ N: raw }, (r) => r.int('N', 7, range));
    expect(result.value).toBe(expected);
    expect(result.problems).toEqual(problem ? [problem] : []);
  });

  it.each<[string | undefined, number, boolean]>([
    [undefined, 8080, true],
    ['0', 0, true],
    ['65535', 65535, true],
    ['65536', 8080, false],
    ['-1', 8080, false],
    ['http', 8080, false],
  ])('port(%j) → %d', (raw, expected, ok) => {
    const result = read({ PORT: raw }, (r) => r.port('PORT', 8080));
    expect(result.value).toBe(expected);
    expect(result.problems).toHaveLength(ok ? 0 : 1);
  });

  it.each<[string | undefined, boolean, boolean]>([
    [undefined, false, true],
    ['1', true, true],
    ['true', true, true],
    ['YES', true, true],
    ['on', true, true],
    ['0', false, true],
    ['False', false, true],
    ['no', false, true],
    ['off', false, true],
    ['maybe', false, false],
  ])('bool(%j) → %s', (raw, expected, ok) => {
    const result = read({ FLAG: raw }, (r) => r.bool('FLAG', false));
    expect(result.value).toBe(expected);
    expect(result.problems).toEqual(ok ? [] : [`FLAG must be true or false, got "${raw}"`]);
  });

  it.each<[string | undefined, string, boolean]>([
    [undefined, 'info', true],
    ['debug', 'debug', true],
    ['loud', 'info', false],
    ['DEBUG', 'info', false],
  ])('oneOf(%j) → %s', (raw, expected, ok) => {
    const result = read({ LEVEL: raw }, (r) =>
      r.oneOf('LEVEL', ['debug', 'info'] as const, 'info'),
    );
    expect(result.value).toBe(expected);
    expect(result.problems).toEqual(ok ? [] : [`LEVEL must be one of debug, info, got "${raw}"`]);
  });

  it.each<[string | undefined, string[]]>([
    [undefined, ['a']],
    ['x', ['x']],
    [' x , y ,, z ', ['x', 'y', 'z']],
    [',', []],
  ])('list(%j) → %j', (raw, expected) => {
    expect(read({ L: raw }, (r) => r.list('L', ['a'])).value).toEqual(expected);
  });

  it.each<[string | undefined, string | undefined, string | undefined]>([
    [undefined, undefined, undefined],
    ['wss://edge.example/media', 'wss://edge.example/media', undefined],
    ['http://edge.example', undefined, 'U must use https: or wss:, got "http:"'],
    ['not a url', undefined, 'U must be an absolute URL, got "not a url"'],
  ])('optionalUrl(%j)', (raw, href, problem) => {
    const result = read({ U: raw }, (r) => r.optionalUrl('U', ['https:', 'wss:']));
    expect(result.value?.href).toBe(href);
    expect(result.problems).toEqual(problem ? [problem] : []);
  });

  it('reports every problem at once in one CONFIG_ERR_INVALID, including problem()', () => {
    const reader = new EnvReader({ PORT: 'x', FLAG: 'maybe' });
    reader.port('PORT', 1);
    reader.bool('FLAG', true);
    reader.problem('TLS_CERT requires TLS_KEY');
    let caught: unknown;
    try {
      reader.done();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const err = caught as ConfigError;
    expect(err.code).toBe('CONFIG_ERR_INVALID');
    expect(err.problems).toHaveLength(3);
    expect(err.message).toContain('TLS_CERT requires TLS_KEY');
    expect(err.message).toContain('PORT must be a whole number');
  });

  it('done() is silent when everything is valid', () => {
    const reader = new EnvReader({ PORT: '80' });
    reader.port('PORT', 1);
    expect(() => reader.done()).not.toThrow();
  });
});

describe('parseHostPort', () => {
  it.each<[string, { host: string; port: number } | undefined]>([
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    ['media-1.internal:9000', { host: 'media-1.internal', port: 9000 }],
    [' worker:1 ', { host: 'worker', port: 1 }],
    ['[::1]:443', { host: '::1', port: 443 }],
    ['worker:0', undefined],
    ['worker:65536', undefined],
    ['worker', undefined],
    [':80', undefined],
    ['::1:80', undefined],
    ['http://worker:80', undefined],
    ['worker:80/path', undefined],
  ])('%j → %j', (value, expected) => {
    expect(parseHostPort(value)).toEqual(expected);
  });
});

describe('deepFreeze', () => {
  it('freezes nested objects and arrays but leaves URLs usable', () => {
    const config = deepFreeze({ pools: { media: ['a:1'] }, url: new URL('wss://x.example/') });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.pools)).toBe(true);
    expect(Object.isFrozen(config.pools.media)).toBe(true);
    expect(Object.isFrozen(config.url)).toBe(false);
    expect(() => {
      (config.pools.media as string[]).push('b:2');
    }).toThrow(TypeError);
  });
});
