import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { errorCode, signResumeVouch, RESUME_HEADER, type Logger } from '@callgate/runtime';
import type { Backend, Lease } from './backend.js';
import { ConnectCancel, type ConnectResult, type Connector } from './connector.js';
import type { ProxyErrorCode } from './errors.js';
import type { Pool } from './pool.js';
import { endSocket, rawErrorResponse, statusOf } from './responses.js';
import type { RouteName } from './route-table.js';
import {
  ChunkedDecoder,
  ResponseHeadReader,
  bodyFraming,
  headerValue,
  isValidSwitch,
  refusalHead,
  type ResponseHead,
} from './upstream-handshake.js';
import { FrameScanner, closeFrame, faultCloseCode, type FrameFault } from './ws-frames.js';

export type TunnelState =
  'connecting' | 'handshaking' | 'open' | 'moving' | 'rejected' | 'failed' | 'closing' | 'closed';
export type ClosedBy = 'client' | 'backend' | 'proxy';

/** Why a live call left its worker for another. */
export type MoveReason =
  | 'backend-closed' // the worker's connection ended without a close frame (crash, kill, reset)
  | 'service-restart' // the worker closed with 1012 (its drain deadline)
  | 'backend-down' // health checks marked the worker down (a hang)
  | 'operator' // an operator asked for it on the admin port
  | 'bad-frame'; // the worker sent a malformed frame

export type MoveFailure = 'deadline';

/** Why a media tunnel stopped tracking frames and became a plain relay. */
export type FallbackReason = 'frame-too-large' | 'start-too-large' | 'extension';

export interface MoveReport {
  reason: MoveReason;
  from: Backend;
  /** Undefined when the move failed. */
  to: Backend | undefined;
  /** Which move of this call (1 for the first). */
  attempt: number;
  /** From the trigger to the replayed `start` on the new worker (or to the failure). */
  gapMs: number;
  /** Caller frames dropped because the move buffer was full. */
  droppedFrames: number;
}

export interface TunnelHooks {
  /** A backend accepted the TCP connection and the upgrade is being sent to it. */
  assigned(tunnel: Tunnel): void;
  /** The tunnel let go of `backend` before closing (a 503 retried elsewhere, a move). */
  released(tunnel: Tunnel, backend: Backend): void;
  /** `backend` answered the upgrade 503 (full or draining); the tunnel tries the next one. */
  busy(tunnel: Tunnel, backend: Backend): void;
  /** The handshake is decided, once: `code` undefined means the 101 went through. */
  decided(tunnel: Tunnel, code: ProxyErrorCode | undefined, status: number | undefined): void;
  /** A call moved to another worker, or gave up trying (`report.to` undefined). */
  moved(tunnel: Tunnel, report: MoveReport, failure: MoveFailure | undefined): void;
  fallback(tunnel: Tunnel, reason: FallbackReason): void;
  badFrame(tunnel: Tunnel, side: 'client' | 'backend', fault: FrameFault): void;
  /** The client socket closed and everything is released; always last, always once. */
  closed(tunnel: Tunnel): void;
}

/** Frame tracking and call moves (the media route). */
export interface Continuity {
  /** Signs the resume vouch a worker checks; undefined sends an unsigned one. */
  secret: string | undefined;
  /** Caller frames above this are refused (1009); worker frames above it end frame tracking. */
  maxFrameBytes: number;
  /** A move that has not found a worker by then closes the call toward the caller (1011). */
  moveTimeoutMs: number;
  /** Caller bytes held while moving; beyond it the oldest frames are dropped. */
  moveBufferBytes: number;
}

export interface TunnelOptions {
  id: string;
  pool: Pool;
  route: RouteName;
  /** The canonical path without the query (logs; the query may carry a token). */
  pathname: string;
  /** The path and query sent to the worker. */
  forwardUrl: string;
  /** The request head sent to each worker (built once by the router). */
  requestHead: Buffer;
  /** The client's Sec-WebSocket-Key, to check a worker's 101. */
  key: string;
  sessionId?: string | undefined;
  /** Call affinity key (the CallSid of `/media-stream/<CallSid>`); see `PickOptions`. */
  affinityKey?: string | undefined;
  client: Socket;
  /** The caller's address: the socket's peer, or what a trusted load balancer says it is. */
  clientAddress: string;
  handshakeTimeoutMs: number;
  continuity: Continuity | undefined;
  connector: Connector;
  hooks: TunnelHooks;
  logger: Logger;
}

/** After one side sends FIN, how long the other direction may finish before both are cut. */
export const CLOSE_LINGER_MS = 2000;
/** Bytes a client may send before the 101 (none, by the protocol): more is a broken client. */
const MAX_EARLY_BYTES = 16_384;
/** The caller's first messages kept for a move: Twilio's `connected` and `start`. */
const KEPT_MESSAGES = 2;
const MAX_KEPT_BYTES = 16_384;
/** A move that finds no worker at all waits this long (doubling, up to the max) to try again. */
const MOVE_BACKOFF_MS = 50;
const MOVE_BACKOFF_MAX_MS = 800;

const kTunnel = Symbol('callgate.tunnel');
type Owned = Socket & { [kTunnel]?: Tunnel | undefined };

