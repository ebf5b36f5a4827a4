import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PLAYBACK_LEAD_MS } from '@callgate/agent';
import { TEST_AGENT_SAMPLE_RATES } from '@callgate/protocol';
import { EnvReader, type Env } from '@callgate/runtime';
// env-schema.ts is not exported from @callgate/runtime until the lead wires it in.
// eslint-disable-next-line no-restricted-imports
import { defineEnv, env, envTableRows, readEnv } from '../../packages/runtime/src/env-schema.js';
import { loadTestAgentConfig } from '../../workers/test-agent/src/config.js';

// A sketch, not wired in: the test-agent worker's environment as one table (the smallest of the
// three processes, 18 variables). Each entry holds what today lives in three places: the reader
// call in loadTestAgentConfig (name, parser, range, default), the TestAgentConfig field, and the
// README row (the default again, and the line). The tests below show that it reads exactly what
// loadTestAgentConfig reads, and how far the README table is from one generated from it. Moving it
// into workers/test-agent/src/config.ts is the lead's call at merge (docs/architecture.md,
// "Decisions").

const MIN_SECRET_BYTES = 16;

const TEST_AGENT_ENV = defineEnv({
  secretText: env.optionalString(
    'TEST_AGENT_SECRET',
    'signs session tokens (16+ characters); set the same value on every test-agent worker',
    {
      shown: 'random per process',
      check: (v) =>
        Buffer.byteLength(v) < MIN_SECRET_BYTES
          ? `TEST_AGENT_SECRET must be at least ${MIN_SECRET_BYTES} characters`
          : undefined,
    },
  ),
  apiKey: env.optionalString(
    'TEST_AGENT_API_KEY',
    'when set, creating a session needs it as a bearer token',
    { minLength: 8 },
  ),
  sampleRate: env.numberOf(
    'TEST_AGENT_SAMPLE_RATE',
    TEST_AGENT_SAMPLE_RATES,
    16000,
    'PCM rate between page and worker',
  ),
  logLevel: env.logLevel(''),
  sessionMaxDurationSeconds: env.int(
    'SESSION_MAX_DURATION_SECONDS',
    300,
    { min: 1, max: 86_400 },
    'a session is closed (code 4008) when it reaches this',
  ),
  host: env.string('HOST', '127.0.0.1', 'listen address'),
  port: env.port('PORT', 8201, 'listen port'),
  workerId: env.optionalString('WORKER_ID', 'name in logs and metrics', { shown: 'host-pid' }),
  sessionTokenTtlSeconds: env.int(
    'SESSION_TOKEN_TTL_SECONDS',
    120,
    { min: 1, max: 86_400 },
    'time to open the WebSocket after creating a session',
  ),
  sessionCreateRatePerMinute: env.int(
    'SESSION_CREATE_RATE_PER_MINUTE',
    60,
    { min: 1, max: 1_000_000 },
    'sessions a worker creates per minute for one client address (`X-Forwarded-For` as the proxy writes it, else the socket peer); 429 with `Retry-After` above. Audio faster than real time (5 s of slack) is dropped and counted as malformed (`TEST_AGENT_ERR_TOO_FAST`)',
  ),
  maxSessions: env.int(
    'MAX_SESSIONS',
    50,
    { min: 1, max: 100_000 },
    'sessions per worker before upgrades get 503',
  ),
  agent: env.oneOf('AGENT', ['parrot', 'echo'], 'parrot', 'as for the media worker'),
  agentModule: env.optionalString('AGENT_MODULE', 'as for the media worker'),
  // Sessions last at most SESSION_MAX_DURATION_SECONDS, so a drain never needs longer.
  drainTimeoutMs: env.int(
    'DRAIN_TIMEOUT_MS',
    (earlier) => ((earlier.sessionMaxDurationSeconds as number) + 30) * 1000,
    { min: 0, max: 86_400_000 },
    'on SIGTERM, how long live sessions may continue',
    { shown: '`330000` (max duration + 30 s)' },
  ),
  acceptGraceMs: env.int(
    'ACCEPT_GRACE_MS',
    5000,
    { min: 0, max: 600_000 },
    "as for the media worker: after SIGTERM, new sessions (`POST /test-agent/sessions`) and their sockets are still accepted this long. Must exceed the proxy's `HEALTH_CHECK_INTERVAL_MS` + `HEALTH_CHECK_TIMEOUT_MS`",
  ),
  heartbeatIntervalMs: env.int('HEARTBEAT_INTERVAL_MS', 15_000, { min: 100, max: 600_000 }, ''),
  maxBufferedBytes: env.int(
    'MAX_BUFFERED_BYTES',
    262_144,
    { min: 16_384, max: 1 << 30 },
    'outbound bytes queued for a browser before it is shed as a slow reader (1013)',
  ),
  maxBadMessages: env.int(
    'MAX_BAD_MESSAGES',
    10,
    { min: 0, max: 10_000 },
    'malformed messages answered with an error before the session is closed (1008)',
  ),
  playbackLeadMs: env.int(
    'PLAYBACK_LEAD_MS',
    DEFAULT_PLAYBACK_LEAD_MS,
    { min: 0, max: 2000 },
    "as for the media worker: agent audio sent ahead of real time into the page's buffer",
  ),
});

