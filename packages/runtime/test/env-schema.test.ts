import { describe, expect, it } from 'vitest';
import { ConfigError, EnvReader, type Env } from '../src/index.js';
import {
  defineEnv,
  env,
  envMarkdownTable,
  envTableRows,
  readEnv,
  type EnvSchema,
  type EnvValues,
} from '../src/env-schema.js';

/** Reads `schema` from `vars` and returns the values and the problems `done()` reports. */
function read<S extends EnvSchema>(schema: S, vars: Env) {
  const r = new EnvReader(vars);
  const values = readEnv(schema, r);
  try {
    r.done();
    return { values, problems: [] as readonly string[] };
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return { values, problems: (err as ConfigError).problems };
  }
}

/** The same reads done by hand with EnvReader, the way the loaders do them today. */
function byHand(vars: Env) {
  const r = new EnvReader(vars);
  const secret = r.optionalString('SECRET');
  if (secret !== undefined && secret.length < 16)
    r.problem('SECRET must be at least 16 characters');
  const maxSeconds = r.int('MAX_SECONDS', 300, { min: 1, max: 86_400 });
  const values = {
    host: r.string('HOST', '127.0.0.1'),
    port: r.port('PORT', 8201),
    secret,
    maxSeconds,
    drainMs: r.int('DRAIN_MS', (maxSeconds + 30) * 1000, { min: 0, max: 86_400_000 }),
    open: r.bool('OPEN', false),
    agent: r.oneOf('AGENT', ['parrot', 'echo'] as const, 'parrot'),
    rate: Number(r.oneOf('RATE', ['8000', '16000'], '16000')),
    peers: r.list('PEERS'),
    publicUrl: r.optionalUrl('PUBLIC_URL', ['https:', 'http:']),
    logLevel: r.string('LOG_LEVEL', 'info'),
  };
  if (!['debug', 'info', 'warn', 'error'].includes(values.logLevel)) {
    r.problem('LOG_LEVEL must be debug, info, warn or error');
    values.logLevel = 'info';
  }
  let problems: readonly string[] = [];
  try {
    r.done();
  } catch (err) {
    problems = (err as ConfigError).problems;
  }
  return { values, problems };
}

const SCHEMA = defineEnv({
  secret: env.optionalString('SECRET', 'signs tokens (16+ characters)', { minLength: 16 }),
  maxSeconds: env.int('MAX_SECONDS', 300, { min: 1, max: 86_400 }, 'longest session'),
  host: env.string('HOST', '127.0.0.1', 'listen address'),
  port: env.port('PORT', 8201, 'listen port'),
  drainMs: env.int(
    'DRAIN_MS',
    (earlier) => ((earlier.maxSeconds as number) + 30) * 1000,
    { min: 0, max: 86_400_000 },
    'on SIGTERM, how long live sessions may continue',
    { shown: '`330000` (max duration + 30 s)' },
  ),
  open: env.bool('OPEN', false, 'accept without a token'),
  agent: env.oneOf('AGENT', ['parrot', 'echo'], 'parrot', 'built-in agent'),
  rate: env.numberOf('RATE', [8000, 16000], 16000, 'PCM rate'),
  peers: env.list('PEERS', 'comma-separated peers'),
  publicUrl: env.optionalUrl('PUBLIC_URL', ['https:', 'http:'], 'public origin'),
  logLevel: env.logLevel(),
});

