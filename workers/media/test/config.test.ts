import { ConfigError } from '@callgate/runtime';
import { describe, expect, it } from 'vitest';
import { loadMediaConfig } from '../src/index.js';

const defaults = { workerId: 'host-1' };

describe('loadMediaConfig', () => {
  it('has documented defaults', () => {
    const c = loadMediaConfig({}, defaults);
    expect(c).toEqual({
      host: '127.0.0.1',
      port: 8081,
      workerId: 'host-1',
      publicUrl: undefined,
      callTokenSecret: undefined,
      callTokenTtlSeconds: 600,
      twilioAuthToken: undefined,
      agent: 'parrot',
      agentModule: undefined,
      recordingsDir: undefined,
      maxCalls: 100,
      drainTimeoutMs: 3_600_000,
      acceptGraceMs: 5000,
      sansPbxEnabled: true,
      sansPbxSampleRate: 8000,
      heartbeatIntervalMs: 15_000,
      maxBufferedBytes: 262_144,
      startTimeoutMs: 10_000,
      maxBadMessages: 10,
      playbackLeadMs: 100,
      maxWebhookBytes: 65_536,
      maxUnstartedStreams: 32,
      noMediaTimeoutMs: 5000,
      stuckReaderMs: 5000,
      sansPbxToken: undefined,
      streamReconnectLimit: 0,
      streamStableMs: 30_000,
      logLevel: 'info',
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads every variable', () => {
    const c = loadMediaConfig(
      {
        HOST: '0.0.0.0',
        PORT: '0',
        WORKER_ID: 'media-7',
        PUBLIC_URL: 'https://edge.example.com',
        CALL_TOKEN_SECRET: '0123456789abcdef',
        CALL_TOKEN_TTL_SECONDS: '120',
        TWILIO_AUTH_TOKEN: 'tok',
        AGENT: 'echo',
        AGENT_MODULE: './my-agent.js',
        RECORDINGS_DIR: '/tmp/rec',
        MAX_CALLS: '5',
        DRAIN_TIMEOUT_MS: '1000',
        ACCEPT_GRACE_MS: '2500',
        SANSPBX_ENABLED: 'false',
        SANSPBX_SAMPLE_RATE: '16000',
        HEARTBEAT_INTERVAL_MS: '5000',
        MAX_BUFFERED_BYTES: '65536',
        START_TIMEOUT_MS: '2000',
        MAX_BAD_MESSAGES: '0',
        PLAYBACK_LEAD_MS: '0',
        MAX_WEBHOOK_BYTES: '4096',
        STREAM_RECONNECT_LIMIT: '5',
        STREAM_STABLE_MS: '5000',
        LOG_LEVEL: 'debug',
      },
      defaults,
    );
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 0,
      workerId: 'media-7',
      callTokenTtlSeconds: 120,
      agent: 'echo',
      agentModule: './my-agent.js',
      maxCalls: 5,
      acceptGraceMs: 2500,
      sansPbxEnabled: false,
      sansPbxSampleRate: 16000,
      maxBadMessages: 0,
      playbackLeadMs: 0,
      streamReconnectLimit: 5,
      streamStableMs: 5000,
      logLevel: 'debug',
    });
    expect(c.publicUrl?.href).toBe('https://edge.example.com/');
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      loadMediaConfig(
        {
          PORT: '70000',
          PUBLIC_URL: 'https://edge.example.com/voice?x=1',
          CALL_TOKEN_SECRET: 'short',
          AGENT: 'robot',
          MAX_CALLS: '0',
          PLAYBACK_LEAD_MS: '5000',
          SANSPBX_SAMPLE_RATE: '11025',
          LOG_LEVEL: 'loud',
        },
        defaults,
      );
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    for (const name of [
      'PORT',
      'PUBLIC_URL',
      'CALL_TOKEN_SECRET',
      'AGENT',
      'MAX_CALLS',
      'PLAYBACK_LEAD_MS',
      'SANSPBX_SAMPLE_RATE',
      'LOG_LEVEL',
    ]) {
      expect(problems).toContain(name);
    }
    expect((error as ConfigError).code).toBe('CONFIG_ERR_INVALID');
  });

  it('needs PUBLIC_URL to check webhook signatures', () => {
    expect(() => loadMediaConfig({ TWILIO_AUTH_TOKEN: 'tok' }, defaults)).toThrow(
      /TWILIO_AUTH_TOKEN needs PUBLIC_URL/,
    );
  });
});

describe('loadMediaConfig with NODE_ENV=production', () => {
  const defaults = { workerId: 'host-1' };
  const base = { NODE_ENV: 'production', PUBLIC_URL: 'https://voice.example.com' };

  it('refuses to start without TWILIO_AUTH_TOKEN, PUBLIC_URL and a SansPBX credential', () => {
    expect(() => loadMediaConfig({ NODE_ENV: 'production' }, defaults)).toThrow(
      /needs PUBLIC_URL[\s\S]*TWILIO_AUTH_TOKEN, or ALLOW_UNSIGNED_WEBHOOKS[\s\S]*SANSPBX_TOKEN/,
    );
  });

  it('starts with the credentials, or with explicit opt-outs', () => {
    expect(
      loadMediaConfig(
        { ...base, TWILIO_AUTH_TOKEN: 'tok', SANSPBX_TOKEN: 'a-long-sanspbx-secret' },
        defaults,
      ).sansPbxToken,
    ).toBe('a-long-sanspbx-secret');
    expect(() =>
      loadMediaConfig(
        { ...base, ALLOW_UNSIGNED_WEBHOOKS: 'true', SANSPBX_ALLOW_UNAUTHENTICATED: 'true' },
        defaults,
      ),
    ).not.toThrow();
    expect(() =>
      loadMediaConfig({ ...base, TWILIO_AUTH_TOKEN: 'tok', SANSPBX_ENABLED: 'false' }, defaults),
    ).not.toThrow();
    // PUBLIC_URL has no opt-out: the TwiML stream host never comes from a request's Host.
    expect(() =>
      loadMediaConfig(
        { NODE_ENV: 'production', ALLOW_UNSIGNED_WEBHOOKS: 'true', SANSPBX_ENABLED: 'false' },
        defaults,
      ),
    ).toThrow(/PUBLIC_URL/);
  });

  it('leaves development as it was', () => {
    expect(() => loadMediaConfig({}, defaults)).not.toThrow();
    expect(() => loadMediaConfig({ NODE_ENV: 'development' }, defaults)).not.toThrow();
  });
});