interface Move {
  reason: MoveReason;
  from: Backend;
  startedAt: number;
  attempt: number;
  /** Stream offset of the caller's bytes the new worker gets first; -1 until the next cut. */
  resumeFrom: number;
  /** Caller bytes received while moving, with their stream offsets. */
  pending: Array<{ at: number; data: Buffer }>;
  /** Cut points (frame ends outside a fragmented message) after resumeFrom. */
  cuts: number[];
  droppedFrames: number;
  /** Backends tried in this round. */
  tried: Set<Backend>;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
  deadline: NodeJS.Timeout;
  /** The new worker answered 101; waiting for a cut point to resume from. */
  ready: boolean;
}

/**
 * One proxied WebSocket from upgrade to close, on raw sockets: the upgrade is written to a worker
 * socket the Connector opened, the answer head parsed, and then bytes are relayed both ways with
 * backpressure. The guards around a proxied upgrade all live here: the client's error handler
 * exists before anything else; a client that leaves before the 101 takes the upstream with it; the
 * upstream handshake has a deadline; a non-101 answer is relayed and both connections closed;
 * any close, error or reset on either side ends the other (a short linger after a clean FIN lets
 * the last frames arrive); and the client's `close` is the one place where the tunnel is counted out.
 *
 * On the media route (`continuity`), both directions are also scanned for frame boundaries (headers
 * only): worker bytes reach the caller only as whole frames, the caller's first two messages are
 * kept, and when the worker goes (crash, 1012, marked down, operator) the call moves: the old
 * worker's close never reaches the caller, caller frames wait in a bounded buffer, a new worker
 * gets the original upgrade with a resume vouch plus the kept messages, and relaying resumes at a
 * frame boundary.
 *
 * Socket listeners are shared functions that find their tunnel through a symbol on the socket, so
 * an open tunnel holds no closures; worker sockets read into one shared buffer (`onread`).
 */
export class Tunnel {
  readonly id: string;
  readonly pool: string;
  readonly route: RouteName;
  readonly path: string;
  readonly client: Socket;
  readonly clientAddress: string;
  /** `performance.now()` at the upgrade. */
  readonly startedAt = performance.now();
  readonly #pool: Pool;
  readonly #connector: Connector;
  readonly #hooks: TunnelHooks;
  readonly #logger: Logger;
  readonly #forwardUrl: string;
  readonly #key: string;
  readonly #handshakeTimeoutMs: number;
  readonly #sessionId: string | undefined;
  readonly #affinityKey: string | undefined;
  #requestHead: Buffer | undefined;
  #continuity: Continuity | undefined;
  #abort: ConnectCancel | undefined;
  #state: TunnelState = 'connecting';
  #lease: Lease | undefined;
  #byAffinity = false;
  /** Backends that answered this upgrade 503; the next attempt skips them. */
  #busy: Set<Backend> | undefined;
  #upstream: Owned | undefined;
  #reader: ResponseHeadReader | undefined;
  #refusal:
    { framing: 'chunked' | number | 'close'; decoder: ChunkedDecoder | undefined } | undefined;
  #early: Buffer[] | undefined;
  #earlyBytes = 0;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #lingerTimer: NodeJS.Timeout | undefined;
  #isDecided = false;
  #closedBy: ClosedBy | undefined;
  #code: ProxyErrorCode | undefined;
  #openedAt: number | undefined;
  #closedAt: number | undefined;
  #bytesFromClient = 0;
  #bytesFromBackend = 0;
  // Frame tracking (media route only).
  #fromClient: FrameScanner | undefined;
  #fromBackend: FrameScanner | undefined;
  /** Worker bytes up to this stream offset went to the caller; #held is the partial frame after. */
  #sentToClient = 0;
  #held: Buffer | undefined;
  /** The caller sent a close frame / the worker sent one other than 1012: no move from here on. */
  #callerClosing = false;
  #backendClosing = false;
  #move: Move | undefined;
  #moves = 0;
  #backend: Backend | undefined;

  constructor(options: TunnelOptions) {
    this.id = options.id;
    this.#pool = options.pool;
    this.pool = options.pool.name;
    this.route = options.route;
    this.path = options.pathname;
    this.client = options.client;
    this.clientAddress = options.clientAddress;
    this.#connector = options.connector;
    this.#hooks = options.hooks;
    this.#logger = options.logger;
    this.#forwardUrl = options.forwardUrl;
    this.#requestHead = options.requestHead;
    this.#key = options.key;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs;
    this.#sessionId = options.sessionId;
    this.#affinityKey = options.affinityKey;
    this.#continuity = options.continuity;
  }

  get state(): TunnelState {
    return this.#state;
  }

  /** The backend the tunnel is on (the last one, once closed). */
  get backend(): Backend | undefined {
    return this.#lease?.backend ?? this.#backend;
  }

  /** The backend was chosen because a live tunnel of the same call is there. */
  get byAffinity(): boolean {
    return this.#byAffinity;
  }

  get closedBy(): ClosedBy | undefined {
    return this.#closedBy;
  }

  /** Why the proxy or a socket error ended it; undefined for a clean close by either peer. */
  get code(): ProxyErrorCode | undefined {
    return this.#code;
  }

