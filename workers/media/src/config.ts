import { EnvReader, deepFreeze, isLogLevel, type Env, type LogLevel } from '@callgate/runtime';
import { DEFAULT_PLAYBACK_LEAD_MS } from '@callgate/agent';

/** Rates the SansPBX leg may use; the ones `Resampler` from @callgate/audio supports. */
export const SANSPBX_RATES = [8000, 16000, 24000, 44100, 48000] as const;
export type SansPbxRate = (typeof SANSPBX_RATES)[number];

export interface MediaConfig {
  host: string;
  port: number;
  workerId: string;
  /** Public origin (`https://edge.example.com`): signed webhook URLs and the TwiML stream URL. */
  publicUrl: URL | undefined;
  /** HMAC-SHA256 key of the per-call token; undefined turns the check off (warned at start-up). */
  callTokenSecret: string | undefined;
  callTokenTtlSeconds: number;
  /** When set, the webhooks require a valid `X-Twilio-Signature`. */
  twilioAuthToken: string | undefined;
  agent: 'parrot' | 'echo';
  agentModule: string | undefined;
  recordingsDir: string | undefined;
  maxCalls: number;
  drainTimeoutMs: number;
  /**
   * After SIGTERM, how long new calls are still accepted while /readyz already answers 503: the
   * proxies route here until their next readiness probe. Above the proxy's
   * HEALTH_CHECK_INTERVAL_MS + HEALTH_CHECK_TIMEOUT_MS.
   */
  acceptGraceMs: number;
  sansPbxEnabled: boolean;
  sansPbxSampleRate: SansPbxRate;
  heartbeatIntervalMs: number;
  /** A socket whose `ws.bufferedAmount` passes this is shed with 1013. */
  maxBufferedBytes: number;
  /** How long a socket may stay open without a `start` (or SansPBX `answer`). */
  startTimeoutMs: number;
  /** Bad messages (invalid JSON, unknown event, wrong streamSid …) tolerated per socket. */
  maxBadMessages: number;
  /** Outbound audio is sent this far ahead of real time (the caller's buffer rides out stalls). */
  playbackLeadMs: number;
  /** Webhook body limit. */
  maxWebhookBytes: number;
  /** Sockets open without a `start` at once; a new one past it closes the oldest (1013). */
  maxUnstartedStreams: number;
  /** A started stream with no caller audio this long is ended (1008, MEDIA_ERR_NO_MEDIA). */
  noMediaTimeoutMs: number;
  /** A sent mark not echoed this long means the caller stopped reading: shed (1013). */
  stuckReaderMs: number;
  /** Shared secret a SansPBX stream must send (`Authorization: Bearer …`); undefined: none. */
  sansPbxToken: string | undefined;
  /**
   * `<Connect action>`: new streams offered in a row for one call whose streams each lived less
   * than `streamStableMs`, before the action handler gives up. 0 (the default) leaves `action`
   * out of the TwiML: an agent's hang-up closes the stream like a restart does, and Twilio does
   * not tell the action handler which it was (README, "Proxy restarts and <Connect action>").
   */
  streamReconnectLimit: number;
  /** A stream that lived this long resets the reconnect count. */
  streamStableMs: number;
  logLevel: LogLevel;
}

export interface MediaConfigDefaults {
  /** WORKER_ID fallback; main.ts passes `<hostname>-<pid>`. */
  workerId: string;
}

/**
 * Parses the media worker's environment once, before anything is bound. Every problem is
 * reported in one `ConfigError` (CONFIG_ERR_INVALID); the result is deep-frozen.
 */