/** What loadTestAgentConfig would become: the table, then what is not a variable. */
function loadFromTable(vars: Env, defaults: { workerId: string }) {
  const r = new EnvReader(vars);
  const { secretText, workerId, ...v } = readEnv(TEST_AGENT_ENV, r);
  let problems: readonly string[] = [];
  try {
    r.done();
  } catch (err) {
    problems = (err as { problems: readonly string[] }).problems;
  }
  const config = {
    ...v,
    workerId: workerId ?? defaults.workerId,
    secret: secretText ?? '(random)',
    isSecretEphemeral: secretText === undefined,
  };
  return { config, problems };
}

function loadToday(vars: Env, defaults: { workerId: string }) {
  try {
    const c = loadTestAgentConfig(vars, defaults);
    return {
      config: { ...c, secret: c.isSecretEphemeral ? '(random)' : c.secret },
      problems: [] as readonly string[],
    };
  } catch (err) {
    return { config: undefined, problems: (err as { problems: readonly string[] }).problems };
  }
}

/**
 * The rows of one README table under `heading`, by variable name (a row naming two variables
 * counts for both): what the deploy test would compare with `envTableRows`, both ways.
 */
function readmeRows(heading: string): Map<string, { shown: string; doc: string }> {
  const readme = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');
  const section = readme.slice(readme.indexOf(heading) + heading.length);
  const end = section.search(/\n#{2,3} /);
  const rows = new Map<string, { shown: string; doc: string }>();
  for (const line of section.slice(0, end).split('\n')) {
    const cells = line.split(' | ');
    if (cells.length < 3 || !line.startsWith('| `')) continue;
    const shown = cells[1]!.trim();
    const doc = cells
      .slice(2)
      .join(' | ')
      .replace(/\s*\|$/, '')
      .trim();
    for (const m of cells[0]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)) rows.set(m[1]!, { shown, doc });
  }
  return rows;
}

describe('sketch: the test-agent environment as one table', () => {
  it.each<[string, Env]>([
    ['nothing set', {}],
    [
      'everything set',
      {
        TEST_AGENT_SECRET: 's'.repeat(32),
        TEST_AGENT_API_KEY: 'k'.repeat(8),
        TEST_AGENT_SAMPLE_RATE: '48000',
        LOG_LEVEL: 'warn',
        SESSION_MAX_DURATION_SECONDS: '60',
        HOST: '0.0.0.0',
        PORT: '9000',
        WORKER_ID: 'ta-1',
        SESSION_TOKEN_TTL_SECONDS: '30',
        SESSION_CREATE_RATE_PER_MINUTE: '5',
        MAX_SESSIONS: '3',
        AGENT: 'echo',
        AGENT_MODULE: './agent.js',
        ACCEPT_GRACE_MS: '0',
        HEARTBEAT_INTERVAL_MS: '1000',
        MAX_BUFFERED_BYTES: '20000',
        MAX_BAD_MESSAGES: '0',
        PLAYBACK_LEAD_MS: '0',
      },
    ],
    ['a drain deadline from the session length', { SESSION_MAX_DURATION_SECONDS: '10' }],
    [
      'everything wrong',
      {
        TEST_AGENT_SECRET: 'é'.repeat(7),
        TEST_AGENT_API_KEY: 'short',
        TEST_AGENT_SAMPLE_RATE: '44100',
        LOG_LEVEL: 'loud',
        SESSION_MAX_DURATION_SECONDS: '0',
        PORT: 'http',
        MAX_SESSIONS: '1e3',
        AGENT: 'robot',
        DRAIN_TIMEOUT_MS: '-1',
        HEARTBEAT_INTERVAL_MS: '5',
      },
    ],
    ['a placeholder left in', { TEST_AGENT_SECRET: 'CHANGE-ME-to-32-random-bytes' }],
  ])('reads what loadTestAgentConfig reads (%s)', (_name, vars) => {
    const defaults = { workerId: 'host-1' };
    const today = loadToday(vars, defaults);
    const table = loadFromTable(vars, defaults);
    expect([...table.problems].sort()).toEqual([...today.problems].sort());
    if (today.config) expect(table.config).toEqual(today.config);
  });

  it('covers every variable loadTestAgentConfig reads', () => {
    const source = readFileSync(
      join(import.meta.dirname, '../../workers/test-agent/src/config.ts'),
      'utf8',
    );
    const read = new Set(
      [
        ...source.matchAll(
          /\.(?:string|optionalString|int|port|bool|oneOf|list)\(\s*'([A-Z_0-9]+)'/g,
        ),
      ].map((m) => m[1]!),
    );
    expect(new Set(envTableRows(TEST_AGENT_ENV).map((r) => r.name))).toEqual(read);
  });

  it('differs from the README table only where the README merges two rows', () => {
    const rows = readmeRows('### Test-agent worker');
    const table = envTableRows(TEST_AGENT_ENV);
    const drift = [
      ...table
        .filter((t) => {
          const row = rows.get(t.name);
          return row?.shown !== t.shown || row.doc !== t.doc;
        })
        .map((t) => `${t.name}: README ${JSON.stringify(rows.get(t.name))}`),
      ...[...rows.keys()]
        .filter((name) => !table.some((t) => t.name === name))
        .map((name) => `${name}: only in the README`),
    ];
    // One README row for AGENT and AGENT_MODULE shows AGENT's default and line for both; a table
    // generated from the schema gives each variable its own row.
    expect(drift).toEqual([
      'AGENT_MODULE: README {"shown":"`parrot`","doc":"as for the media worker"}',
    ]);
  });
});
