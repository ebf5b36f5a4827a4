import { randomBytes } from 'node:crypto';
import { DEFAULT_PLAYBACK_LEAD_MS } from '@callgate/agent';
import { TEST_AGENT_SAMPLE_RATES } from '@callgate/protocol';
import {
  EnvReader,
  deepFreeze,
  defineEnv,
  env,
  readEnv,
  type Env,
  type EnvValues,
  streamServerEnv,
} from '@callgate/runtime';
import { MIN_SECRET_BYTES } from './session-token.js';

/**
 * The test-agent worker's environment, one entry per variable in the order the loader has always
 * read them (problems are reported in this order): the key is the config field, then the
 * variable, how it is read, its default and the README table's line (test/deploy/docs.test.ts
 * compares both ways).
 */
export const TEST_AGENT_ENV = defineEnv({
  /** Becomes `secret` (random per process when unset). */
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
  /** When set, `POST /test-agent/sessions` needs `Authorization: Bearer <apiKey>`. */
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
  logLevel: env.logLevel(),
  sessionMaxDurationSeconds: env.int(
    'SESSION_MAX_DURATION_SECONDS',
    300,
    { min: 1, max: 86_400 },
    'a session is closed (code 4008) when it reaches this',
  ),
  host: env.string('HOST', '127.0.0.1', 'listen address'),
  port: env.port('PORT', 8201, 'listen port'),
  /** Defaults to `<hostname>-<pid>` (main.ts passes it to the loader). */
  workerId: env.optionalString('WORKER_ID', 'name in logs and metrics', { shown: 'host-pid' }),
  sessionTokenTtlSeconds: env.int(
    'SESSION_TOKEN_TTL_SECONDS',
    120,
    { min: 1, max: 86_400 },
    'time to open the WebSocket after creating a session',
  ),
  /** Session creations allowed per minute on this worker (a token bucket). */
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
  agent: env.oneOf(
    'AGENT',
    ['parrot', 'echo'],
    'parrot',
    'built-in agent: `parrot` or `echo` (as for the media worker)',
  ),
  agentModule: env.optionalString(
    'AGENT_MODULE',
    'path to your own agent module (overrides `AGENT`; as for the media worker)',
  ),
  // Sessions last at most SESSION_MAX_DURATION_SECONDS, so a drain never needs longer.
  drainTimeoutMs: env.int(
    'DRAIN_TIMEOUT_MS',
    (earlier) => ((earlier.sessionMaxDurationSeconds as number) + 30) * 1000,
    { min: 0, max: 86_400_000 },
    'on SIGTERM, how long live sessions may continue',
    { shown: '`330000` (max duration + 30 s)' },
  ),
  /**
   * After SIGTERM, how long new sessions are still accepted while /readyz already answers 503:
   * the proxies route here until their next readiness probe. Above the proxy's
   * HEALTH_CHECK_INTERVAL_MS + HEALTH_CHECK_TIMEOUT_MS.
   */
  acceptGraceMs: streamServerEnv.acceptGraceMs(
    "as for the media worker: after SIGTERM, new sessions (`POST /test-agent/sessions`) and their sockets are still accepted this long. Must exceed the proxy's `HEALTH_CHECK_INTERVAL_MS` + `HEALTH_CHECK_TIMEOUT_MS`",
  ),
  heartbeatIntervalMs: streamServerEnv.heartbeatIntervalMs(),
  /** A socket whose `ws.bufferedAmount` passes this is shed with 1013. */
  maxBufferedBytes: streamServerEnv.maxBufferedBytes(
    'outbound bytes queued for a browser before it is shed as a slow reader (1013)',
  ),
  /** Malformed messages tolerated per session; one more closes it with 1008. */
  maxBadMessages: env.int(
    'MAX_BAD_MESSAGES',
    10,
    { min: 0, max: 10_000 },
    'malformed messages answered with an error before the session is closed (1008)',
  ),
  /** Agent audio is sent this far ahead of real time (the page's buffer rides out stalls). */
  playbackLeadMs: env.int(
    'PLAYBACK_LEAD_MS',
    DEFAULT_PLAYBACK_LEAD_MS,
    { min: 0, max: 2000 },
    "as for the media worker: agent audio sent ahead of real time into the page's buffer",
  ),
});

/** The table's values, with `workerId` always set and the secret resolved. */
export type TestAgentConfig = Omit<EnvValues<typeof TEST_AGENT_ENV>, 'secretText' | 'workerId'> & {
  workerId: string;
  /**
   * HMAC key of session tokens (its UTF-8 bytes); every test-agent worker behind one proxy must
   * share it. A string, not a Buffer, because the config is deep-frozen.
   */
  secret: string;
  /** True when TEST_AGENT_SECRET was not set and `secret` is random for this process only. */
  isSecretEphemeral: boolean;
};

export interface TestAgentConfigDefaults {
  /** WORKER_ID fallback; main.ts passes `<hostname>-<pid>`. */
  workerId: string;
}

/**
 * Parses the test-agent worker's environment once, before anything is bound. Every problem is
 * reported in one `ConfigError` (CONFIG_ERR_INVALID); the result is deep-frozen.
 */
export function loadTestAgentConfig(
  vars: Env,
  defaults: TestAgentConfigDefaults = { workerId: 'test-agent' },
): Readonly<TestAgentConfig> {
  const r = new EnvReader(vars);
  const { secretText, workerId, ...values } = readEnv(TEST_AGENT_ENV, r);
  const config: TestAgentConfig = {
    ...values,
    workerId: workerId ?? defaults.workerId,
    secret: secretText ?? randomBytes(32).toString('hex'),
    isSecretEphemeral: secretText === undefined,
  };
  r.done();
  return deepFreeze(config);
}