export function loadMediaConfig(env: Env, defaults: MediaConfigDefaults): Readonly<MediaConfig> {
  const r = new EnvReader(env);
  const publicUrl = r.optionalUrl('PUBLIC_URL', ['https:', 'http:']);
  if (
    publicUrl &&
    (publicUrl.pathname !== '/' || publicUrl.search !== '' || publicUrl.hash !== '')
  ) {
    r.problem(`PUBLIC_URL must be an origin without path or query, got "${publicUrl.href}"`);
  }
  const callTokenSecret = r.optionalString('CALL_TOKEN_SECRET');
  if (callTokenSecret !== undefined && callTokenSecret.length < 16) {
    r.problem('CALL_TOKEN_SECRET must be at least 16 characters');
  }
  const twilioAuthToken = r.optionalString('TWILIO_AUTH_TOKEN');
  // Rebuilding the signed URL from Host/X-Forwarded-* behind a TLS terminator gets the scheme or
  // port wrong (the terminator's hop is plain HTTP on another port, while Twilio signed the public
  // https URL), so validation needs the configured public origin.
  if (twilioAuthToken !== undefined && publicUrl === undefined) {
    r.problem('TWILIO_AUTH_TOKEN needs PUBLIC_URL (the origin Twilio signs webhook URLs with)');
  }
  const production = (r.optionalString('NODE_ENV') ?? '') === 'production';
  const allowUnsigned = r.bool('ALLOW_UNSIGNED_WEBHOOKS', false);
  const sansPbxToken = r.optionalString('SANSPBX_TOKEN');
  if (sansPbxToken !== undefined && sansPbxToken.length < 16) {
    r.problem('SANSPBX_TOKEN must be at least 16 characters');
  }
  const sansPbxEnabled = r.bool('SANSPBX_ENABLED', true);
  const sansPbxOpen = r.bool('SANSPBX_ALLOW_UNAUTHENTICATED', false);
  // In production an open webhook or stream endpoint must be a decision, never an omission.
  if (production) {
    if (publicUrl === undefined) {
      r.problem(
        'NODE_ENV=production needs PUBLIC_URL (the TwiML stream host is never taken from Host)',
      );
    }
    if (twilioAuthToken === undefined && !allowUnsigned) {
      r.problem(
        'NODE_ENV=production needs TWILIO_AUTH_TOKEN, or ALLOW_UNSIGNED_WEBHOOKS=true to accept unsigned webhooks',
      );
    }
    if (sansPbxEnabled && sansPbxToken === undefined && !sansPbxOpen) {
      r.problem(
        'NODE_ENV=production with SANSPBX_ENABLED needs SANSPBX_TOKEN, or SANSPBX_ALLOW_UNAUTHENTICATED=true',
      );
    }
  }
  const agentName = r.oneOf('AGENT', ['parrot', 'echo'] as const, 'parrot');
  const rateText = r.oneOf(
    'SANSPBX_SAMPLE_RATE',
    SANSPBX_RATES.map((n) => String(n)),
    '8000',
  );
  const logLevelText = r.string('LOG_LEVEL', 'info');
  if (!isLogLevel(logLevelText)) r.problem(`LOG_LEVEL must be debug, info, warn or error`);
  const config: MediaConfig = {
    host: r.string('HOST', '127.0.0.1'),
    port: r.port('PORT', 8081),
    workerId: r.string('WORKER_ID', defaults.workerId),
    publicUrl,
    callTokenSecret,
    callTokenTtlSeconds: r.int('CALL_TOKEN_TTL_SECONDS', 600, { min: 10, max: 86_400 }),
    twilioAuthToken,
    agent: agentName,
    agentModule: r.optionalString('AGENT_MODULE'),
    recordingsDir: r.optionalString('RECORDINGS_DIR'),
    maxCalls: r.int('MAX_CALLS', 100, { min: 1, max: 100_000 }),
    drainTimeoutMs: r.int('DRAIN_TIMEOUT_MS', 3_600_000, { min: 0, max: 86_400_000 }),
    acceptGraceMs: r.int('ACCEPT_GRACE_MS', 5000, { min: 0, max: 600_000 }),
    sansPbxEnabled,
    sansPbxSampleRate: Number(rateText) as SansPbxRate,
    heartbeatIntervalMs: r.int('HEARTBEAT_INTERVAL_MS', 15_000, { min: 100, max: 600_000 }),
    maxBufferedBytes: r.int('MAX_BUFFERED_BYTES', 262_144, { min: 16_384, max: 1 << 30 }),
    startTimeoutMs: r.int('START_TIMEOUT_MS', 10_000, { min: 100, max: 600_000 }),
    maxBadMessages: r.int('MAX_BAD_MESSAGES', 10, { min: 0, max: 10_000 }),
    playbackLeadMs: r.int('PLAYBACK_LEAD_MS', DEFAULT_PLAYBACK_LEAD_MS, { min: 0, max: 2000 }),
    maxWebhookBytes: r.int('MAX_WEBHOOK_BYTES', 65_536, { min: 1024, max: 10_485_760 }),
    maxUnstartedStreams: r.int('MAX_UNSTARTED_STREAMS', 32, { min: 1, max: 100_000 }),
    noMediaTimeoutMs: r.int('NO_MEDIA_TIMEOUT_MS', 5000, { min: 100, max: 600_000 }),
    stuckReaderMs: r.int('STUCK_READER_MS', 5000, { min: 100, max: 600_000 }),
    sansPbxToken,
    streamReconnectLimit: r.int('STREAM_RECONNECT_LIMIT', 0, { min: 0, max: 100 }),
    streamStableMs: r.int('STREAM_STABLE_MS', 30_000, { min: 0, max: 86_400_000 }),
    logLevel: isLogLevel(logLevelText) ? logLevelText : 'info',
  };
  r.done();
  return deepFreeze(config);
}
