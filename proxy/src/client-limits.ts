import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { BlockList, isIP, type Socket } from 'node:net';
import type { Logger } from '@callgate/runtime';
import type { ProxyMetrics } from './metrics.js';
import { endSocket, rawErrorResponse, sendError } from './responses.js';

export interface ClientLimitsOptions {
  /** Open connections (tunnels included) per client address; 0 turns the limit off. */
  maxConnectionsPerClient: number;
  /**
   * Connections per client address whose request headers have not all arrived yet (slowloris,
   * handshake floods); 0 turns the limit off.
   */
  maxPendingPerClient: number;
  /** Peers whose `clientAddressHeader` is believed: the load balancers in front of the proxy. */
  trustedProxyCidrs: readonly string[];
  /** Lower-case header a trusted peer names the client in; the rightmost untrusted entry counts. */
  clientAddressHeader: string;
  metrics: ProxyMetrics;
  logger: Logger;
}

/** Parses `TRUSTED_PROXY_CIDRS` items; returns the problems (for the config reader). */
export function cidrProblems(items: readonly string[]): string[] {
  const problems: string[] = [];
  for (const item of items) {
    if (parseCidr(item) === undefined) problems.push(`"${item}" is not an address or CIDR`);
  }
  return problems;
}

function parseCidr(
  item: string,
): { address: string; prefix: number; type: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, extra] = item.split('/');
  if (extra !== undefined) return undefined;
  const family = isIP(address);
  if (family === 0) return undefined;
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || prefixText === '') {
    return undefined;
  }
  return { address, prefix, type: family === 4 ? 'ipv4' : 'ipv6' };
}

/** `::ffff:1.2.3.4` → `1.2.3.4`, so one client is one key whichever way the socket reports it. */
export function normalizeAddress(address: string | undefined): string {
  if (address === undefined) return '';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped ? mapped[1]! : address;
}

/**
 * Limits per client address at the public port, so one source cannot hold what belongs to
 * everyone: open connections and connections still sending their request headers, counted per
 * socket peer at accept (cheap refusals: the socket is dropped unanswered); behind a trusted load
 * balancer (`TRUSTED_PROXY_CIDRS`), per the client its header names, counted per request and
 * tunnel and refused with 429 (`PROXY_ERR_CLIENT_LIMIT`).
 */
export class ClientLimits {
  readonly #o: ClientLimitsOptions;
  readonly #trusted = new BlockList();
  readonly #hasTrusted: boolean;
  readonly #connections = new Map<string, number>();
  readonly #pending = new Map<string, number>();
  /** Sockets still counted as pending (headers not complete). */
  readonly #pendingSockets = new WeakMap<Socket, string>();
  /** Real clients behind a trusted peer: requests and tunnels in flight. */
  readonly #behindProxy = new Map<string, number>();

  constructor(options: ClientLimitsOptions) {
    this.#o = options;
    for (const item of options.trustedProxyCidrs) {
      const cidr = parseCidr(item);
      if (cidr) this.#trusted.addSubnet(cidr.address, cidr.prefix, cidr.type);
    }
    this.#hasTrusted = options.trustedProxyCidrs.length > 0;
  }

  /** Connections per address now open (tests, diagnostics). */
  connections(address: string): number {
    return this.#connections.get(normalizeAddress(address)) ?? 0;
  }

