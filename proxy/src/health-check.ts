import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Lifecycle, errorCode, type Logger, type Service } from '@callgate/runtime';
import type { Backend, HealthThresholds, ProbeResult } from './backend.js';
import type { ProxyMetrics } from './metrics.js';
import type { Pool } from './pool.js';

export interface HealthCheckerOptions {
  pools: readonly Pool[];
  intervalMs: number;
  timeoutMs: number;
  thresholds: HealthThresholds;
  logger: Logger;
  metrics: ProxyMetrics;
}

/**
 * Active health checks: every `intervalMs`, one `GET /readyz` per backend. 200 means up, 503 means
 * draining (no new tunnels, live ones untouched), anything else (an error, a timeout, another
 * status) counts toward `down`. Rounds never overlap: the next starts `intervalMs` after the
 * previous one finished.
 */
export class HealthChecker implements Service {
  readonly #options: HealthCheckerOptions;
  readonly #lifecycle = new Lifecycle('health checker');
  readonly #inFlight = new Set<() => void>();
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;

  constructor(options: HealthCheckerOptions) {
    this.#options = options;
  }

  start(): Promise<void> {
    return this.#lifecycle.start(async () => {
      // The first round runs in the background: a slow backend must not delay the listener.
      this.#loop();
    });
  }

  /** Probes every backend once; resolves when all probes are done. */
  checkNow(): Promise<void> {
    this.#round ??= this.#probeAll().finally(() => {
      this.#round = undefined;
    });
    return this.#round;
  }

  close(): Promise<void> {
    return this.#lifecycle.close(() => this.#stop());
  }

  destroy(): Promise<void> {
    return this.#lifecycle.destroy(() => this.#stop());
  }

  async #stop(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const abort of this.#inFlight) abort();
    await this.#round;
  }

  #loop(): void {
    void this.checkNow().then(() => {
      const state = this.#lifecycle.state;
      if (state !== 'running' && state !== 'starting') return;
      this.#timer = setTimeout(() => this.#loop(), this.#options.intervalMs);
    });
  }

  async #probeAll(): Promise<void> {
    const probes: Promise<void>[] = [];
    for (const pool of this.#options.pools) {
      for (const backend of pool.backends) {
        if (!backend.isRemoved) probes.push(this.#check(backend));
      }
    }
    await Promise.all(probes);
  }

  async #check(backend: Backend): Promise<void> {
    const startedAt = performance.now();
    const { result, detail } = await this.#probe(backend);
    if (this.#lifecycle.state === 'closing' || this.#lifecycle.state === 'closed') return;
    backend.rememberProbe({
      result,
      detail,
      latencyMs: Math.round((performance.now() - startedAt) * 10) / 10,
      at: Date.now(),
    });
    if (result === 'failed') this.#options.metrics.error('PROXY_ERR_HEALTH_CHECK');
    const before = backend.state;
    backend.recordProbe(result, this.#options.thresholds);
    // The state change itself is logged by whoever watches the pool; say why here, once.
    if (result === 'failed' && backend.state === 'down' && before !== 'down') {
      this.#options.logger.warn('health check failed', {
        code: 'PROXY_ERR_HEALTH_CHECK',
        pool: backend.pool,
        backend: backend.id,
        detail,
      });
    }
  }

  #probe(backend: Backend): Promise<{ result: ProbeResult; detail: string }> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (result: ProbeResult, detail: string): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.#inFlight.delete(abort);
        req.destroy();
        resolve({ result, detail });
      };
      const req = request({
        host: backend.host,
        port: backend.port,
        path: '/readyz',
        method: 'GET',
        agent: false,
        headers: { 'user-agent': 'callgate-proxy-health-check', connection: 'close' },
      });
      const abort = (): void => finish('failed', 'aborted');
      const timer = setTimeout(
        () => finish('failed', `timeout after ${this.#options.timeoutMs} ms`),
        this.#options.timeoutMs,
      );
      this.#inFlight.add(abort);
      req.on('error', (err) => finish('failed', errorCode(err)));
      req.on('response', (res) => {
        res.on('error', () => {});
        res.resume();
        const status = res.statusCode ?? 0;
        if (status === 200) finish('ready', '200');
        else if (status === 503) finish('draining', '503');
        else finish('failed', `status ${status}`);
      });
      req.end();
    });
  }
}
