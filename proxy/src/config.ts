import { cidrProblems } from './client-limits.js';
import {
  EnvReader,
  deepFreeze,
  defineEnv,
  env,
  parseHostPort,
  readEnv,
  type Env,
  type EnvValues,
} from '@callgate/runtime';

/** The two pools the route table can name. */
export const POOL_NAMES = ['media', 'test-agent'] as const;
export type PoolName = (typeof POOL_NAMES)[number];

export type SignatureMode = 'enforce' | 'log' | 'off';

/** One `host:port` item of `MEDIA_BACKENDS` / `TEST_AGENT_BACKENDS`. */
export interface BackendEntry {
  /** As written, e.g. `media:8080`. */
  readonly source: string;
  readonly host: string;
  readonly port: number;
}

const HOUR_MS = 3_600_000;

/**
 * The proxy's environment, one entry per variable in the order the loader has always read them
 * (problems are reported in this order): the key is the config field, then the variable, how it is
 * read, its default and the README table's line (test/deploy/docs.test.ts compares both ways).
 */
export const PROXY_ENV = defineEnv({
  mediaBackends: env.list(
    'MEDIA_BACKENDS',
    'media workers (at least one of the two lists is required), comma-separated `host:port`; a host name is re-resolved to all its addresses',
  ),
  testAgentBackends: env.list('TEST_AGENT_BACKENDS', 'test-agent workers, same format'),
  /** Public origin; the signed URL and `X-Forwarded-Proto` come from it. */
  publicUrl: env.optionalUrl(
    'PUBLIC_URL',
    ['https:', 'http:', 'wss:', 'ws:'],
    'public origin, e.g. `https://voice.example.com`; required with `TWILIO_AUTH_TOKEN`',
    { check: originProblem },
  ),
  twilioAuthToken: env.optionalString(
    'TWILIO_AUTH_TOKEN',
    'enables `X-Twilio-Signature` checks on media upgrades',
  ),
  signatureMode: env.oneOf(
    'TWILIO_SIGNATURE_MODE',
    ['enforce', 'log', 'off'],
    (earlier): SignatureMode => (earlier.twilioAuthToken === undefined ? 'off' : 'enforce'),
    '`enforce` (403), `log` (log and count, then forward) or `off`',
    { shown: '`enforce` with a token, else `off`' },
  ),
  headersTimeoutMs: env.int(
    'HEADERS_TIMEOUT_MS',
    10_000,
    { min: 100, max: HOUR_MS },
    'time to receive request headers (slowloris guard)',
  ),
  requestTimeoutMs: env.int(
    'REQUEST_TIMEOUT_MS',
    15_000,
    { min: 100, max: HOUR_MS },
    'time to receive a whole plain HTTP request; a client whose body is slower gets 408 (`PROXY_ERR_CLIENT_TIMEOUT`), never a 504 blaming the worker',
  ),
  /** Shared with the media workers: signs the resume vouch of a moved call. */
  callTokenSecret: env.optionalString(
    'CALL_TOKEN_SECRET',
    "the media workers' secret; the proxy signs the resume vouch of a moved call with it. Give the proxy the same value as the workers, or they refuse moved calls (403 `MEDIA_ERR_BAD_RESUME_VOUCH`)",
    { minLength: 16 },
  ),
  /** Bearer token for the admin port's POST actions; needed unless the admin listener is loopback. */
  adminToken: env.optionalString(
    'ADMIN_TOKEN',
    "bearer token (16+ characters) for the admin port's POST actions (drain, undrain, move); without it they work only when `ADMIN_HOST` is a loopback address",
    { minLength: 16 },
  ),
  logLevel: env.logLevel(),
  /** Load balancers whose CLIENT_ADDRESS_HEADER names the client. */
  trustedProxyCidrs: env.list(
    'TRUSTED_PROXY_CIDRS',
    'comma-separated addresses/CIDRs of the load balancers in front; only from these is `CLIENT_ADDRESS_HEADER` believed (its rightmost untrusted entry is the client). Connections from them are not counted per socket',
  ),
  host: env.string('HOST', '0.0.0.0', 'public listener address'),
  port: env.port('PORT', 8080, 'public listener port (Twilio, browsers)'),
  adminHost: env.string(
    'ADMIN_HOST',
    '127.0.0.1',
    'admin listener address (status page `/`, `/status`, `/metrics`, `/healthz`, `/readyz`, backend actions)',
  ),
  adminPort: env.port('ADMIN_PORT', 9090, 'admin listener port'),
  /** How often host names in the backend lists are re-resolved (DNS membership). */
  backendResolveIntervalMs: env.int(
    'BACKEND_RESOLVE_INTERVAL_MS',
    5000,
    { min: 100, max: HOUR_MS },
    'how often backend host names are re-resolved (DNS membership)',
  ),
  healthCheckIntervalMs: env.int(
    'HEALTH_CHECK_INTERVAL_MS',
    2000,
    { min: 50, max: HOUR_MS },
    'active `/readyz` probe interval per backend',
  ),
  healthCheckTimeoutMs: env.int(
    'HEALTH_CHECK_TIMEOUT_MS',
    1000,
    { min: 10, max: 60_000 },
    'probe timeout',
  ),
  healthCheckUnhealthyThreshold: env.int(
    'HEALTH_CHECK_UNHEALTHY_THRESHOLD',
    2,
    { min: 1, max: 100 },
    'failed probes in a row before a backend is marked down',
  ),
  healthCheckHealthyThreshold: env.int(
    'HEALTH_CHECK_HEALTHY_THRESHOLD',
    2,
    { min: 1, max: 100 },
    'good probes in a row before a down backend is up again',
  ),
  /** Per backend attempt; a backend that does not accept TCP in time is skipped and marked down. */
  upstreamConnectTimeoutMs: env.int(
    'UPSTREAM_CONNECT_TIMEOUT_MS',
    2000,
    { min: 10, max: 60_000 },
    'per-backend TCP connect attempt; then the next backend is tried',
  ),
  /** From the upgrade request sent to the worker until its 101 (or other answer). */
  upstreamHandshakeTimeoutMs: env.int(
    'UPSTREAM_HANDSHAKE_TIMEOUT_MS',
    5000,
    { min: 10, max: 120_000 },
    'deadline for a worker to answer the WebSocket handshake',
  ),
  tunnelIdleTimeoutMs: env.int(
    'TUNNEL_IDLE_TIMEOUT_MS',
    60_000,
    { min: 100, max: 24 * HOUR_MS },
    'a tunnel with no bytes either way for this long is cut',
  ),
  maxTunnels: env.int(
    'MAX_TUNNELS',
    10_000,
    { min: 1, max: 1_000_000 },
    'open tunnels before new upgrades get 503',
  ),
  /** Accepted sockets before new ones are dropped at accept (`server.maxConnections`). */
  maxConnections: env.int(
    'MAX_CONNECTIONS',
    20_000,
    { min: 1, max: 1_000_000 },
    'open sockets on the public port before new ones are dropped',
  ),
  maxHeaderBytes: env.int(
    'MAX_HEADER_BYTES',
    16_384,
    { min: 1024, max: 1_048_576 },
    'request header size limit (431 above)',
  ),
  drainTimeoutMs: env.int(
    'DRAIN_TIMEOUT_MS',
    3_600_000,
    { min: 0, max: 24 * HOUR_MS },
    'on SIGTERM, how long live tunnels may continue',
  ),
  sansPbxEnabled: env.bool(
    'SANSPBX_ENABLED',
    true,
    'route the bare `/media-stream` path (SansPBX); `false` answers 404',
  ),
  /** Track frames on the media route and move live calls off a worker that goes. */
  callContinuity: env.bool(
    'CALL_CONTINUITY',
    true,
    'track WebSocket frames on the media route and move a live call to another worker when its worker dies, hangs, drains or is moved by an operator; `false` makes the media route a plain relay',
  ),
  /** A move that has found no worker by then closes the call toward the caller (1011). */
  callMoveTimeoutMs: env.int(
    'CALL_MOVE_TIMEOUT_MS',
    5000,
    { min: 100, max: 120_000 },
    'a moving call that no worker took by then is closed toward the caller with 1011',
  ),
  /** Caller bytes held while a call moves; beyond it the oldest frames are dropped. */
  callMoveBufferBytes: env.int(
    'CALL_MOVE_BUFFER_BYTES',
    65_536,
    { min: 1024, max: 16_777_216 },
    'caller audio held while a call moves (about 2 s); beyond it the oldest frames are dropped',
  ),
  /** Largest WebSocket frame payload tracked on the media route. */
  maxFrameBytes: env.int(
    'MAX_FRAME_BYTES',
    65_536,
    { min: 1024, max: 16_777_216 },
    'largest WebSocket frame tracked on the media route; a caller frame above it is refused (1009), a worker frame above it turns tracking off for that call',
  ),
  /** Open connections per client address (0: off). */
  maxConnectionsPerClient: env.int(
    'MAX_CONNECTIONS_PER_CLIENT',
    5000,
    { min: 0, max: 1_000_000 },
    "open connections (tunnels included) per client address; extra ones are dropped at accept (`PROXY_ERR_CLIENT_LIMIT`); behind a trusted balancer, requests and tunnels per client get 429. `0` turns it off. Twilio opens every call's stream from a few addresses: keep it above your calls per proxy",
  ),
  /** Connections per client address still sending request headers (0: off). */
  maxPendingPerClient: env.int(
    'MAX_PENDING_PER_CLIENT',
    32,
    { min: 0, max: 1_000_000 },
    'connections per client address still sending their request headers (handshake floods, slowloris); extra ones are dropped at accept. `0` turns it off',
  ),
  /** Lower-cased by the loader (Node's header names are). */
  clientAddressHeader: env.string(
    'CLIENT_ADDRESS_HEADER',
    'x-forwarded-for',
    'the header a trusted balancer names the client in',
  ),
  /** A plain request's worker must send its first response byte within this. */
  firstByteTimeoutMs: env.int(
    'FIRST_BYTE_TIMEOUT_MS',
    2000,
    { min: 10, max: 120_000 },
    "a plain request's worker must start answering this soon after the body is in; past it the worker is marked `down` and the request goes to another worker when that is safe (body read whole, nothing answered)",
  ),
  /** Bodies up to this size are read whole first, so a request can be retried on another worker. */
  retryBodyBytes: env.int(
    'RETRY_BODY_BYTES',
    65_536,
    { min: 0, max: 10_485_760 },
    'request bodies up to this (by `Content-Length`) are read whole before forwarding, so they can be sent again; larger or chunked bodies stream through and are not retried',
  ),
});

