import type { AddressInfo } from 'node:net';
import {
  Lifecycle,
  createRegistry,
  type DrainableService,
  type Logger,
  type Registry,
} from '@callgate/runtime';
import { AdminServer } from './admin.js';
import type { Backend } from './backend.js';
import { POOL_NAMES, type PoolName, type ProxyConfig } from './config.js';
import { Connector } from './connector.js';
import { ClientLimits } from './client-limits.js';
import { Router } from './router.js';
import { HealthChecker } from './health-check.js';
import { Listener } from './listener.js';
import { Membership, type Resolver } from './membership.js';
import type { ProxyMetrics } from './metrics.js';
import { Pool } from './pool.js';
import { RouteTable } from './route-table.js';
import { SignatureCheck } from './signature.js';
import { StatusMetrics, collectStatus, type ProxyStatus } from './status.js';
import { HttpProxyAdapter } from './http-proxy-adapter.js';
import { TunnelTracker } from './tunnel-tracker.js';

export type ProxyServerConfig = Omit<ProxyConfig, 'logLevel'>;

export interface ProxyServerOptions {
  config: Readonly<ProxyServerConfig>;
  logger: Logger;
  /** A fresh one by default; main.ts adds the default process metrics to it. */
  registry?: Registry;
  /** Host name → addresses, for DNS membership; `dns.lookup` by default. */
  resolve?: Resolver;
}

export interface BackendSnapshot {
  id: string;
  state: string;
  active: number;
  isRemoved: boolean;
}

/**
 * The proxy as one service: the public listener, the admin listener, the pools with their
 * membership and health checks, and the tunnels. Starts admin → membership → health checks →
 * listener, and closes in reverse after the tunnels have drained.
 */
export class ProxyServer implements DrainableService {
  readonly registry: Registry;
  readonly metrics: ProxyMetrics;
  readonly pools: ReadonlyMap<PoolName, Pool>;
  readonly tunnels: TunnelTracker;
  readonly #config: Readonly<ProxyServerConfig>;
  readonly #logger: Logger;
  /** Per-client-address limits of the public port. */
  readonly clientLimits: ClientLimits;
  readonly #listener: Listener;
  readonly #admin: AdminServer;
  readonly #membership: Membership;
  readonly #health: HealthChecker;
  readonly #lifecycle = new Lifecycle('proxy');
  readonly #startedAt = Date.now();
  readonly #statusMetrics: StatusMetrics;
  #isDraining = false;

