import { randomBytes } from 'node:crypto';
import { DEFAULT_PLAYBACK_LEAD_MS } from '@callgate/agent';
import { TEST_AGENT_SAMPLE_RATES, type TestAgentSampleRate } from '@callgate/protocol';
import { EnvReader, deepFreeze, isLogLevel, type Env, type LogLevel } from '@callgate/runtime';
import { MIN_SECRET_BYTES } from './session-token.js';

export interface TestAgentConfig {
  host: string;
  port: number;
  workerId: string;
  /** When set, `POST /test-agent/sessions` needs `Authorization: Bearer <apiKey>`. */
  apiKey: string | undefined;
  /**
   * HMAC key of session tokens (its UTF-8 bytes); every test-agent worker behind one proxy must
   * share it. A string, not a Buffer, because the config is deep-frozen.
   */
  secret: string;
  /** True when TEST_AGENT_SECRET was not set and `secret` is random for this process only. */
  isSecretEphemeral: boolean;
  sessionMaxDurationSeconds: number;
  sessionTokenTtlSeconds: number;
  /** Session creations allowed per minute on this worker (a token bucket). */
  sessionCreateRatePerMinute: number;
  sampleRate: TestAgentSampleRate;
  maxSessions: number;
  agent: 'parrot' | 'echo';
  agentModule: string | undefined;
  drainTimeoutMs: number;
  /**
   * After SIGTERM, how long new sessions are still accepted while /readyz already answers 503:
   * the proxies route here until their next readiness probe. Above the proxy's
   * HEALTH_CHECK_INTERVAL_MS + HEALTH_CHECK_TIMEOUT_MS.
   */
  acceptGraceMs: number;
  heartbeatIntervalMs: number;
  /** A socket whose `ws.bufferedAmount` passes this is shed with 1013. */
  maxBufferedBytes: number;
  /** Malformed messages tolerated per session; one more closes it with 1008. */
  maxBadMessages: number;
  /** Agent audio is sent this far ahead of real time (the page's buffer rides out stalls). */
  playbackLeadMs: number;
  logLevel: LogLevel;
}

export interface TestAgentConfigDefaults {
  /** WORKER_ID fallback; main.ts passes `<hostname>-<pid>`. */
  workerId: string;
}

/**
 * Parses the test-agent worker's environment once, before anything is bound. Every problem is
 * reported in one `ConfigError` (CONFIG_ERR_INVALID); the result is deep-frozen.
 */
export function loadTestAgentConfig(
  env: Env,
  defaults: TestAgentConfigDefaults = { workerId: 'test-agent' },
): Readonly<TestAgentConfig> {
  const r = new EnvReader(env);
  const secretText = r.optionalString('TEST_AGENT_SECRET');
  if (secretText !== undefined && Buffer.byteLength(secretText) < MIN_SECRET_BYTES) {
    r.problem(`TEST_AGENT_SECRET must be at least ${MIN_SECRET_BYTES} characters`);
  }
  const apiKey = r.optionalString('TEST_AGENT_API_KEY');
  if (apiKey !== undefined && apiKey.length < 8) {
    r.problem('TEST_AGENT_API_KEY must be at least 8 characters');
  }
  const rateText = r.oneOf(
    'TEST_AGENT_SAMPLE_RATE',
    TEST_AGENT_SAMPLE_RATES.map((n) => String(n)),
    '16000',
  );
  const logLevelText = r.string('LOG_LEVEL', 'info');
  if (!isLogLevel(logLevelText)) r.problem('LOG_LEVEL must be debug, info, warn or error');
  const sessionMaxDurationSeconds = r.int('SESSION_MAX_DURATION_SECONDS', 300, {
    min: 1,
    max: 86_400,
  });
  const config: TestAgentConfig = {
    host: r.string('HOST', '127.0.0.1'),
    port: r.port('PORT', 8201),
    workerId: r.string('WORKER_ID', defaults.workerId),
    apiKey,
    secret: secretText ?? randomBytes(32).toString('hex'),
    isSecretEphemeral: secretText === undefined,
    sessionMaxDurationSeconds,
    sessionTokenTtlSeconds: r.int('SESSION_TOKEN_TTL_SECONDS', 120, { min: 1, max: 86_400 }),
    sessionCreateRatePerMinute: r.int('SESSION_CREATE_RATE_PER_MINUTE', 60, {
      min: 1,
      max: 1_000_000,
    }),
    sampleRate: Number(rateText) as TestAgentSampleRate,
    maxSessions: r.int('MAX_SESSIONS', 50, { min: 1, max: 100_000 }),
    agent: r.oneOf('AGENT', ['parrot', 'echo'] as const, 'parrot'),
    agentModule: r.optionalString('AGENT_MODULE'),
    // Sessions last at most SESSION_MAX_DURATION_SECONDS, so a drain never needs longer.
    drainTimeoutMs: r.int('DRAIN_TIMEOUT_MS', (sessionMaxDurationSeconds + 30) * 1000, {
      min: 0,
      max: 86_400_000,
    }),
    acceptGraceMs: r.int('ACCEPT_GRACE_MS', 5000, { min: 0, max: 600_000 }),
    heartbeatIntervalMs: r.int('HEARTBEAT_INTERVAL_MS', 15_000, { min: 100, max: 600_000 }),
    maxBufferedBytes: r.int('MAX_BUFFERED_BYTES', 262_144, { min: 16_384, max: 1 << 30 }),
    maxBadMessages: r.int('MAX_BAD_MESSAGES', 10, { min: 0, max: 10_000 }),
    playbackLeadMs: r.int('PLAYBACK_LEAD_MS', DEFAULT_PLAYBACK_LEAD_MS, { min: 0, max: 2000 }),
    logLevel: isLogLevel(logLevelText) ? logLevelText : 'info',
  };
  r.done();
  return deepFreeze(config);
}
