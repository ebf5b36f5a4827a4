import { ConfigError, EnvReader, readEnv } from '@callgate/runtime';
import { describe, expect, it } from 'vitest';
import { PROXY_ENV, loadProxyConfig } from '../src/config.js';

// Every default, as the table reads them from an empty environment (the backend lists become
// `pools`, checked on their own below).
const {
  mediaBackends: _m,
  testAgentBackends: _t,
  ...PROXY_DEFAULTS
} = readEnv(PROXY_ENV, new EnvReader({}));

const base = { MEDIA_BACKENDS: '127.0.0.1:8101' };

function problems(env: Record<string, string>): readonly string[] {
  try {
    loadProxyConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('loadProxyConfig', () => {
  it('fills every default and freezes the result', () => {
    const config = loadProxyConfig(base);
    expect(config).toMatchObject({
      ...PROXY_DEFAULTS,
      publicUrl: undefined,
      twilioAuthToken: undefined,
      adminToken: undefined,
      signatureMode: 'off',
    });
    expect(config.pools).toEqual({
      media: [{ source: '127.0.0.1:8101', host: '127.0.0.1', port: 8101 }],
      'test-agent': [],
    });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.pools.media[0])).toBe(true);
  });

  it('reads ADMIN_TOKEN and refuses a short one or the unedited placeholder', () => {
    expect(loadProxyConfig({ ...base, ADMIN_TOKEN: 'a'.repeat(32) }).adminToken).toBe(
      'a'.repeat(32),
    );
    expect(() => loadProxyConfig({ ...base, ADMIN_TOKEN: 'short' })).toThrow(/at least 16/);
    expect(() => loadProxyConfig({ ...base, PUBLIC_URL: 'https://CHANGE-ME.example.com' })).toThrow(
      /placeholder/,
    );
  });

  it('reads backend lists with names, IPv6 and duplicates', () => {
    const config = loadProxyConfig({
      MEDIA_BACKENDS: ' media:8080, [::1]:9000 ,media:8080,',
      TEST_AGENT_BACKENDS: 'test-agent.callgate.svc.cluster.local:8080',
    });
    expect(config.pools.media).toEqual([
      { source: 'media:8080', host: 'media', port: 8080 },
      { source: '[::1]:9000', host: '::1', port: 9000 },
    ]);
    expect(config.pools['test-agent']).toHaveLength(1);
  });

  it('turns signature checks on (enforce) when a token is set', () => {
    const config = loadProxyConfig({
      ...base,
      TWILIO_AUTH_TOKEN: 'tok',
      PUBLIC_URL: 'https://voice.example.com',
    });
    expect(config.signatureMode).toBe('enforce');
    expect(config.publicUrl?.host).toBe('voice.example.com');
    expect(
      loadProxyConfig({
        ...base,
        TWILIO_AUTH_TOKEN: 'tok',
        PUBLIC_URL: 'https://v.example',
        TWILIO_SIGNATURE_MODE: 'log',
      }).signatureMode,
    ).toBe('log');
  });

  it.each<[string, Record<string, string>, RegExp]>([
    ['no backends at all', {}, /MEDIA_BACKENDS/],
    ['a malformed backend', { MEDIA_BACKENDS: 'media' }, /"media" is not host:port/],
    ['a port out of range', { MEDIA_BACKENDS: 'media:70000' }, /not host:port/],
    [
      'a token without PUBLIC_URL',
      { ...base, TWILIO_AUTH_TOKEN: 'tok' },
      /TWILIO_AUTH_TOKEN needs PUBLIC_URL/,
    ],
    [
      'enforce without a token',
      { ...base, TWILIO_SIGNATURE_MODE: 'enforce' },
      /needs TWILIO_AUTH_TOKEN/,
    ],
    [
      'an unknown mode',
      { ...base, TWILIO_SIGNATURE_MODE: 'strict' },
      /TWILIO_SIGNATURE_MODE must be one of/,
    ],
    [
      'a PUBLIC_URL with a path',
      { ...base, PUBLIC_URL: 'https://v.example/x' },
      /origin without path/,
    ],
    [
      'a PUBLIC_URL of another scheme',
      { ...base, PUBLIC_URL: 'ftp://v.example' },
      /PUBLIC_URL must use/,
    ],
    [
      'headers timeout above request timeout',
      { ...base, HEADERS_TIMEOUT_MS: '20000', REQUEST_TIMEOUT_MS: '15000' },
      /HEADERS_TIMEOUT_MS/,
    ],
    ['a non-number limit', { ...base, MAX_TUNNELS: 'lots' }, /MAX_TUNNELS must be a whole number/],
    ['a zero limit', { ...base, MAX_TUNNELS: '0' }, /MAX_TUNNELS must be between/],
    ['a bad boolean', { ...base, SANSPBX_ENABLED: 'maybe' }, /SANSPBX_ENABLED/],
    ['a bad log level', { ...base, LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
  ])('reports %s', (_what, env, pattern) => {
    expect(problems(env).join('\n')).toMatch(pattern);
  });

  it('reports every problem at once', () => {
    expect(problems({ MEDIA_BACKENDS: 'x', PORT: '-1', MAX_TUNNELS: '0' })).toHaveLength(3);
  });
});