  constructor(options: ProxyServerOptions) {
    const { config, logger } = options;
    this.#config = config;
    this.#logger = logger;
    this.registry = options.registry ?? createRegistry();
    this.#statusMetrics = new StatusMetrics(this.registry);
    this.metrics = this.#statusMetrics;
    this.metrics.draining.set(0);
    const pools = new Map<PoolName, Pool>();
    for (const name of POOL_NAMES) pools.set(name, this.#watch(new Pool(name)));
    this.pools = pools;
    this.tunnels = new TunnelTracker({
      idleTimeoutMs: config.tunnelIdleTimeoutMs,
      metrics: this.metrics,
    });

    const signature =
      config.signatureMode !== 'off' && config.twilioAuthToken && config.publicUrl
        ? new SignatureCheck({
            authToken: config.twilioAuthToken,
            publicUrl: config.publicUrl,
            mode: config.signatureMode,
          })
        : undefined;
    const clientLimits = (this.clientLimits = new ClientLimits({
      maxConnectionsPerClient: config.maxConnectionsPerClient,
      maxPendingPerClient: config.maxPendingPerClient,
      trustedProxyCidrs: config.trustedProxyCidrs,
      clientAddressHeader: config.clientAddressHeader,
      metrics: this.metrics,
      logger,
    }));
    const router = new Router({
      clientLimits,
      firstByteTimeoutMs: config.firstByteTimeoutMs,
      retryBodyBytes: config.retryBodyBytes,
      requestTimeoutMs: config.requestTimeoutMs,
      routes: new RouteTable({ sansPbxEnabled: config.sansPbxEnabled }),
      pools,
      tracker: this.tunnels,
      connector: new Connector({
        timeoutMs: config.upstreamConnectTimeoutMs,
        logger,
        metrics: this.metrics,
      }),
      adapter: new HttpProxyAdapter(),
      signature,
      publicUrl: config.publicUrl,
      maxTunnels: config.maxTunnels,
      upstreamHandshakeTimeoutMs: config.upstreamHandshakeTimeoutMs,
      continuity: config.callContinuity
        ? {
            secret: config.callTokenSecret,
            maxFrameBytes: config.maxFrameBytes,
            moveTimeoutMs: config.callMoveTimeoutMs,
            moveBufferBytes: config.callMoveBufferBytes,
          }
        : undefined,
      isDraining: () => this.#isDraining,
      metrics: this.metrics,
      logger,
    });
    this.#listener = new Listener({
      host: config.host,
      port: config.port,
      maxHeaderBytes: config.maxHeaderBytes,
      headersTimeoutMs: config.headersTimeoutMs,
      requestTimeoutMs: config.requestTimeoutMs,
      maxConnections: config.maxConnections,
      clientLimits,
      logger,
      metrics: this.metrics,
      onRequest: (req, res) => router.request(req, res),
      onUpgrade: (req, socket, head) => router.upgrade(req, socket, head),
    });
    this.#admin = new AdminServer({
      host: config.adminHost,
      port: config.adminPort,
      registry: this.registry,
      isReady: () => this.isReady,
      adminToken: config.adminToken,
      status: () => this.status(),
      actions: {
        drain: (pool, id) => this.#operator(pool, id, 'drain'),
        undrain: (pool, id) => this.#operator(pool, id, 'undrain'),
        move: (pool, id) =>
          this.#backend(pool, id) === undefined ? undefined : this.moveCalls(pool as PoolName, id),
      },
    });
    const membershipOptions = {
      pools,
      entries: config.pools,
      intervalMs: config.backendResolveIntervalMs,
      logger,
      metrics: this.metrics,
    };
    this.#membership = new Membership(
      options.resolve ? { ...membershipOptions, resolve: options.resolve } : membershipOptions,
    );
    this.#health = new HealthChecker({
      pools: [...pools.values()],
      intervalMs: config.healthCheckIntervalMs,
      timeoutMs: config.healthCheckTimeoutMs,
      thresholds: {
        healthy: config.healthCheckHealthyThreshold,
        unhealthy: config.healthCheckUnhealthyThreshold,
      },
      logger,
      metrics: this.metrics,
    });
  }

  /** Running and not draining: what `/readyz` says. */
  get isReady(): boolean {
    return this.#lifecycle.state === 'running' && !this.#isDraining;
  }

  get isDraining(): boolean {
    return this.#isDraining;
  }

  /** How many `upgrade` listeners the public server has (always exactly one). */
  get upgradeListenerCount(): number {
    return this.#listener.upgradeListenerCount;
  }

  start(): Promise<void> {
    return this.#lifecycle.start(async () => {
      try {
        await this.#admin.start();
        await this.#membership.start();
        await this.#health.start();
        await this.#listener.start();
      } catch (err) {
        await this.#stopChildren('destroy');
        throw err;
      }
      for (const [name, pool] of this.pools) {
        if (this.#config.pools[name].length === 0) {
          this.#logger.warn('pool has no backends configured; its routes answer 503', {
            pool: pool.name,
          });
        }
      }
    });
  }

  /** The public listener's address. */
  address(): AddressInfo {
    return this.#listener.address();
  }

  adminAddress(): AddressInfo {
    return this.#admin.address();
  }

  /** Open sockets on the public port, tunnels included. */
  connections(): Promise<number> {
    return this.#listener.getConnections();
  }

  backends(pool: PoolName): BackendSnapshot[] {
    return (this.pools.get(pool)?.backends ?? []).map((b) => ({
      id: b.id,
      state: b.state,
      active: b.active,
      isRemoved: b.isRemoved,
    }));
  }

  /** What the admin status page and `/status` show. */
  status(): Promise<ProxyStatus> {
    return collectStatus({
      pools: this.pools,
      registry: this.registry,
      tunnels: () => this.tunnels.tunnels,
      recentErrors: () => this.#statusMetrics.recentErrors,
      isDraining: () => this.#isDraining,
      startedAt: this.#startedAt,
    });
  }

  #backend(pool: string, id: string): Backend | undefined {
    return (this.pools as ReadonlyMap<string, Pool>).get(pool)?.get(id);
  }

  /** Operator drain/undrain from the admin port; undefined for an unknown backend. */
  #operator(pool: string, id: string, action: 'drain' | 'undrain'): boolean | undefined {
    const backend = this.#backend(pool, id);
    if (!backend) return undefined;
    const changed = action === 'drain' ? backend.drainByOperator() : backend.undrainByOperator();
    this.#logger.info(
      action === 'drain' ? 'backend drained by operator' : 'backend undrained by operator',
      {
        pool,
        backend: id,
        state: backend.state,
        changed,
      },
    );
    return changed;
  }

  /**
   * Moves every live call on one backend to other workers now (an operator's drain that does not
   * wait). Returns how many calls started moving; calls that cannot move (untracked) stay.
   */
  moveCalls(pool: PoolName, backendId: string): number {
    return this.#moveCallsOff(this.pools.get(pool)?.get(backendId), 'operator');
  }

  #moveCallsOff(backend: Backend | undefined, reason: 'operator' | 'backend-down'): number {
    if (backend === undefined) return 0;
    let moved = 0;
    for (const tunnel of this.tunnels.tunnels) {
      if (tunnel.backend === backend && tunnel.move(reason)) moved++;
    }
    return moved;
  }

  /** Readiness turns 503 and the listener stops accepting; live tunnels continue. Idempotent. */
  beginDrain(): void {
    if (this.#isDraining) return;
    this.#isDraining = true;
    this.metrics.draining.set(1);
    this.#listener.stopAccepting();
    this.#logger.info('draining: readiness 503, no new connections', {
      tunnels: this.tunnels.size,
    });
  }

  /** Drains: resolves once every tunnel has ended and everything is closed. */
  close(): Promise<void> {
    return this.#lifecycle.close(async () => {
      this.beginDrain();
      await this.tunnels.waitForEmpty();
      await this.#stopChildren('close');
    });
  }

  /** Destroys every tunnel and socket now. */
  destroy(): Promise<void> {
    return this.#lifecycle.destroy(async () => {
      this.#isDraining = true;
      this.metrics.draining.set(1);
      const open = this.tunnels.size;
      if (open > 0) {
        this.#logger.warn('destroying open tunnels', {
          code: 'PROXY_ERR_DRAIN_FORCED',
          tunnels: open,
        });
      }
      // Media calls get a close frame, so Twilio's <Connect action> can bring them back.
      for (const tunnel of this.tunnels.tunnels) tunnel.closeForRestart();
      // Destroyed sockets report 'close' a loop turn later; wait, so every tunnel is logged.
      await this.tunnels.waitForEmpty();
      await this.#stopChildren('destroy');
    });
  }

  async #stopChildren(how: 'close' | 'destroy'): Promise<void> {
    await this.#listener[how]();
    await this.#health[how]();
    await this.#membership[how]();
    await this.#admin[how]();
  }

  /** Backend changes become metrics and one log line each. */
  #watch(pool: Pool): Pool {
    const metrics = this.metrics;
    const log = this.#logger;
    pool.on('added', (b) => {
      metrics.setBackendState(pool.name, b.id, b.state);
      log.info('backend added', { pool: pool.name, backend: b.id, state: b.state });
    });
    pool.on('state', (b, previous, reason) => {
      metrics.setBackendState(pool.name, b.id, b.state);
      const fields = { pool: pool.name, backend: b.id, from: previous, to: b.state, reason };
      if (b.state !== 'down') {
        log.info('backend state', fields);
        return;
      }
      log.warn('backend state', fields);
      // A hung worker keeps its sockets open: its calls move once health checks give up on it.
      const moving = this.#moveCallsOff(b, 'backend-down');
      if (moving > 0)
        log.warn('moving calls off a backend marked down', { ...fields, calls: moving });
    });
    pool.on('removed', (b) => {
      metrics.removeBackend(pool.name, b.id);
      log.info('backend removed', { pool: pool.name, backend: b.id });
    });
    return pool;
  }
}
