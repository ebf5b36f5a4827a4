import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Lifecycle, errorCode, type Logger, type Service } from '@callgate/runtime';
import type { BackendEntry, PoolName } from './config.js';
import type { ProxyMetrics } from './metrics.js';
import type { Pool } from './pool.js';

/** Resolves a host name to every address it has right now. */
export type Resolver = (hostname: string) => Promise<string[]>;

/** getaddrinfo, all records: sees /etc/hosts, Docker's embedded DNS and Kubernetes headless Services. */
export const dnsResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true })).map((a) => a.address);

export interface MembershipOptions {
  pools: ReadonlyMap<PoolName, Pool>;
  entries: Readonly<Record<PoolName, readonly BackendEntry[]>>;
  intervalMs: number;
  resolve?: Resolver;
  logger: Logger;
  metrics: ProxyMetrics;
}

/**
 * Keeps each pool's backends in line with its configured entries. An IP entry is one backend for
 * good; a name is re-resolved every `intervalMs` to all its addresses, so `docker compose --scale`
 * or a headless Service adds and removes workers without a restart. A failed or empty lookup keeps
 * the last known addresses: a DNS hiccup must not empty a pool.
 */
export class Membership implements Service {
  readonly #options: MembershipOptions;
  readonly #resolve: Resolver;
  readonly #lifecycle = new Lifecycle('membership');
  readonly #failing = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(options: MembershipOptions) {
    this.#options = options;
    this.#resolve = options.resolve ?? dnsResolver;
  }

  start(): Promise<void> {
    return this.#lifecycle.start(async () => {
      for (const [name, entries] of this.#entries()) {
        for (const e of entries) {
          if (isIP(e.host) !== 0) this.#pool(name).setMembers(e.source, [e]);
        }
      }
      await this.refresh();
      this.#schedule();
    });
  }

  /** Re-resolves every name entry once; resolves when all pools are updated. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#refreshAll().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
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
    await this.#refreshing;
  }

  #schedule(): void {
    if (!this.#hasNames()) return;
    this.#timer = setTimeout(() => {
      void this.refresh().then(() => {
        if (this.#lifecycle.state === 'running') this.#schedule();
      });
    }, this.#options.intervalMs);
  }

  async #refreshAll(): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const [name, entries] of this.#entries()) {
      for (const e of entries) if (isIP(e.host) === 0) jobs.push(this.#refreshEntry(name, e));
    }
    await Promise.all(jobs);
  }

  async #refreshEntry(pool: PoolName, entry: BackendEntry): Promise<void> {
    const { logger, metrics } = this.#options;
    let addresses: string[];
    try {
      addresses = [...new Set(await this.#resolve(entry.host))];
      if (addresses.length === 0)
        throw Object.assign(new Error('no addresses'), { code: 'ENODATA' });
    } catch (err) {
      metrics.error('PROXY_ERR_DNS_RESOLVE');
      // One line when a name starts failing, not one per interval.
      if (!this.#failing.has(entry.source)) {
        this.#failing.add(entry.source);
        logger.warn('backend name did not resolve, keeping the last known addresses', {
          code: 'PROXY_ERR_DNS_RESOLVE',
          pool,
          entry: entry.source,
          cause: errorCode(err),
        });
      }
      return;
    }
    if (this.#failing.delete(entry.source)) {
      logger.info('backend name resolves again', { pool, entry: entry.source });
    }
    if (this.#lifecycle.state === 'closing' || this.#lifecycle.state === 'closed') return;
    this.#pool(pool).setMembers(
      entry.source,
      addresses.map((host) => ({ host, port: entry.port })),
    );
  }

  #entries(): [PoolName, readonly BackendEntry[]][] {
    return Object.entries(this.#options.entries) as [PoolName, readonly BackendEntry[]][];
  }

  #hasNames(): boolean {
    return this.#entries().some(([, entries]) => entries.some((e) => isIP(e.host) === 0));
  }

  #pool(name: PoolName): Pool {
    const pool = this.#options.pools.get(name);
    if (!pool) throw new Error(`no pool "${name}"`);
    return pool;
  }
}