describe('readEnv', () => {
  it('types each value from its declaration', () => {
    const v: EnvValues<typeof SCHEMA> = read(SCHEMA, {}).values;
    // Compile-time checks: a wrong type here fails `npm run typecheck`.
    const port: number = v.port;
    const agent: 'parrot' | 'echo' = v.agent;
    const rate: 8000 | 16000 = v.rate;
    const secret: string | undefined = v.secret;
    const level: 'debug' | 'info' | 'warn' | 'error' = v.logLevel;
    expect([port, agent, rate, secret, level]).toEqual([8201, 'parrot', 16000, undefined, 'info']);
  });

  it.each<[string, Env]>([
    ['nothing set', {}],
    [
      'everything set',
      {
        SECRET: 'x'.repeat(16),
        MAX_SECONDS: '60',
        HOST: ' 0.0.0.0 ',
        PORT: '9000',
        OPEN: 'yes',
        AGENT: 'echo',
        RATE: '8000',
        PEERS: 'a:1, ,b:2',
        PUBLIC_URL: 'https://voice.example.com',
        LOG_LEVEL: 'debug',
      },
    ],
    [
      'everything wrong',
      {
        SECRET: 'short',
        MAX_SECONDS: '0',
        PORT: '70000',
        DRAIN_MS: '1.5',
        OPEN: 'maybe',
        AGENT: 'robot',
        RATE: '44100',
        PUBLIC_URL: 'ftp://x',
        LOG_LEVEL: 'loud',
      },
    ],
    ['a placeholder left in', { SECRET: 'CHANGE-ME', HOST: 'change-me.local' }],
  ])('gives the values and problems EnvReader gives by hand (%s)', (_name, vars) => {
    const got = read(SCHEMA, vars);
    const want = byHand(vars);
    expect(got.values).toEqual(want.values);
    // The table reads in its own order; the problems are the same set, word for word.
    expect([...got.problems].sort()).toEqual([...want.problems].sort());
  });

  it('computes a default from an entry above it', () => {
    expect(read(SCHEMA, { MAX_SECONDS: '10' }).values.drainMs).toBe(40_000);
    expect(read(SCHEMA, { MAX_SECONDS: '10', DRAIN_MS: '5' }).values.drainMs).toBe(5);
  });

  it('reports what an optionalUrl check finds, after the protocol check', () => {
    const schema = defineEnv({
      publicUrl: env.optionalUrl('PUBLIC_URL', ['https:'], 'public origin', {
        check: (url) => (url.pathname === '/' ? undefined : `PUBLIC_URL has a path: ${url.href}`),
      }),
    });
    expect(read(schema, { PUBLIC_URL: 'https://v.example' }).problems).toEqual([]);
    expect(read(schema, { PUBLIC_URL: 'https://v.example/x' }).problems).toEqual([
      'PUBLIC_URL has a path: https://v.example/x',
    ]);
    expect(read(schema, { PUBLIC_URL: 'ftp://v.example/x' }).problems).toEqual([
      'PUBLIC_URL must use https:, got "ftp:"',
    ]);
  });

  it('leaves cross-field checks and done() to the caller', () => {
    const r = new EnvReader({ PORT: 'x' });
    readEnv(SCHEMA, r);
    r.problem('HOST and PORT disagree');
    expect(() => r.done()).toThrow(
      expect.objectContaining({
        problems: ['PORT must be a whole number, got "x"', 'HOST and PORT disagree'],
      }),
    );
  });
});

describe('defineEnv', () => {
  it('refuses a variable declared twice', () => {
    expect(() =>
      defineEnv({ a: env.port('PORT', 1, 'one'), b: env.port('PORT', 2, 'two') }),
    ).toThrow('PORT is declared twice');
  });

  it('refuses a name that is not an environment variable name', () => {
    expect(() => env.string('port', 'x', 'lower case')).toThrow('bad environment variable name');
  });

  it('refuses a computed default the README could not show', () => {
    expect(() => env.string('NAME', () => 'x', 'computed')).toThrow('needs `shown`');
  });
});

describe('envTableRows / envMarkdownTable', () => {
  it('gives the README rows: name, default cell, doc line, in table order', () => {
    const rows = envTableRows(SCHEMA);
    expect(rows.map((r) => r.name)).toEqual([
      'SECRET',
      'MAX_SECONDS',
      'HOST',
      'PORT',
      'DRAIN_MS',
      'OPEN',
      'AGENT',
      'RATE',
      'PEERS',
      'PUBLIC_URL',
      'LOG_LEVEL',
    ]);
    expect(rows[0]).toEqual({ name: 'SECRET', shown: '—', doc: 'signs tokens (16+ characters)' });
    expect(rows[3]!.shown).toBe('`8201`');
    expect(rows[4]!.shown).toBe('`330000` (max duration + 30 s)');
    expect(rows[5]!.shown).toBe('`false`');
  });

  it('renders the table the README uses', () => {
    const table = envMarkdownTable(
      defineEnv({ host: env.string('HOST', '0.0.0.0', 'public listener address') }),
    );
    expect(table).toBe(
      [
        '| variable | default | meaning |',
        '|---|---|---|',
        '| `HOST` | `0.0.0.0` | public listener address |',
      ].join('\n'),
    );
  });
});
