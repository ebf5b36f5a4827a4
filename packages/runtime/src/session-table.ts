import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { closeOrTerminate } from './close-or-terminate.js';
import { RUNTIME_ERRORS, closeOf } from './errors.js';
import type { Logger } from './logger.js';
import type { StreamServerOptions, StreamSession } from './stream-server-options.js';
import type { StreamServerMetrics } from './stream-server-metrics.js';

export interface SessionEntry {
  readonly ws: WebSocket;
  session: StreamSession | undefined;
  /** Pong seen since the last ping (the ws README heartbeat recipe). */
  alive: boolean;
  /** Settles once the session (or, when openSession threw, the socket) is over. */
  done: Promise<void>;
  /** Who opened it: the X-Forwarded-For the proxy wrote, else the socket's peer. */
  readonly client: string;
}

export interface SessionTableOptions<Ctx> {
  log: Logger;
  metrics: StreamServerMetrics;
  countError: (code: string) => void;
  /** The server's own options object, so `openSession` is still called as its method. */
  handlers: Pick<StreamServerOptions<Ctx>, 'openSession'>;
  maxBufferedBytes: number;
  closeTimeoutMs: number;
  /** Called each time a session is forgotten, so the server can notice it went idle. */
  onForget: () => void;
}

/**
 * The StreamServer's open sessions: opens them, sends with backpressure (shedding slow readers),
 * and forgets each once it is over, keeping `<prefix>_sessions_active` in step.
 */
export class SessionTable<Ctx> {
  readonly #options: SessionTableOptions<Ctx>;
  readonly #sessions = new Map<WebSocket, SessionEntry>();
  readonly #shedding = new WeakSet<WebSocket>();
  /** Cancels the terminate deadline of each socket being closed. */
  readonly #closeDeadlines = new Set<() => void>();