  get bytesFromClient(): number {
    return this.#bytesFromClient;
  }

  get bytesFromBackend(): number {
    return this.#bytesFromBackend;
  }

  /** How many times the call moved to another worker. */
  get moves(): number {
    return this.#moves;
  }

  /** Frames are tracked and the call can move (media route, no fallback). */
  get isTracked(): boolean {
    return this.#fromClient !== undefined;
  }

  /** Milliseconds from the 101 to the close (or to now); undefined if it never opened. */
  get openDurationMs(): number | undefined {
    if (this.#openedAt === undefined) return undefined;
    return (this.#closedAt ?? performance.now()) - this.#openedAt;
  }

  /** Starts reading the client and connects to a backend. Never throws: outcomes go to the hooks. */
  start(): void {
    const client = this.client as Owned;
    client[kTunnel] = this;
    client.on('error', onClientError);
    client.on('end', onClientEnd);
    client.on('close', onClientClose);
    client.on('data', onClientData);
    client.on('drain', onClientDrain);
    if (client.destroyed) {
      this.#finalize();
      return;
    }
    if (this.#continuity) {
      const { maxFrameBytes } = this.#continuity;
      this.#fromClient = new FrameScanner({
        masked: true,
        maxPayloadBytes: maxFrameBytes,
        keepMessages: KEPT_MESSAGES,
        maxKeepBytes: MAX_KEPT_BYTES,
      });
      this.#fromBackend = new FrameScanner({ masked: false, maxPayloadBytes: maxFrameBytes });
    }
    this.#startConnect();
  }

