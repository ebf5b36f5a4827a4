import { describe, expect, it } from 'vitest';
import { loadTestAgentConfig } from '../src/config.js';

describe('loadTestAgentConfig', () => {
  it('has defaults for everything, with a random per-process secret', () => {
    const a = loadTestAgentConfig({}, { workerId: 'w1' });
    expect(a).toMatchObject({
      host: '127.0.0.1',
      port: 8201,
      workerId: 'w1',
      apiKey: undefined,
      isSecretEphemeral: true,
      sessionMaxDurationSeconds: 300,
      sessionTokenTtlSeconds: 120,
      sessionCreateRatePerMinute: 60,
      sampleRate: 16000,
      maxSessions: 50,
      agent: 'parrot',
      agentModule: undefined,
      drainTimeoutMs: 330_000,
      acceptGraceMs: 5000,
      heartbeatIntervalMs: 15_000,
      maxBufferedBytes: 262_144,
      maxBadMessages: 10,
      playbackLeadMs: 100,
      logLevel: 'info',
    });
    expect(a.secret).toMatch(/^[0-9a-f]{64}$/);
    expect(loadTestAgentConfig({}).secret).not.toBe(a.secret);
    expect(Object.isFrozen(a)).toBe(true);
  });

  it('reads every variable', () => {
    const config = loadTestAgentConfig({
      HOST: '0.0.0.0',
      PORT: '9000',
      WORKER_ID: 'ta-1',
      TEST_AGENT_API_KEY: 'an-api-key-123',
      TEST_AGENT_SECRET: 'a-shared-secret-of-some-length',
      SESSION_MAX_DURATION_SECONDS: '60',
      SESSION_TOKEN_TTL_SECONDS: '30',
      SESSION_CREATE_RATE_PER_MINUTE: '10',
      TEST_AGENT_SAMPLE_RATE: '24000',
      MAX_SESSIONS: '5',
      AGENT: 'echo',
      AGENT_MODULE: './my-agent.js',
      DRAIN_TIMEOUT_MS: '1000',
      ACCEPT_GRACE_MS: '0',
      HEARTBEAT_INTERVAL_MS: '500',
      MAX_BUFFERED_BYTES: '65536',
      MAX_BAD_MESSAGES: '3',
      PLAYBACK_LEAD_MS: '40',
      LOG_LEVEL: 'debug',
    });
    expect(config).toEqual({
      host: '0.0.0.0',
      port: 9000,
      workerId: 'ta-1',
      apiKey: 'an-api-key-123',
      secret: 'a-shared-secret-of-some-length',
      isSecretEphemeral: false,
      sessionMaxDurationSeconds: 60,
      sessionTokenTtlSeconds: 30,
      sessionCreateRatePerMinute: 10,
      sampleRate: 24000,
      maxSessions: 5,
      agent: 'echo',
      agentModule: './my-agent.js',
      drainTimeoutMs: 1000,
      acceptGraceMs: 0,
      heartbeatIntervalMs: 500,
      maxBufferedBytes: 65536,
      maxBadMessages: 3,
      playbackLeadMs: 40,
      logLevel: 'debug',
    });
  });

  it('the drain deadline follows the session limit by default', () => {
    expect(loadTestAgentConfig({ SESSION_MAX_DURATION_SECONDS: '60' }).drainTimeoutMs).toBe(90_000);
  });

  it('reports every problem at once', () => {
    let message = '';
    try {
      loadTestAgentConfig({
        PORT: 'eighty',
        TEST_AGENT_SECRET: 'short',
        TEST_AGENT_API_KEY: 'abc',
        TEST_AGENT_SAMPLE_RATE: '44100',
        SESSION_MAX_DURATION_SECONDS: '0',
        AGENT: 'llm',
        LOG_LEVEL: 'loud',
      });
    } catch (err) {
      expect(err).toMatchObject({ code: 'CONFIG_ERR_INVALID' });
      message = (err as Error).message;
    }
    for (const name of [
      'PORT',
      'TEST_AGENT_SECRET',
      'TEST_AGENT_API_KEY',
      'TEST_AGENT_SAMPLE_RATE',
      'SESSION_MAX_DURATION_SECONDS',
      'AGENT',
      'LOG_LEVEL',
    ]) {
      expect(message).toContain(name);
    }
  });
});