  constructor(options: SessionTableOptions<Ctx>) {
    this.#options = options;
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Sessions that say they have started (or cannot say). */
  get startedCount(): number {
    let n = 0;
    for (const e of this.#sessions.values()) if (e.session?.started ?? true) n++;
    return n;
  }

  /**
   * Closes a session that has not started (1013), to make room for a new socket: the oldest of
   * `client`, or without it the oldest of the client holding the most unstarted ones, so a
   * squatter opening sockets it never starts evicts its own, not a real call waiting for its
   * `start`. False when there is none to close.
   */
  evictOldestUnstarted(client?: string): boolean {
    const byClient = new Map<string, { count: number; oldest: SessionEntry }>();
    let victim: { count: number; oldest: SessionEntry } | undefined;
    for (const entry of this.#sessions.values()) {
      const session = entry.session;
      if (!session || (session.started ?? true) || this.#shedding.has(entry.ws)) continue;
      if (client !== undefined && entry.client !== client) continue;
      let held = byClient.get(entry.client);
      if (held === undefined) {
        held = { count: 0, oldest: entry };
        byClient.set(entry.client, held);
      }
      held.count++;
      if (victim === undefined || held.count > victim.count) victim = held;
    }
    if (victim === undefined) return false;
    const entry = victim.oldest;
    const session = entry.session!;
    this.#shedding.add(entry.ws);
    this.#options.countError('RUNTIME_ERR_UNSTARTED_EVICTED');
    this.#options.log.warn(
      'too many unstarted streams, closing the oldest of the client with the most',
      {
        code: 'RUNTIME_ERR_UNSTARTED_EVICTED',
        sessionId: session.id,
        client: entry.client,
        unstartedFromClient: victim.count,
      },
    );
    const close = closeOf(RUNTIME_ERRORS, 'RUNTIME_ERR_UNSTARTED_EVICTED');
    try {
      session.close(close, 'too many unstarted streams');
    } finally {
      this.#closeOrTerminate(entry.ws, close, 'too many unstarted streams');
    }
    return true;
  }

  /** Sessions that have not started (of `client`, if given), not counting those being closed. */
  unstartedCount(client?: string): number {
    let n = 0;
    for (const e of this.#sessions.values()) {
      if (client !== undefined && e.client !== client) continue;
      if (e.session && !(e.session.started ?? true) && !this.#shedding.has(e.ws)) n++;
    }
    return n;
  }

  entries(): IterableIterator<SessionEntry> {
    return this.#sessions.values();
  }

  /**
   * Sends with backpressure. If `ws.bufferedAmount > maxBufferedBytes` the peer is a slow reader:
   * the socket is closed with 1013 'slow reader' (terminated if it does not close within
   * closeTimeoutMs), counted in `<prefix>_sessions_shed_total` and
   * `errors{code=RUNTIME_ERR_SLOW_READER}`, and false is returned. Also false when the socket is
   * not open.
   */
  send(ws: WebSocket, data: string | Buffer | Uint8Array, options?: { binary?: boolean }): boolean {
    if (ws.readyState !== WebSocket.OPEN || this.#shedding.has(ws)) return false;
    if (ws.bufferedAmount > this.#options.maxBufferedBytes) {
      this.#shed(ws);
      return false;
    }
    if (options?.binary === undefined) ws.send(data);
    else ws.send(data, { binary: options.binary });
    return true;
  }

  /** Tracks a socket whose handshake is done and hands it to `openSession`. */
  open(ws: WebSocket, req: IncomingMessage, context: Ctx): void {
    const entry: SessionEntry = {
      ws,
      session: undefined,
      alive: true,
      done: Promise.resolve(),
      client: clientOf(req),
    };
    ws.on('error', (err: Error & { code?: string }) => {
      // ws closes the socket itself after a protocol error (1009 for maxPayload, 1002 otherwise).
      const code =
        err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? 'RUNTIME_ERR_MESSAGE_TOO_LARGE'
          : 'RUNTIME_ERR_WS_PROTOCOL';
      this.#options.log.info('websocket error', {
        code,
        wsCode: err.code,
        sessionId: entry.session?.id,
        err,
      });
      this.#options.countError(code);
    });
    ws.on('pong', () => {
      entry.alive = true;
    });
    this.#sessions.set(ws, entry);
    this.#options.metrics.sessionsActive.set(this.#sessions.size);
    this.#options.metrics.sessionsTotal.inc();
    this.#options.metrics.upgrades.inc({ outcome: 'accepted' });

    let session: StreamSession;
    try {
      session = this.#options.handlers.openSession(ws, req, context);
    } catch (err) {
      this.#options.log.error('openSession failed', { code: 'RUNTIME_ERR_HANDLER', err });
      this.#options.countError('RUNTIME_ERR_HANDLER');
      entry.done = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      void entry.done.then(() => this.#forget(ws));
      this.#closeOrTerminate(ws, closeOf(RUNTIME_ERRORS, 'RUNTIME_ERR_HANDLER'), 'internal error');
      return;
    }
    entry.session = session;
    entry.done = Promise.resolve(session.closed).then(
      () => undefined,
      (err: unknown) => {
        this.#options.log.error('session ended with an error', {
          code: 'RUNTIME_ERR_HANDLER',
          sessionId: session.id,
          err,
        });
        this.#options.countError('RUNTIME_ERR_HANDLER');
      },
    );
    void entry.done.then(() => this.#forget(ws));
  }

  #forget(ws: WebSocket): void {
    if (!this.#sessions.delete(ws)) return;
    this.#options.metrics.sessionsActive.set(this.#sessions.size);
    this.#options.onForget();
  }

  /**
   * Ends a session whose peer does not read: 1013 'slow reader' (through the session, so it can
   * record the outcome `shed`), terminated if the close handshake does not finish in
   * closeTimeoutMs, counted once. `why` says what showed it (the default: ws's own buffer).
   */
  shed(ws: WebSocket, why: Record<string, unknown> = {}): void {
    if (this.#shedding.has(ws) || ws.readyState !== WebSocket.OPEN) return;
    this.#shedding.add(ws);
    const session = this.#sessions.get(ws)?.session;
    this.#options.log.warn('slow reader, shedding session', {
      code: 'RUNTIME_ERR_SLOW_READER',
      sessionId: session?.id,
      bufferedAmount: ws.bufferedAmount,
      maxBufferedBytes: this.#options.maxBufferedBytes,
      ...why,
    });
    this.#options.countError('RUNTIME_ERR_SLOW_READER');
    this.#options.metrics.sessionsShed.inc();
    const close = closeOf(RUNTIME_ERRORS, 'RUNTIME_ERR_SLOW_READER');
    try {
      session?.close(close, 'slow reader');
    } finally {
      this.#closeOrTerminate(ws, close, 'slow reader');
    }
  }

  #shed(ws: WebSocket): void {
    this.shed(ws);
  }

  #closeOrTerminate(ws: WebSocket, code: number, reason: string): void {
    const cancel = closeOrTerminate(ws, code, reason, this.#options.closeTimeoutMs);
    this.#closeDeadlines.add(cancel);
    ws.once('close', () => this.#closeDeadlines.delete(cancel));
  }

  /**
   * Closes every session (through the session when it has one) with `code`; one whose close throws
   * is terminated. Returns each session's `done`.
   */
  closeAll(code: number, reason: string): Promise<void>[] {
    const entries = [...this.#sessions.values()];
    for (const entry of entries) {
      try {
        if (entry.session) entry.session.close(code, reason);
        else entry.ws.close(code, reason);
      } catch (err) {
        this.#options.log.error('session close failed, terminating', {
          code: 'RUNTIME_ERR_HANDLER',
          sessionId: entry.session?.id,
          err,
        });
        this.#options.countError('RUNTIME_ERR_HANDLER');
        entry.ws.terminate();
      }
    }
    return entries.map((e) => e.done);
  }

  /** Terminates every session still open; returns each one's `done`. */
  terminateAll(): Promise<void>[] {
    const stragglers = [...this.#sessions.values()];
    for (const entry of stragglers) entry.ws.terminate();
    return stragglers.map((e) => e.done);
  }

  /** Cancels pending close-handshake deadlines (the listener is closing). */
  clearTimers(): void {
    for (const cancel of this.#closeDeadlines) cancel();
    this.#closeDeadlines.clear();
  }
}

/** The caller's address: the proxy overwrites X-Forwarded-For with it (one value); else the peer. */
export function clientOf(req: IncomingMessage): string {
  const forwarded = req.headers['x-forwarded-for'];
  const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim();
  return first || req.socket.remoteAddress || '';
}