  /** Proxy-initiated end (idle watchdog, forced drain): both sockets are destroyed now. */
  destroy(code: ProxyErrorCode): void {
    if (this.#state === 'closed') return;
    this.#closedBy ??= 'proxy';
    this.#code ??= code;
    this.#decide(code, undefined);
    this.#teardown();
  }

  /**
   * The proxy's drain deadline: a tracked call gets a close frame (1012) at a frame boundary, so
   * Twilio ends the stream cleanly and runs the TwiML after `<Connect>` (its action URL brings the
   * call back through another proxy). Anything else is destroyed.
   */
  closeForRestart(): void {
    if (this.#state === 'closed') return;
    if (!this.isTracked || (this.#state !== 'open' && this.#state !== 'moving')) {
      this.destroy('PROXY_ERR_DRAIN_FORCED');
      return;
    }
    this.#closeCaller(1012, 'proxy restart', 'PROXY_ERR_DRAIN_FORCED');
  }

  /**
   * Moves a live call off its worker now (health checks marked it down, or an operator asked).
   * Returns false when this tunnel cannot move (not tracked, not open, closing).
   */
  move(reason: MoveReason): boolean {
    if (this.#state !== 'open' || !this.#canMove()) return false;
    this.#startMove(reason);
    return true;
  }

  // ---- connecting and the handshake ----

  #startConnect(): void {
    const abort = new ConnectCancel();
    this.#abort = abort;
    const move = this.#move;
    this.#connector.open(
      this.#pool,
      {
        sessionId: this.#sessionId,
        affinityKey: this.#affinityKey,
        exclude: move ? move.tried : this.#busy,
        signal: abort,
        requestId: this.id,
        onread: onUpstreamRead,
      },
      (result) => {
        try {
          this.#connected(result, move, abort);
        } catch (err) {
          this.#internalError(err);
        }
      },
    );
  }

  #internalError(err: unknown): void {
    this.#logger.error('tunnel failed', { code: 'PROXY_ERR_INTERNAL', tunnelId: this.id, err });
    if (this.#state === 'connecting' || this.#state === 'handshaking')
      this.#fail('PROXY_ERR_INTERNAL');
    else this.destroy('PROXY_ERR_INTERNAL');
  }

  #connected(result: ConnectResult, move: Move | undefined, abort: ConnectCancel): void {
    const wanted = move
      ? this.#state === 'moving' && this.#move === move
      : this.#state === 'connecting';
    if (!wanted || abort.aborted) {
      if (result.ok) {
        result.socket.destroy();
        result.lease.release();
      }
      return;
    }
    if (!result.ok) {
      if (result.reason === 'aborted') this.#clientGone(undefined);
      else if (move) this.#moveBackoff(move);
      else this.#fail('PROXY_ERR_NO_BACKEND');
      return;
    }
    if (!move) this.#byAffinity = result.byAffinity;
    this.#handshake(result.lease, result.socket as Owned);
  }

  #handshake(lease: Lease, upstream: Owned): void {
    if (!this.#move) this.#state = 'handshaking';
    this.#lease = lease;
    this.#backend = lease.backend;
    this.#upstream = upstream;
    upstream[kTunnel] = this;
    upstream.on('error', onUpstreamError);
    upstream.on('end', onUpstreamEnd);
    upstream.on('close', onUpstreamClose);
    upstream.on('drain', onUpstreamDrain);
    this.#hooks.assigned(this);
    this.#reader = new ResponseHeadReader();
    this.#handshakeTimer = setTimeout(onHandshakeTimeout, this.#handshakeTimeoutMs, this);
    const move = this.#move;
    if (move) {
      const vouch = signResumeVouch({
        secret: this.#continuity?.secret,
        issuedAtMs: Date.now(),
        attempt: move.attempt,
        path: this.#forwardUrl,
        tunnelId: this.id,
      });
      const head = this.#requestHead!;
      // The head ends with CRLF CRLF: the vouch goes in before the blank line.
      upstream.write(head.subarray(0, head.length - 2));
      upstream.write(`${RESUME_HEADER}: ${vouch}\r\n\r\n`);
    } else {
      upstream.write(this.#requestHead!);
    }
  }

  /** A read from the current worker socket (a copy is made of what is kept or written). */
  upstreamRead(data: Buffer): boolean {
    const reader = this.#reader;
    if (reader !== undefined) {
      const head = reader.push(data);
      if (head === 'more') return true;
      this.#reader = undefined;
      clearTimeout(this.#handshakeTimer);
      if (head === 'malformed') {
        this.#attemptFailed('PROXY_ERR_UPSTREAM_FAILED', 'malformed answer');
        return true;
      }
      return this.#answered(head);
    }
    switch (this.#state) {
      case 'open':
        return this.#toClient(data);
      case 'rejected':
        if (this.#refusal !== undefined) this.#refusalBody(data);
        return true;
      default:
        return true;
    }
  }

  #answered(head: ResponseHead): boolean {
    const move = this.#move;
    if (head.status === 101 && isValidSwitch(head, this.#key)) {
      if (this.#continuity && headerValue(head, 'sec-websocket-extensions') !== undefined) {
        if (move) {
          this.#attemptFailed('PROXY_ERR_UPSTREAM_FAILED', 'extension negotiated');
          return true;
        }
        this.#fallback('extension');
      }
      if (move) return this.#resumed(head.rest);
      // Only a move replays the request; an untracked tunnel needs it no more.
      if (!this.#continuity) this.#requestHead = undefined;
      this.#state = 'open';
      this.#openedAt = performance.now();
      this.#decide(undefined, 101);
      this.client.write(head.raw);
      const early = this.#early;
      this.#early = undefined;
      if (early) for (const chunk of early) this.#fromClientOpen(chunk);
      return head.rest.length > 0 ? this.#toClient(head.rest) : true;
    }
    if (head.status === 503 && !this.#byAffinity) {
      this.#busyAnswer();
      return true;
    }
    if (move || head.status === 101) {
      this.#attemptFailed('PROXY_ERR_UPSTREAM_FAILED', `answered ${head.status}`);
      return true;
    }
    this.#refuse(head);
    return true;
  }

  /**
   * A worker that answers 503 is full or draining, not refusing this caller: like a refused
   * connect, the next backend is tried before the caller notices (the 503 reaches it only when no
   * backend is left, as the proxy's own). Not when call affinity chose the worker: the call's
   * other stream lives there, and a second worker would start a second agent on it.
   */
  #busyAnswer(): void {
    const backend = this.#lease!.backend;
    if (this.#move) {
      this.#move.tried.add(backend);
      this.#dropUpstream();
      this.#hooks.busy(this, backend);
      this.#startConnect();
      return;
    }
    (this.#busy ??= new Set()).add(backend);
    this.#dropUpstream();
    this.#state = 'connecting';
    this.#hooks.busy(this, backend);
    this.#startConnect();
  }

  /** Guard: a non-101 answer is relayed, then the connection is closed; never a tunnel. */
  #refuse(head: ResponseHead): void {
    this.#state = 'rejected';
    this.#closedBy = 'backend';
    this.#decide('PROXY_ERR_UPSTREAM_REJECTED', head.status);
    const framing = bodyFraming(head);
    this.#refusal = {
      framing,
      decoder: framing === 'chunked' ? new ChunkedDecoder() : undefined,
    };
    this.client.write(refusalHead(head));
    // The handshake deadline keeps running until the body is complete.
    this.#handshakeTimer = setTimeout(onHandshakeTimeout, this.#handshakeTimeoutMs, this);
    if (framing === 0) this.#refusalDone();
    else if (head.rest.length > 0) this.#refusalBody(head.rest);
  }

  #refusalBody(data: Buffer): void {
    const refusal = this.#refusal!;
    const { framing, decoder } = refusal;
    if (decoder) {
      for (const piece of decoder.push(data)) this.client.write(piece);
      if (decoder.failed) this.#teardown();
      else if (decoder.done) this.#refusalDone();
      return;
    }
    if (typeof framing !== 'number') {
      this.client.write(Buffer.from(data));
      return;
    }
    const take = Math.min(framing, data.length);
    this.client.write(Buffer.from(data.subarray(0, take)));
    refusal.framing = framing - take;
    if (refusal.framing === 0) this.#refusalDone();
  }

  #refusalDone(): void {
    if (this.#refusal === undefined) return;
    this.#refusal = undefined;
    clearTimeout(this.#handshakeTimer);
    this.#upstream?.destroy();
    endSocket(this.client, undefined);
  }

  /** One attempt at a worker failed before its 101: the next is tried (a move) or the caller told. */
  #attemptFailed(code: ProxyErrorCode, why: string, cause?: Error): void {
    const move = this.#move;
    if (!move) {
      this.#fail(code, cause);
      return;
    }
    const backend = this.#lease?.backend;
    this.#logger.warn('call move attempt failed, trying the next worker', {
      code,
      tunnelId: this.id,
      backend: backend?.id,
      reason: why,
      cause: cause ? errorCode(cause) : undefined,
    });
    if (backend) move.tried.add(backend);
    this.#dropUpstream();
    this.#startConnect();
  }

