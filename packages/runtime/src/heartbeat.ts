import { WebSocket } from 'ws';
import type { Logger } from './logger.js';

/** The part of a `ws` WebSocket the heartbeat touches. */
export interface HeartbeatSocket {
  readonly readyState: number;
  ping(): void;
  terminate(): void;
}

export interface HeartbeatEntry {
  readonly ws: HeartbeatSocket;
  /** Pong seen since the last ping; the owner sets it on 'pong'. */
  alive: boolean;
  readonly session?: { readonly id: string } | undefined;
}

export interface HeartbeatOptions {
  intervalMs: number;
  log: Logger;
  countError: (code: string) => void;
  /** The sockets to watch, read afresh on every tick. */
  entries: () => Iterable<HeartbeatEntry>;
}

/**
 * One timer for all sockets, so the cost does not grow with the number of sessions. Each tick
 * pings every open socket; one that has not answered the previous tick's ping with a pong is
 * terminated: its peer is gone without a FIN (a dropped NAT entry, a dead host) and TCP alone
 * would keep the session open for minutes.
 */
export class Heartbeat {
  readonly #options: HeartbeatOptions;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: HeartbeatOptions) {
    this.#options = options;
  }

  start(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.beat(), this.#options.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One tick: terminates sockets that missed the previous ping's pong, pings the rest. */
  beat(): void {
    const { log, countError } = this.#options;
    for (const entry of this.#options.entries()) {
      const { ws } = entry;
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (!entry.alive) {
        log.info('heartbeat timeout, terminating', {
          code: 'RUNTIME_ERR_HEARTBEAT_TIMEOUT',
          sessionId: entry.session?.id,
        });
        countError('RUNTIME_ERR_HEARTBEAT_TIMEOUT');
        ws.terminate();
        continue;
      }
      entry.alive = false;
      ws.ping();
    }
  }
}