type ProxyEnvValues = EnvValues<typeof PROXY_ENV>;

/** The table's values, with the two backend lists parsed into `pools`. */
export type ProxyConfig = Omit<ProxyEnvValues, 'mediaBackends' | 'testAgentBackends'> & {
  pools: Record<PoolName, readonly BackendEntry[]>;
};

function originProblem(url: URL): string | undefined {
  return url.pathname !== '/' || url.search !== '' || url.hash !== ''
    ? `PUBLIC_URL must be an origin without path or query, got "${url.href}"`
    : undefined;
}

/**
 * Parses the proxy's environment once, before any port is bound. Every problem is reported in one
 * `ConfigError` (CONFIG_ERR_INVALID); the result is deep-frozen.
 */
export function loadProxyConfig(vars: Env): Readonly<ProxyConfig> {
  const r = new EnvReader(vars);
  const { mediaBackends, testAgentBackends, ...values } = readEnv(PROXY_ENV, r);
  const pools = {
    media: backendList(r, 'MEDIA_BACKENDS', mediaBackends),
    'test-agent': backendList(r, 'TEST_AGENT_BACKENDS', testAgentBackends),
  };
  if (mediaBackends.length + testAgentBackends.length === 0) {
    r.problem('set MEDIA_BACKENDS and/or TEST_AGENT_BACKENDS (comma-separated host:port)');
  }
  const { publicUrl, twilioAuthToken, signatureMode } = values;
  // Twilio signs the public wss:// URL; Host and X-Forwarded-* cannot be trusted to rebuild it.
  if (twilioAuthToken !== undefined && publicUrl === undefined) {
    r.problem(
      'TWILIO_AUTH_TOKEN needs PUBLIC_URL (the public origin Twilio signs stream URLs with)',
    );
  }
  if (signatureMode !== 'off' && twilioAuthToken === undefined) {
    r.problem(`TWILIO_SIGNATURE_MODE=${signatureMode} needs TWILIO_AUTH_TOKEN`);
  }
  // Node refuses to start a server whose header deadline outlasts its request deadline.
  if (values.headersTimeoutMs > values.requestTimeoutMs) {
    r.problem('HEADERS_TIMEOUT_MS must not be larger than REQUEST_TIMEOUT_MS');
  }
  for (const problem of cidrProblems(values.trustedProxyCidrs))
    r.problem(`TRUSTED_PROXY_CIDRS: ${problem}`);
  const config: ProxyConfig = {
    ...values,
    pools,
    clientAddressHeader: values.clientAddressHeader.toLowerCase(),
  };
  r.done();
  return deepFreeze(config);
}

/** Parses one backend list (`host:port` items, duplicates dropped). */
function backendList(r: EnvReader, name: string, items: readonly string[]): BackendEntry[] {
  const entries: BackendEntry[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const hp = parseHostPort(item);
    if (!hp) {
      r.problem(`${name}: "${item}" is not host:port (IPv6 as [addr]:port)`);
      continue;
    }
    const key = `${hp.host.toLowerCase()}:${hp.port}`;
    if (seen.has(key)) continue;
    seen.add(key);
    entries.push({ source: item, host: hp.host, port: hp.port });
  }
  return entries;
}
