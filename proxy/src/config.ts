import { cidrProblems } from './client-limits.js';
import {
  EnvReader,
  deepFreeze,
  isLogLevel,
  parseHostPort,
  type Env,
  type LogLevel,
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

export interface ProxyConfig {
  host: string;
  port: number;
  adminHost: string;
  adminPort: number;
  /** Bearer token for the admin port's POST actions; needed unless the admin listener is loopback. */
  adminToken: string | undefined;
  pools: Record<PoolName, readonly BackendEntry[]>;
  /** How often host names in the backend lists are re-resolved (DNS membership). */
  backendResolveIntervalMs: number;
  healthCheckIntervalMs: number;
  healthCheckTimeoutMs: number;
  /** Consecutive failed probes before an `up` backend is marked `down`. */
  healthCheckUnhealthyThreshold: number;
  /** Consecutive good probes before a `down` backend is `up` again. */
  healthCheckHealthyThreshold: number;
  /** Per backend attempt; a backend that does not accept TCP in time is skipped and marked down. */
  upstreamConnectTimeoutMs: number;
  /** From the upgrade request sent to the worker until its 101 (or other answer). */
  upstreamHandshakeTimeoutMs: number;
  /** No bytes either way for this long ends a tunnel. */
  tunnelIdleTimeoutMs: number;
  maxTunnels: number;
  /** Accepted sockets before new ones are dropped at accept (`server.maxConnections`). */
  maxConnections: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxHeaderBytes: number;
  drainTimeoutMs: number;
  /** Public origin; the signed URL and `X-Forwarded-Proto` come from it. */
  publicUrl: URL | undefined;
  twilioAuthToken: string | undefined;
  signatureMode: SignatureMode;
  sansPbxEnabled: boolean;
  /** Track frames on the media route and move live calls off a worker that goes. */
  callContinuity: boolean;
  /** Shared with the media workers: signs the resume vouch of a moved call. */
  callTokenSecret: string | undefined;
  /** A move that has found no worker by then closes the call toward the caller (1011). */
  callMoveTimeoutMs: number;
  /** Caller bytes held while a call moves; beyond it the oldest frames are dropped. */
  callMoveBufferBytes: number;
  /** Largest WebSocket frame payload tracked on the media route. */
  maxFrameBytes: number;
  logLevel: LogLevel;
  /** Open connections per client address (0: off). */
  maxConnectionsPerClient: number;
  /** Connections per client address still sending request headers (0: off). */
  maxPendingPerClient: number;
  /** Load balancers whose CLIENT_ADDRESS_HEADER names the client. */
  trustedProxyCidrs: readonly string[];
  clientAddressHeader: string;
  /** A plain request's worker must send its first response byte within this. */
  firstByteTimeoutMs: number;
  /** Bodies up to this size are read whole first, so a request can be retried on another worker. */
  retryBodyBytes: number;
}

/** Every default in one place (the README table mirrors it). */
export const PROXY_DEFAULTS = {
  host: '0.0.0.0',
  port: 8080,
  adminHost: '127.0.0.1',
  adminPort: 9090,
  backendResolveIntervalMs: 5000,
  healthCheckIntervalMs: 2000,
  healthCheckTimeoutMs: 1000,
  healthCheckUnhealthyThreshold: 2,
  healthCheckHealthyThreshold: 2,
  upstreamConnectTimeoutMs: 2000,
  upstreamHandshakeTimeoutMs: 5000,
  tunnelIdleTimeoutMs: 60_000,
  maxTunnels: 10_000,
  maxConnections: 20_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  maxHeaderBytes: 16_384,
  drainTimeoutMs: 3_600_000,
  sansPbxEnabled: true,
  callContinuity: true,
  callMoveTimeoutMs: 5000,
  callMoveBufferBytes: 65_536,
  maxFrameBytes: 65_536,
  logLevel: 'info',
  maxConnectionsPerClient: 5000,
  maxPendingPerClient: 32,
  trustedProxyCidrs: [],
  clientAddressHeader: 'x-forwarded-for',
  firstByteTimeoutMs: 2000,
  retryBodyBytes: 65_536,
} as const;

const D = PROXY_DEFAULTS;
const HOUR_MS = 3_600_000;

/**
 * Parses the proxy's environment once, before any port is bound. Every problem is reported in one
 * `ConfigError` (CONFIG_ERR_INVALID); the result is deep-frozen.
 */
export function loadProxyConfig(env: Env): Readonly<ProxyConfig> {
  const r = new EnvReader(env);
  const pools = {
    media: backendList(r, 'MEDIA_BACKENDS'),
    'test-agent': backendList(r, 'TEST_AGENT_BACKENDS'),
  };
  if (r.list('MEDIA_BACKENDS').length + r.list('TEST_AGENT_BACKENDS').length === 0) {
    r.problem('set MEDIA_BACKENDS and/or TEST_AGENT_BACKENDS (comma-separated host:port)');
  }

  const publicUrl = r.optionalUrl('PUBLIC_URL', ['https:', 'http:', 'wss:', 'ws:']);
  if (
    publicUrl &&
    (publicUrl.pathname !== '/' || publicUrl.search !== '' || publicUrl.hash !== '')
  ) {
    r.problem(`PUBLIC_URL must be an origin without path or query, got "${publicUrl.href}"`);
  }
  const twilioAuthToken = r.optionalString('TWILIO_AUTH_TOKEN');
  // Twilio signs the public wss:// URL; Host and X-Forwarded-* cannot be trusted to rebuild it.
  if (twilioAuthToken !== undefined && publicUrl === undefined) {
    r.problem(
      'TWILIO_AUTH_TOKEN needs PUBLIC_URL (the public origin Twilio signs stream URLs with)',
    );
  }
  const signatureMode = r.oneOf(
    'TWILIO_SIGNATURE_MODE',
    ['enforce', 'log', 'off'] as const,
    twilioAuthToken === undefined ? 'off' : 'enforce',
  );
  if (signatureMode !== 'off' && twilioAuthToken === undefined) {
    r.problem(`TWILIO_SIGNATURE_MODE=${signatureMode} needs TWILIO_AUTH_TOKEN`);
  }

  const headersTimeoutMs = r.int('HEADERS_TIMEOUT_MS', D.headersTimeoutMs, {
    min: 100,
    max: HOUR_MS,
  });
  const requestTimeoutMs = r.int('REQUEST_TIMEOUT_MS', D.requestTimeoutMs, {
    min: 100,
    max: HOUR_MS,
  });
  // Node refuses to start a server whose header deadline outlasts its request deadline.
  if (headersTimeoutMs > requestTimeoutMs) {
    r.problem('HEADERS_TIMEOUT_MS must not be larger than REQUEST_TIMEOUT_MS');
  }
  const callTokenSecret = r.optionalString('CALL_TOKEN_SECRET');
  if (callTokenSecret !== undefined && callTokenSecret.length < 16) {
    r.problem('CALL_TOKEN_SECRET must be at least 16 characters');
  }
  const adminToken = r.optionalString('ADMIN_TOKEN');
  if (adminToken !== undefined && adminToken.length < 16) {
    r.problem('ADMIN_TOKEN must be at least 16 characters');
  }
  const logLevel = r.string('LOG_LEVEL', D.logLevel);
  if (!isLogLevel(logLevel)) r.problem('LOG_LEVEL must be debug, info, warn or error');

  const trustedProxyCidrs = r.list('TRUSTED_PROXY_CIDRS');
  for (const problem of cidrProblems(trustedProxyCidrs))
    r.problem(`TRUSTED_PROXY_CIDRS: ${problem}`);
  const config: ProxyConfig = {
    host: r.string('HOST', D.host),
    port: r.port('PORT', D.port),
    adminHost: r.string('ADMIN_HOST', D.adminHost),
    adminPort: r.port('ADMIN_PORT', D.adminPort),
    adminToken,
    pools,
    backendResolveIntervalMs: r.int('BACKEND_RESOLVE_INTERVAL_MS', D.backendResolveIntervalMs, {
      min: 100,
      max: HOUR_MS,
    }),
    healthCheckIntervalMs: r.int('HEALTH_CHECK_INTERVAL_MS', D.healthCheckIntervalMs, {
      min: 50,
      max: HOUR_MS,
    }),
    healthCheckTimeoutMs: r.int('HEALTH_CHECK_TIMEOUT_MS', D.healthCheckTimeoutMs, {
      min: 10,
      max: 60_000,
    }),
    healthCheckUnhealthyThreshold: r.int(
      'HEALTH_CHECK_UNHEALTHY_THRESHOLD',
      D.healthCheckUnhealthyThreshold,
      { min: 1, max: 100 },
    ),
    healthCheckHealthyThreshold: r.int(
      'HEALTH_CHECK_HEALTHY_THRESHOLD',
      D.healthCheckHealthyThreshold,
      { min: 1, max: 100 },
    ),
    upstreamConnectTimeoutMs: r.int('UPSTREAM_CONNECT_TIMEOUT_MS', D.upstreamConnectTimeoutMs, {
      min: 10,
      max: 60_000,
    }),
    upstreamHandshakeTimeoutMs: r.int(
      'UPSTREAM_HANDSHAKE_TIMEOUT_MS',
      D.upstreamHandshakeTimeoutMs,
      { min: 10, max: 120_000 },
    ),
    tunnelIdleTimeoutMs: r.int('TUNNEL_IDLE_TIMEOUT_MS', D.tunnelIdleTimeoutMs, {
      min: 100,
      max: 24 * HOUR_MS,
    }),
    maxTunnels: r.int('MAX_TUNNELS', D.maxTunnels, { min: 1, max: 1_000_000 }),
    maxConnections: r.int('MAX_CONNECTIONS', D.maxConnections, { min: 1, max: 1_000_000 }),
    headersTimeoutMs,
    requestTimeoutMs,
    maxHeaderBytes: r.int('MAX_HEADER_BYTES', D.maxHeaderBytes, { min: 1024, max: 1_048_576 }),
    drainTimeoutMs: r.int('DRAIN_TIMEOUT_MS', D.drainTimeoutMs, { min: 0, max: 24 * HOUR_MS }),
    publicUrl,
    twilioAuthToken,
    signatureMode,
    sansPbxEnabled: r.bool('SANSPBX_ENABLED', D.sansPbxEnabled),
    callContinuity: r.bool('CALL_CONTINUITY', D.callContinuity),
    callTokenSecret,
    callMoveTimeoutMs: r.int('CALL_MOVE_TIMEOUT_MS', D.callMoveTimeoutMs, {
      min: 100,
      max: 120_000,
    }),
    callMoveBufferBytes: r.int('CALL_MOVE_BUFFER_BYTES', D.callMoveBufferBytes, {
      min: 1024,
      max: 16_777_216,
    }),
    maxFrameBytes: r.int('MAX_FRAME_BYTES', D.maxFrameBytes, { min: 1024, max: 16_777_216 }),
    logLevel: isLogLevel(logLevel) ? logLevel : D.logLevel,
    maxConnectionsPerClient: r.int('MAX_CONNECTIONS_PER_CLIENT', D.maxConnectionsPerClient, {
      min: 0,
      max: 1_000_000,
    }),
    maxPendingPerClient: r.int('MAX_PENDING_PER_CLIENT', D.maxPendingPerClient, {
      min: 0,
      max: 1_000_000,
    }),
    trustedProxyCidrs,
    clientAddressHeader: r.string('CLIENT_ADDRESS_HEADER', D.clientAddressHeader).toLowerCase(),
    firstByteTimeoutMs: r.int('FIRST_BYTE_TIMEOUT_MS', D.firstByteTimeoutMs, {
      min: 10,
      max: 120_000,
    }),
    retryBodyBytes: r.int('RETRY_BODY_BYTES', D.retryBodyBytes, { min: 0, max: 10_485_760 }),
  };
  r.done();
  return deepFreeze(config);
}

function backendList(r: EnvReader, name: string): BackendEntry[] {
  const entries: BackendEntry[] = [];
  const seen = new Set<string>();
  for (const item of r.list(name)) {
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