  isTrusted(address: string | undefined): boolean {
    if (!this.#hasTrusted || address === undefined) return false;
    const a = normalizeAddress(address);
    const family = isIP(a);
    if (family === 0) return false;
    return this.#trusted.check(a, family === 4 ? 'ipv4' : 'ipv6');
  }

  /**
   * The listener's 'connection': counts the socket against its peer address; false (the socket is
   * destroyed here) when the peer is over a limit. Trusted peers are counted per request instead.
   */
  accept(socket: Socket): boolean {
    const peer = normalizeAddress(socket.remoteAddress);
    if (this.isTrusted(peer)) return true;
    const { maxConnectionsPerClient, maxPendingPerClient } = this.#o;
    const open = this.#connections.get(peer) ?? 0;
    const pending = this.#pending.get(peer) ?? 0;
    let reason: string | undefined;
    if (maxConnectionsPerClient > 0 && open >= maxConnectionsPerClient) {
      reason = `${open} connections open from this address`;
    } else if (maxPendingPerClient > 0 && pending >= maxPendingPerClient) {
      reason = `${pending} connections from this address still sending headers`;
    }
    if (reason !== undefined) {
      this.#refused(peer, reason, 'accept');
      socket.on('error', () => undefined);
      socket.destroy();
      return false;
    }
    increment(this.#connections, peer);
    increment(this.#pending, peer);
    this.#pendingSockets.set(socket, peer);
    socket.once('close', () => {
      decrement(this.#connections, peer);
      this.headersDone(socket);
    });
    return true;
  }

  /** The socket's request headers are complete (a request or an upgrade); idempotent. */
  headersDone(socket: Socket): void {
    const peer = this.#pendingSockets.get(socket);
    if (peer === undefined) return;
    this.#pendingSockets.delete(socket);
    decrement(this.#pending, peer);
  }

  /**
   * The client a request is from: the socket peer, or, when the peer is a trusted load balancer,
   * the rightmost untrusted address in its header (earlier entries are the client's own claims).
   */
  clientOf(req: Pick<IncomingMessage, 'headers' | 'socket'>): string {
    const peer = normalizeAddress(req.socket.remoteAddress);
    if (!this.isTrusted(peer)) return peer;
    const raw = req.headers[this.#o.clientAddressHeader];
    const value = Array.isArray(raw) ? raw.join(',') : raw;
    if (value === undefined) return peer;
    const hops = value
      .split(',')
      .map((h) => normalizeAddress(h.trim()))
      .filter((h) => h !== '');
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (isIP(hop) === 0) return peer;
      if (!this.isTrusted(hop)) return hop;
    }
    return peer;
  }

  /**
   * First thing in `Router.upgrade()`. Behind a trusted peer, counts the tunnel against the
   * client its header names until the socket closes; over the limit, answers 429 on the raw socket
   * and returns false. Direct clients were counted at accept.
   */
  admitUpgrade(req: Pick<IncomingMessage, 'headers' | 'socket'>, socket: Socket): boolean {
    this.headersDone(socket);
    const release = this.#admitBehindProxy(req);
    if (release === false) {
      endSocket(socket, rawErrorResponse('PROXY_ERR_CLIENT_LIMIT', randomUUID()));
      return false;
    }
    if (release) socket.once('close', release);
    return true;
  }

  /** First thing in `Router.request()`: the same for a plain request, answered with 429. */
  admitRequest(req: IncomingMessage, res: ServerResponse): boolean {
    this.headersDone(req.socket);
    const release = this.#admitBehindProxy(req);
    if (release === false) {
      sendError(res, 'PROXY_ERR_CLIENT_LIMIT', randomUUID());
      return false;
    }
    if (release) res.once('close', release);
    return true;
  }

  /** undefined: nothing to count; false: refused; else the release. */
  #admitBehindProxy(
    req: Pick<IncomingMessage, 'headers' | 'socket'>,
  ): (() => void) | false | undefined {
    if (!this.isTrusted(req.socket.remoteAddress)) return undefined;
    const client = this.clientOf(req);
    const max = this.#o.maxConnectionsPerClient;
    const open = this.#behindProxy.get(client) ?? 0;
    if (max > 0 && open >= max) {
      this.#refused(client, `${open} requests and tunnels open from this client`, 'request');
      return false;
    }
    increment(this.#behindProxy, client);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      decrement(this.#behindProxy, client);
    };
  }

  #refused(client: string, reason: string, at: 'accept' | 'request'): void {
    this.#o.metrics.error('PROXY_ERR_CLIENT_LIMIT');
    this.#o.metrics.clientLimited.inc({ at });
    // Throttled per client by the logger: a reconnect storm is a few lines and a count.
    this.#o.logger.warn('client over its limit', {
      code: 'PROXY_ERR_CLIENT_LIMIT',
      client,
      reason,
      at,
    });
  }
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function decrement(map: Map<string, number>, key: string): void {
  const n = (map.get(key) ?? 0) - 1;
  if (n > 0) map.set(key, n);
  else map.delete(key);
}
