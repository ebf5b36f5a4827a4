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
import { DEFAULT_PLAYBACK_LEAD_MS } from '@callgate/agent';

/** Rates the SansPBX leg may use; the ones `Resampler` from @callgate/audio supports. */
export const SANSPBX_RATES = [8000, 16000, 24000, 44100, 48000] as const;
export type SansPbxRate = (typeof SANSPBX_RATES)[number];

/**
 * The media worker's environment, one entry per variable in the order the loader has always read
 * them (problems are reported in this order): the key is the config field, then the variable, how
 * it is read, its default and the README table's line (test/deploy/docs.test.ts compares both
 * ways).
 */
export const MEDIA_ENV = defineEnv({
  /** Public origin (`https://edge.example.com`): signed webhook URLs and the TwiML stream URL. */
  publicUrl: env.optionalUrl(
    'PUBLIC_URL',
    ['https:', 'http:'],
    'public origin used in TwiML stream URLs and webhook signatures',
    {
      check: (url) =>
        url.pathname !== '/' || url.search !== '' || url.hash !== ''
          ? `PUBLIC_URL must be an origin without path or query, got "${url.href}"`
          : undefined,
    },
  ),
  /** HMAC-SHA256 key of the per-call token; undefined turns the check off (warned at start-up). */
  callTokenSecret: env.optionalString(
    'CALL_TOKEN_SECRET',
    "shared by every media worker (and the proxy); signs the per-call token in the TwiML, and checks the proxy's `X-Callgate-Resume` vouch on a call it moves here",
    { minLength: 16 },
  ),
  /** When set, the webhooks require a valid `X-Twilio-Signature`. */
  twilioAuthToken: env.optionalString(
    'TWILIO_AUTH_TOKEN',
    'checks `X-Twilio-Signature` on the voice and status webhooks',
  ),
  nodeEnv: env.optionalString(
    'NODE_ENV',
    '`production` (the Docker image sets it) turns on the start-up checks above and requires `PUBLIC_URL`; `npm start` and the tests do not set it',
  ),
  allowUnsignedWebhooks: env.bool(
    'ALLOW_UNSIGNED_WEBHOOKS',
    false,
    'with `NODE_ENV=production`, the worker refuses to start without `TWILIO_AUTH_TOKEN` unless this is `true`',
  ),
  /** Shared secret a SansPBX stream must send (`Authorization: Bearer …`); undefined: none. */
  sansPbxToken: env.optionalString(
    'SANSPBX_TOKEN',
    'when set, a SansPBX upgrade (bare `/media-stream`) needs `Authorization: Bearer <token>` (401 `MEDIA_ERR_SANSPBX_AUTH`); 16+ characters',
    { minLength: 16 },
  ),
  sansPbxEnabled: env.bool(
    'SANSPBX_ENABLED',
    true,
    '`false` refuses SansPBX streams (close 1008 `MEDIA_ERR_PROVIDER_DISABLED`)',
  ),
  sansPbxAllowUnauthenticated: env.bool(
    'SANSPBX_ALLOW_UNAUTHENTICATED',
    false,
    'with `NODE_ENV=production` and `SANSPBX_ENABLED`, the worker refuses to start without `SANSPBX_TOKEN` unless this is `true`',
  ),
  agent: env.oneOf('AGENT', ['parrot', 'echo'], 'parrot', 'built-in agent: `parrot` or `echo`'),
  sansPbxSampleRate: env.numberOf(
    'SANSPBX_SAMPLE_RATE',
    SANSPBX_RATES,
    8000,
    'PCM16 rate of SansPBX streams, both ways: 8000, 16000, 24000, 44100 or 48000',
  ),
  logLevel: env.logLevel(),
  host: env.string('HOST', '127.0.0.1', 'listen address (internal only)'),
  port: env.port('PORT', 8081, 'listen port (`npm start` uses 8101, 8102, …)'),
  /** Defaults to `<hostname>-<pid>` (main.ts passes it to the loader). */
  workerId: env.optionalString('WORKER_ID', 'name in logs and metrics', { shown: 'host-pid' }),
  callTokenTtlSeconds: env.int(
    'CALL_TOKEN_TTL_SECONDS',
    600,
    { min: 10, max: 86_400 },
    'how long a call token is valid to open its stream',
  ),
  agentModule: env.optionalString(
    'AGENT_MODULE',
    'path to your own agent module (overrides `AGENT`)',
  ),
  recordingsDir: env.optionalString(
    'RECORDINGS_DIR',
    'write a stereo WAV and a JSON summary per call here (one pair per segment of a call that moved between workers; [see below](#calls-that-move-between-workers))',
  ),
  maxCalls: env.int(
    'MAX_CALLS',
    100,
    { min: 1, max: 100_000 },
    'started calls per worker: upgrades get 503 when they are all taken, a `start` past it is closed with 1013 (`MEDIA_ERR_TOO_MANY_CALLS`). Sockets that have not sent `start` hold no slot',
  ),
  drainTimeoutMs: env.int(
    'DRAIN_TIMEOUT_MS',
    3_600_000,
    { min: 0, max: 86_400_000 },
    'on SIGTERM, how long live calls may continue before closing with 1012',
  ),
  /**
   * After SIGTERM, how long new calls are still accepted while /readyz already answers 503: the
   * proxies route here until their next readiness probe. Above the proxy's
   * HEALTH_CHECK_INTERVAL_MS + HEALTH_CHECK_TIMEOUT_MS.
   */
  acceptGraceMs: streamServerEnv.acceptGraceMs(
    "on SIGTERM, `/readyz` turns 503 at once but new calls are still accepted this long, until every proxy has probed and stopped sending them here. Must exceed the proxy's `HEALTH_CHECK_INTERVAL_MS` + `HEALTH_CHECK_TIMEOUT_MS` (3000 by default); `0` refuses new calls from the SIGTERM on",
  ),
  heartbeatIntervalMs: streamServerEnv.heartbeatIntervalMs(),
  /** A socket whose `ws.bufferedAmount` passes this is shed with 1013. */
  maxBufferedBytes: streamServerEnv.maxBufferedBytes(
    "bytes queued in the worker's WebSocket before a slow reader is shed with 1013. They queue only once the kernel's socket buffers on both hops (0.5–1.5 MB per call, a minute or more of Twilio audio) are full, so the bound that holds is `STUCK_READER_MS`",
  ),
  /** How long a socket may stay open without a `start` (or SansPBX `answer`). */
  startTimeoutMs: env.int(
    'START_TIMEOUT_MS',
    10_000,
    { min: 100, max: 600_000 },
    'a socket without `start` (SansPBX: `answer`) by then is closed with 1008',
  ),
  /** Bad messages (invalid JSON, unknown event, wrong streamSid …) tolerated per socket. */
  maxBadMessages: env.int(
    'MAX_BAD_MESSAGES',
    10,
    { min: 0, max: 10_000 },
    'bad messages tolerated per socket before it is closed with 1008',
  ),
  /** Outbound audio is sent this far ahead of real time (the caller's buffer rides out stalls). */
  playbackLeadMs: env.int(
    'PLAYBACK_LEAD_MS',
    DEFAULT_PLAYBACK_LEAD_MS,
    { min: 0, max: 2000 },
    "agent audio is sent this far ahead of real time, so Twilio's playback buffer rides out a stall of the worker, proxy or network shorter than this instead of the caller hearing a gap; `clear` drops it on barge-in, so it costs no latency. `0`–`2000`, in 20 ms steps",
  ),
  /** Webhook body limit. */
  maxWebhookBytes: env.int(
    'MAX_WEBHOOK_BYTES',
    65_536,
    { min: 1024, max: 10_485_760 },
    'webhook body limit (413 above)',
  ),
  /** Sockets open without a `start` at once; a new one past it closes the oldest (1013). */
  maxUnstartedStreams: env.int(
    'MAX_UNSTARTED_STREAMS',
    32,
    { min: 1, max: 100_000 },
    "sockets open without a `start` at once per client address (the proxy's `X-Forwarded-For`); a new one past it closes that client's oldest idle socket with 1013 (`RUNTIME_ERR_UNSTARTED_EVICTED`), and all clients together hold at most 4× as many (past that, the client holding the most loses its oldest), so idle sockets never keep real calls out",
  ),
  /** A started stream with no caller audio this long is ended (1008, MEDIA_ERR_NO_MEDIA). */
  noMediaTimeoutMs: env.int(
    'NO_MEDIA_TIMEOUT_MS',
    5000,
    { min: 100, max: 600_000 },
    'a started stream with no caller audio this long is closed with 1008 `MEDIA_ERR_NO_MEDIA` (Twilio sends audio every 20 ms for the whole call)',
  ),
  /** A sent mark not acked this long means the caller stopped reading: shed (1013). */
  stuckReaderMs: env.int(
    'STUCK_READER_MS',
    5000,
    { min: 100, max: 600_000 },
    "a mark sent to the caller and not acked this long means the caller stopped reading: it is shed with 1013 (reason `slow-reader`), whatever the heartbeat and the kernel's socket buffers",
  ),
  /**
   * `<Connect action>`: new streams offered in a row for one call whose streams each lived less
   * than `streamStableMs`, before the action handler gives up. 0 (the default) leaves `action`
   * out of the TwiML: an agent's hang-up closes the stream like a restart does, and Twilio does
   * not tell the action handler which it was (README, "Proxy restarts and <Connect action>").
   */
  streamReconnectLimit: env.int(
    'STREAM_RECONNECT_LIMIT',
    0,
    { min: 0, max: 100 },
    '`<Connect action>`: with N > 0 the TwiML carries `action="<PUBLIC_URL>/media-stream/action?…"`, and when a stream ends while the call goes on (a proxy or worker closed it with a close frame) the action handler offers a fresh stream, up to N times in a row for streams that each lived less than `STREAM_STABLE_MS`; then it says sorry and hangs up. Off by default: see [Proxy restarts and `<Connect action>`](#proxy-restarts-and-connect-action)',
    { shown: '`0` (off)' },
  ),
  /** A stream that lived this long resets the reconnect count. */
  streamStableMs: env.int(
    'STREAM_STABLE_MS',
    30_000,
    { min: 0, max: 86_400_000 },
    'a stream that lived this long resets the reconnect count',
  ),
});