  #handshakeTimedOut(): void {
    if (this.#reader !== undefined) {
      this.#lease?.backend.markDown('upstream handshake timeout');
      this.#reader = undefined;
      this.#attemptFailed('PROXY_ERR_UPSTREAM_TIMEOUT', 'no answer in time');
    } else if (this.#state === 'rejected') {
      this.#teardown();
    }
  }

  /** Lets go of the current worker socket and its lease (a retried or moved attempt). */
  #dropUpstream(): void {
    clearTimeout(this.#handshakeTimer);
    this.#reader = undefined;
    const upstream = this.#upstream;
    const lease = this.#lease;
    this.#upstream = undefined;
    this.#lease = undefined;
    if (upstream) {
      upstream[kTunnel] = undefined;
      upstream.destroy();
    }
    if (lease) {
      this.#hooks.released(this, lease.backend);
      lease.release();
    }
  }

  // ---- the relay ----

  /** Caller bytes. */
  clientData(chunk: Buffer): void {
    this.#bytesFromClient += chunk.length;
    switch (this.#state) {
      case 'open':
        if (this.#move) this.#buffered(chunk);
        else this.#fromClientOpen(chunk);
        return;
      case 'moving':
        this.#buffered(chunk);
        return;
      case 'connecting':
      case 'handshaking':
        // A WebSocket client sends nothing before the 101; a little is kept, more is a broken client.
        this.#earlyBytes += chunk.length;
        if (this.#earlyBytes > MAX_EARLY_BYTES) {
          this.#fail('PROXY_ERR_BAD_HANDSHAKE');
          return;
        }
        (this.#early ??= []).push(chunk);
        return;
      default:
        return;
    }
  }

  #fromClientOpen(chunk: Buffer): void {
    const scanner = this.#fromClient;
    const upstream = this.#upstream!;
    if (scanner !== undefined) {
      const before = scanner.offset;
      scanner.scan(chunk);
      if (scanner.fault !== undefined) {
        const good = scanner.boundary - before;
        if (good > 0) upstream.write(chunk.subarray(0, good));
        this.#badClientFrame(scanner.fault);
        return;
      }
      if (scanner.closeCode !== undefined) this.#callerClosing = true;
      if (scanner.prefixOverflow) this.#fallback('start-too-large');
    }
    if (!upstream.write(chunk)) this.client.pause();
  }

  /** Worker bytes for the caller: whole frames only on the media route. */
  #toClient(data: Buffer): boolean {
    this.#bytesFromBackend += data.length;
    const scanner = this.#fromBackend;
    if (scanner === undefined) return this.client.write(Buffer.from(data));
    const chunkStart = scanner.offset;
    scanner.scan(data);
    if (scanner.fault !== undefined) {
      if (scanner.fault === 'too-large') {
        // Holding such a frame whole costs too much memory: this call becomes a plain relay.
        this.#fallback('frame-too-large');
        return this.#flushFrom(data, chunkStart, scanner.offset);
      }
      this.#sendWhole(data, chunkStart, scanner.boundary, false);
      this.#hooks.badFrame(this, 'backend', scanner.fault);
      this.#startMove('bad-frame');
      return true;
    }
    const close = scanner.closeCode;
    if (close !== undefined) {
      if (close === 1012 && this.#canMove()) {
        // The worker's drain deadline: its close frame never reaches the caller.
        this.#sendWhole(data, chunkStart, scanner.closeStart, false);
        this.#startMove('service-restart');
        return true;
      }
      this.#backendClosing = true;
      this.#fromBackend = undefined;
      return this.#flushFrom(data, chunkStart, scanner.offset);
    }
    return this.#sendWhole(data, chunkStart, scanner.boundary, true);
  }

  /**
   * Sends the worker's stream up to `limit` (a stream offset at a frame boundary): the held tail
   * first, then this read's part; with `hold`, what is left after `limit` is kept for the next read.
   */
  #sendWhole(data: Buffer, chunkStart: number, limit: number, hold: boolean): boolean {
    const held = this.#held;
    const chunkEnd = chunkStart + data.length;
    let ok = true;
    if (held === undefined && limit === chunkEnd) {
      // The common case: this read ends on a frame boundary.
      ok = this.client.write(Buffer.from(data));
      this.#sentToClient = limit;
      return ok;
    }
    if (held !== undefined && limit > this.#sentToClient) {
      const fromHeld = Math.min(limit, chunkStart) - this.#sentToClient;
      ok = this.client.write(fromHeld === held.length ? held : held.subarray(0, fromHeld));
    }
    if (limit > chunkStart)
      ok = this.client.write(Buffer.from(data.subarray(0, limit - chunkStart)));
    if (!hold) {
      this.#held = undefined;
      this.#sentToClient = limit;
      return ok;
    }
    // Keep [limit, chunkEnd): part of the old tail (when limit < chunkStart) and of this read.
    const keepFromHeld =
      held === undefined ? undefined : held.subarray(Math.max(0, limit - this.#sentToClient));
    const keepFromData = data.subarray(Math.max(0, limit - chunkStart));
    this.#held =
      keepFromHeld !== undefined && keepFromHeld.length > 0
        ? Buffer.concat([keepFromHeld, keepFromData])
        : keepFromData.length > 0
          ? Buffer.from(keepFromData)
          : undefined;
    this.#sentToClient = limit;
    return ok;
  }

  /** Sends everything held and this read through `end`, untracked from here on. */
  #flushFrom(data: Buffer, chunkStart: number, end: number): boolean {
    let ok = true;
    if (this.#held !== undefined) ok = this.client.write(this.#held);
    this.#held = undefined;
    if (end > chunkStart) ok = this.client.write(Buffer.from(data));
    this.#sentToClient = end;
    return ok;
  }

  #badClientFrame(fault: FrameFault): void {
    this.#hooks.badFrame(this, 'client', fault);
    this.#closedBy = 'proxy';
    this.#code = 'PROXY_ERR_BAD_FRAME';
    this.#closeCaller(faultCloseCode(fault), `bad frame: ${fault}`, 'PROXY_ERR_BAD_FRAME');
  }

  /** Frame tracking ends for this tunnel; it relays bytes as they come from here on. */
  #fallback(reason: FallbackReason): void {
    if (this.#fromClient === undefined) return;
    this.#fromClient = undefined;
    this.#fromBackend = undefined;
    this.#continuity = undefined;
    this.#requestHead = undefined;
    this.#hooks.fallback(this, reason);
  }

  // ---- moving a call ----

  #canMove(): boolean {
    const scanner = this.#fromClient;
    return (
      scanner !== undefined &&
      this.#fromBackend !== undefined &&
      !this.#callerClosing &&
      !this.#backendClosing &&
      !scanner.prefixOverflow &&
      scanner.messages > 0 &&
      !this.client.readableEnded &&
      !this.client.destroyed
    );
  }

  #startMove(reason: MoveReason): void {
    const from = this.#lease?.backend ?? this.#backend!;
    const scanner = this.#fromClient!;
    this.#dropUpstream();
    this.#state = 'moving';
    this.#moves++;
    // The new worker's stream starts afresh; the old one's partial frame never reaches the caller.
    this.#fromBackend = new FrameScanner({
      masked: false,
      maxPayloadBytes: this.#continuity!.maxFrameBytes,
    });
    this.#held = undefined;
    this.#sentToClient = 0;
    const move: Move = {
      reason,
      from,
      startedAt: performance.now(),
      attempt: this.#moves,
      // Bytes the old worker got are not sent again, except the kept prefix; a frame it got only
      // part of is skipped whole (the new worker starts at the next boundary).
      resumeFrom: scanner.isKeeping || scanner.atBoundary ? scanner.offset : -1,
      pending: [],
      cuts: [],
      droppedFrames: 0,
      tried: new Set([from]),
      backoffMs: MOVE_BACKOFF_MS,
      timer: undefined,
      deadline: setTimeout(onMoveDeadline, this.#continuity!.moveTimeoutMs, this),
      ready: false,
    };
    this.#move = move;
    scanner.onCut = (offset) => {
      if (move.resumeFrom < 0) move.resumeFrom = offset;
      else move.cuts.push(offset);
    };
    this.client.resume();
    this.#logger.info('moving call to another worker', {
      tunnelId: this.id,
      pool: this.pool,
      path: this.path,
      backend: from.id,
      reason,
      attempt: move.attempt,
    });
    this.#startConnect();
  }

  /** Caller bytes while moving: kept (bounded; the oldest whole frames go first). */
  #buffered(chunk: Buffer): void {
    const move = this.#move!;
    const scanner = this.#fromClient!;
    const at = scanner.offset;
    scanner.scan(chunk);
    if (scanner.fault !== undefined) {
      this.#badClientFrame(scanner.fault);
      return;
    }
    if (scanner.closeCode !== undefined) {
      // The caller hangs up mid-move: nobody is left to tell; end it.
      this.#callerClosing = true;
      this.#closedBy = 'client';
      this.#teardown();
      return;
    }
    move.pending.push({ at, data: chunk });
    const limit = this.#continuity!.moveBufferBytes;
    while (move.resumeFrom >= 0 && scanner.offset - move.resumeFrom > limit && move.cuts.length) {
      move.resumeFrom = move.cuts.shift()!;
      move.droppedFrames++;
    }
    while (move.pending.length > 0) {
      const first = move.pending[0]!;
      if (move.resumeFrom < 0 || first.at + first.data.length > move.resumeFrom) break;
      move.pending.shift();
    }
    if (move.ready) this.#finishMove();
  }

  /** The new worker said 101: replay the kept messages, then the caller's frames from a boundary. */
  #resumed(rest: Buffer): boolean {
    const move = this.#move!;
    this.#state = 'open';
    move.ready = true;
    const scanner = this.#fromClient!;
    this.#upstream!.write(scanner.prefix()!);
    this.#finishMove();
    return rest.length > 0 ? this.#toClient(rest) : true;
  }

  #finishMove(): void {
    const move = this.#move!;
    if (move.resumeFrom < 0) return; // still inside the frame the old worker got part of
    const scanner = this.#fromClient!;
    const upstream = this.#upstream!;
    const from = Math.max(move.resumeFrom, scanner.prefixLength);
    for (const { at, data } of move.pending) {
      const end = at + data.length;
      if (end <= from) continue;
      upstream.write(at >= from ? data : data.subarray(from - at));
    }
    clearTimeout(move.deadline);
    clearTimeout(move.timer);
    scanner.onCut = undefined;
    this.#move = undefined;
    this.#hooks.moved(
      this,
      {
        reason: move.reason,
        from: move.from,
        to: this.#lease?.backend,
        attempt: move.attempt,
        gapMs: performance.now() - move.startedAt,
        droppedFrames: move.droppedFrames,
      },
      undefined,
    );
  }

  /** No worker could be reached in this round: wait a little, then try every other one again. */
  #moveBackoff(move: Move): void {
    move.timer = setTimeout(onMoveRetry, move.backoffMs, this);
    move.backoffMs = Math.min(move.backoffMs * 2, MOVE_BACKOFF_MAX_MS);
    move.tried = new Set([move.from]);
  }

  #moveRetry(): void {
    if (this.#state === 'moving' && this.#move !== undefined) this.#startConnect();
  }

  #moveTimedOut(): void {
    const move = this.#move;
    if (move === undefined || this.#state === 'closed') return;
    this.#hooks.moved(
      this,
      {
        reason: move.reason,
        from: move.from,
        to: undefined,
        attempt: move.attempt,
        gapMs: performance.now() - move.startedAt,
        droppedFrames: move.droppedFrames,
      },
      'deadline',
    );
    this.#closeCaller(1011, 'no worker could take the call', 'PROXY_ERR_MOVE_FAILED');
  }

  /**
   * Ends a tracked call toward the caller with a real close frame, at a frame boundary (worker
   * bytes reach the caller only as whole frames, so it always is one), and drops the worker side.
   */
  #closeCaller(code: number, reason: string, errorCode: ProxyErrorCode): void {
    this.#closedBy ??= 'proxy';
    this.#code ??= errorCode;
    const move = this.#move;
    if (move) {
      clearTimeout(move.deadline);
      clearTimeout(move.timer);
      this.#move = undefined;
    }
    this.#abort?.abort();
    this.#dropUpstream();
    this.#held = undefined;
    this.#fromBackend = undefined;
    this.#state = 'closing';
    const client = this.client;
    if (!client.destroyed && !client.writableEnded) client.write(closeFrame(code, reason, false));
    endSocket(client, undefined);
  }

  // ---- closing ----

  clientGone(err: Error | undefined): void {
    this.#clientGone(err);
  }

  #clientGone(err: Error | undefined): void {
    this.#closedBy ??= 'client';
    switch (this.#state) {
      case 'connecting':
      case 'handshaking':
        this.#code ??= 'PROXY_ERR_CLIENT_GONE';
        this.#decide('PROXY_ERR_CLIENT_GONE', undefined);
        break;
      case 'open':
      case 'moving':
        if (err) this.#code ??= 'PROXY_ERR_TUNNEL_ERROR';
        break;
      default:
        break;
    }
    this.#teardown();
  }

  clientEnded(): void {
    // A WebSocket client cannot half-close before the 101, nor during a move: it left.
    if (this.#state !== 'open' || this.#move !== undefined) {
      this.#clientGone(undefined);
      return;
    }
    this.#closedBy ??= 'client';
    this.#upstream?.end();
    this.#armLinger();
  }

  /** The current worker socket ended (FIN: `clean`) or closed/errored. */
  upstreamGone(err: Error | undefined, clean: boolean): void {
    switch (this.#state) {
      case 'handshaking':
        this.#fail('PROXY_ERR_UPSTREAM_FAILED', err);
        return;
      case 'moving':
        this.#attemptFailed('PROXY_ERR_UPSTREAM_FAILED', 'closed before answering', err);
        return;
      case 'open':
        if (this.#move !== undefined) {
          // The new worker went before a cut point came: try the next one.
          this.#state = 'moving';
          this.#move.ready = false;
          this.#attemptFailed('PROXY_ERR_UPSTREAM_FAILED', 'closed before the call resumed', err);
          return;
        }
        if (this.#canMove()) {
          this.#startMove('backend-closed');
          return;
        }
        this.#closedBy ??= 'backend';
        if (clean && !err) {
          this.client.end();
          this.#armLinger();
          return;
        }
        if (err) this.#code ??= 'PROXY_ERR_TUNNEL_ERROR';
        this.#teardown();
        return;
      case 'rejected':
        if (err) this.#teardown();
        else this.#refusalDone();
        return;
      default:
        return;
    }
  }

  /** Ends the tunnel before it opened, answering the client with the code's status. */
  #fail(code: ProxyErrorCode, cause?: Error): void {
    if (this.#state === 'closed' || this.#state === 'failed') return;
    this.#state = 'failed';
    this.#closedBy ??= 'proxy';
    this.#code ??= code;
    if (cause) {
      this.#logger.debug('upstream error before the 101', {
        tunnelId: this.id,
        backend: this.backend?.id,
        cause: errorCode(cause),
      });
    }
    this.#decide(code, statusOf(code));
    this.#abort?.abort();
    this.#upstream?.destroy();
    clearTimeout(this.#handshakeTimer);
    // Nothing is written to the client before the 101, so the answer is a whole response.
    if (this.client.bytesWritten === 0) {
      endSocket(this.client, rawErrorResponse(code, this.id));
    } else {
      this.client.destroy();
    }
  }

  #decide(code: ProxyErrorCode | undefined, status: number | undefined): void {
    if (this.#isDecided) return;
    this.#isDecided = true;
    this.#hooks.decided(this, code, status);
  }

  #armLinger(): void {
    this.#lingerTimer ??= setTimeout(onLinger, CLOSE_LINGER_MS, this);
  }

  /** Destroys both sides now; the client's `close` finishes the job in #finalize(). */
  #teardown(): void {
    clearTimeout(this.#handshakeTimer);
    this.#abort?.abort();
    this.#upstream?.destroy();
    this.client.destroy();
  }

  #finalize(): void {
    if (this.#state === 'closed') return;
    this.#closedBy ??= 'client';
    if (this.#state === 'connecting' || this.#state === 'handshaking') {
      this.#code ??= 'PROXY_ERR_CLIENT_GONE';
    }
    this.#decide('PROXY_ERR_CLIENT_GONE', undefined);
    const move = this.#move;
    if (move) {
      clearTimeout(move.deadline);
      clearTimeout(move.timer);
      this.#move = undefined;
    }
    this.#state = 'closed';
    this.#closedAt = performance.now();
    clearTimeout(this.#handshakeTimer);
    clearTimeout(this.#lingerTimer);
    this.#abort?.abort();
    const upstream = this.#upstream;
    if (upstream) {
      upstream[kTunnel] = undefined;
      upstream.destroy();
    }
    (this.client as Owned)[kTunnel] = undefined;
    this.#early = undefined;
    this.#held = undefined;
    this.#lease?.release();
    this.#hooks.closed(this);
  }

  // Entry points for the shared listeners below (they cannot reach # members from outside).
  static finalize(t: Tunnel): void {
    t.#finalize();
  }
  static linger(t: Tunnel): void {
    t.#teardown();
  }
  static handshakeTimedOut(t: Tunnel): void {
    t.#handshakeTimedOut();
  }
  static moveDeadline(t: Tunnel): void {
    t.#moveTimedOut();
  }
  static moveRetry(t: Tunnel): void {
    t.#moveRetry();
  }
  static upstreamDrained(t: Tunnel): void {
    if (t.#state === 'open') t.client.resume();
  }
  static clientDrained(t: Tunnel): void {
    t.#upstream?.resume();
  }
  static isCurrentUpstream(t: Tunnel, socket: Socket): boolean {
    return t.#upstream === socket;
  }
}

// Shared socket listeners: `this` is the socket, its tunnel hangs off kTunnel.
function onClientData(this: Owned, chunk: Buffer): void {
  this[kTunnel]?.clientData(chunk);
}
function onClientError(this: Owned, err: Error): void {
  this[kTunnel]?.clientGone(err);
}
function onClientEnd(this: Owned): void {
  this[kTunnel]?.clientEnded();
}
function onClientClose(this: Owned): void {
  const t = this[kTunnel];
  if (t) Tunnel.finalize(t);
}
function onClientDrain(this: Owned): void {
  const t = this[kTunnel];
  if (t) Tunnel.clientDrained(t);
}
function onUpstreamRead(this: Owned, nread: number, buffer: Buffer): boolean {
  const t = this[kTunnel];
  if (t === undefined || !Tunnel.isCurrentUpstream(t, this)) {
    // A socket of an attempt given up on: nothing it says matters.
    this.destroy();
    return false;
  }
  return t.upstreamRead(buffer.subarray(0, nread));
}
function onUpstreamError(this: Owned, err: Error): void {
  const t = this[kTunnel];
  if (t && Tunnel.isCurrentUpstream(t, this)) t.upstreamGone(err, false);
}
function onUpstreamEnd(this: Owned): void {
  const t = this[kTunnel];
  if (t && Tunnel.isCurrentUpstream(t, this)) t.upstreamGone(undefined, true);
}
function onUpstreamClose(this: Owned): void {
  const t = this[kTunnel];
  if (t && Tunnel.isCurrentUpstream(t, this)) t.upstreamGone(undefined, false);
}
function onUpstreamDrain(this: Owned): void {
  const t = this[kTunnel];
  if (t) Tunnel.upstreamDrained(t);
}
function onHandshakeTimeout(t: Tunnel): void {
  Tunnel.handshakeTimedOut(t);
}
function onLinger(t: Tunnel): void {
  Tunnel.linger(t);
}
function onMoveDeadline(t: Tunnel): void {
  Tunnel.moveDeadline(t);
}
function onMoveRetry(t: Tunnel): void {
  Tunnel.moveRetry(t);
}