/**
 * The table's values, less the production switches (read only for the checks below), with
 * `workerId` always set.
 */
export type MediaConfig = Omit<
  EnvValues<typeof MEDIA_ENV>,
  'nodeEnv' | 'allowUnsignedWebhooks' | 'sansPbxAllowUnauthenticated' | 'workerId'
> & { workerId: string };

export interface MediaConfigDefaults {
  /** WORKER_ID fallback; main.ts passes `<hostname>-<pid>`. */
  workerId: string;
}

/**
 * Parses the media worker's environment once, before anything is bound. Every problem is
 * reported in one `ConfigError` (CONFIG_ERR_INVALID); the result is deep-frozen.
 */
export function loadMediaConfig(vars: Env, defaults: MediaConfigDefaults): Readonly<MediaConfig> {
  const r = new EnvReader(vars);
  const { nodeEnv, allowUnsignedWebhooks, sansPbxAllowUnauthenticated, workerId, ...values } =
    readEnv(MEDIA_ENV, r);
  const { publicUrl, twilioAuthToken, sansPbxToken } = values;
  // Rebuilding the signed URL from Host/X-Forwarded-* behind a TLS terminator gets the scheme or
  // port wrong (the terminator's hop is plain HTTP on another port, while Twilio signed the public
  // https URL), so validation needs the configured public origin.
  if (twilioAuthToken !== undefined && publicUrl === undefined) {
    r.problem('TWILIO_AUTH_TOKEN needs PUBLIC_URL (the origin Twilio signs webhook URLs with)');
  }
  // In production an open webhook or stream endpoint must be a decision, never an omission.
  if (nodeEnv === 'production') {
    if (publicUrl === undefined) {
      r.problem(
        'NODE_ENV=production needs PUBLIC_URL (the TwiML stream host is never taken from Host)',
      );
    }
    if (twilioAuthToken === undefined && !allowUnsignedWebhooks) {
      r.problem(
        'NODE_ENV=production needs TWILIO_AUTH_TOKEN, or ALLOW_UNSIGNED_WEBHOOKS=true to accept unsigned webhooks',
      );
    }
    if (values.sansPbxEnabled && sansPbxToken === undefined && !sansPbxAllowUnauthenticated) {
      r.problem(
        'NODE_ENV=production with SANSPBX_ENABLED needs SANSPBX_TOKEN, or SANSPBX_ALLOW_UNAUTHENTICATED=true',
      );
    }
  }
  const config: MediaConfig = { ...values, workerId: workerId ?? defaults.workerId };
  r.done();
  return deepFreeze(config);
}
