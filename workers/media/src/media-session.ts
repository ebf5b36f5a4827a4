import { randomUUID } from 'node:crypto';
import { PROTO_ERRORS, messageText } from '@callgate/protocol';
import {
  closeOf,
  closeOrTerminate,
  errorCode,
  type CodesWith,
  type Logger,
  type StreamSession,
  STREAM_SERVER_DEFAULTS,
} from '@callgate/runtime';
import type { WebSocket, RawData } from 'ws';
import { CloseCode, MEDIA_ERRORS, type MediaCodeWith } from './errors.js';
import { MediaCall, type CallEndReason } from './media-call.js';
import type { MediaWorker, MediaWorkerConfig } from './media-worker.js';
import type { Provider } from './metrics.js';
import { SansPbxReceiver } from './sanspbx-receiver.js';
import { detectStream, type CallStart, type StreamReceiver } from './stream-receiver.js';
import { TwilioReceiver } from './twilio-receiver.js';

/** A stream the proxy moved here from another worker, as its verified resume vouch says. */
export interface StreamResume {
  /** 1 for the first move of this call, 2 for the next, ... */
  attempt: number;
  /** The proxy's clock when it vouched (ms since the epoch). */
  issuedAtMs: number;
  /** False when CALL_TOKEN_SECRET is unset: the vouch could not be checked. */
  signed: boolean;
  /** The proxy's caller-side `X-Tunnel-Id`: the same on every segment of the call. */
  tunnelId: string | undefined;
}

type SessionState = 'detecting' | 'awaiting-start' | 'live' | 'closing' | 'closed';

// A peer that does not answer our close frame is cut off after this.
const CLOSE_TIMEOUT_MS = STREAM_SERVER_DEFAULTS.closeTimeoutMs;
const REPLACED_REASON = 'replaced by a newer stream for this call';
/**
 * A code that ends the session, with its close code from its catalogue: the media worker's own,
 * or the protocol's for a message refused whole (binary, or over the size limit).
 */
type RejectCode = MediaCodeWith<'close'> | ProtoCloseCode;
type ProtoCloseCode = CodesWith<typeof PROTO_ERRORS, 'close'>;

function closeCodeOf(code: RejectCode): number {
  return isProtoCode(code) ? closeOf(PROTO_ERRORS, code) : closeOf(MEDIA_ERRORS, code);
}

function isProtoCode(code: RejectCode): code is ProtoCloseCode {
  return code in PROTO_ERRORS;
}

/**
 * One WebSocket = one call leg. Detects the provider from the first messages and hands the rest
 * to that provider's receiver (`TwilioReceiver` authenticates the `start`: CallSid in the path,
 * per-call token), then runs a `MediaCall` between the socket and the agent, records it when
 * asked to, and counts everything. Bad input is counted and logged with its code; what the
 * session cannot go on with closes it with a clear close code. Nothing here throws out of a
 * socket event.
 *
 * Its receiver (what a provider's message means), its transport (what goes out to the provider)
 * and its `MediaCall` hold the session itself: they read its state and report to it (`bad`,
 * `reject`, `begin`, `receiveAudio`, `stop`, `send`, `agentHungUp`, `receiveMark`, `callEnded`),
 * and the session decides what bad input costs and how the socket ends.
 */
export class MediaSession implements StreamSession {
  readonly id = randomUUID();
  readonly closed: Promise<void>;
  /** The CallSid in the URL path, when the stream was routed by one. */
  readonly pathCallSid: string | undefined;
  /** Set when the proxy vouched that this stream is a live call moved from another worker. */
  readonly resume: StreamResume | undefined;
  readonly #ws: WebSocket;
  readonly #worker: MediaWorker;
  #log: Logger;
  #state: SessionState = 'detecting';
  #provider: Provider | undefined;
  #receiver: StreamReceiver | undefined;
  #resolveClosed!: () => void;
  #startTimer: NodeJS.Timeout | undefined;
  /** While live: the no-media and stuck-reader checks. */
  #watchTimer: NodeJS.Timeout | undefined;
  #lastMediaMs = 0;
  #badMessages = 0;
  #callSid: string | undefined;
  #streamSid: string | undefined;
  #call: MediaCall | undefined;
  #reason: CallEndReason | undefined;
  #closeCode: number | undefined;
  #bytesIn = 0;
  #bytesOut = 0;
  #messageStartMs = 0;

  /**
   * `tunnelId`: the proxy's `X-Tunnel-Id`, on every line of the session when present. `resume`:
   * the proxy vouched that this stream is a live call moved here from another worker.
   */
  constructor(
    ws: WebSocket,
    worker: MediaWorker,
    pathCallSid: string | undefined,
    tunnelId?: string,
    resume?: StreamResume,
  ) {
    this.#ws = ws;
    this.#worker = worker;
    this.pathCallSid = pathCallSid;
    this.resume = resume;
    this.#log = worker.logger.child({
      sessionId: this.id,
      ...(tunnelId === undefined ? {} : { tunnelId }),
      ...(resume === undefined ? {} : { resumeAttempt: resume.attempt }),
    });
    this.closed = new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
    // Listeners go on synchronously: Twilio sends `connected` and `start` right after the 101,
    // and a handler attached after an await would miss them.
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    ws.on('close', (code) => void this.#finish(code));
    this.#startTimer = setTimeout(() => {
      this.reject('MEDIA_ERR_START_TIMEOUT', `no start within ${worker.config.startTimeoutMs} ms`);
    }, worker.config.startTimeoutMs);
  }

  get callSid(): string | undefined {
    return this.#callSid;
  }

  get streamSid(): string | undefined {
    return this.#streamSid;
  }

  get provider(): Provider | undefined {
    return this.#provider;
  }

  /** A call began on this socket: it holds a call slot (until then, only an unstarted one). */
  get started(): boolean {
    return this.#call !== undefined;
  }

  // ---- for its receiver and transport ---------------------------------------------------------

  get config(): MediaWorkerConfig {
    return this.#worker.config;
  }

  /** The session's logger as of now: it gains `provider`, then `callSid` and `streamSid`. */
  get log(): Logger {
    return this.#log;
  }

  /** The running call, once `begin` accepted a start. */
  get call(): MediaCall | undefined {
    return this.#call;
  }

  /** The session still waits for its `start` (or SansPBX `answer`). */
  get awaitingStart(): boolean {
    return this.#state === 'awaiting-start';
  }

  countError(code: string): void {
    this.#worker.countError(code);
  }

  /** The provider sent `stop`: the call ends normally. */
  stop(): void {
    this.#closeWith(CloseCode.normal, 'stop received', 'caller-hangup');
  }

  /** A mark the transport counts as played (SansPBX, which acks no marks of its own). */
  receiveMark(name: string): void {
    this.#call?.receiveMark(name);
  }

  /** One text message to the peer, with the server's backpressure; a gone or shed socket drops it. */
  send(text: string): void {
    if (this.#worker.send(this.#ws, text)) {
      this.#bytesOut += text.length; // JSON of ASCII: characters are bytes
      this.#worker.metrics.tallies.bytesOut.add(this.#provider ?? 'unknown', text.length);
    }
  }

  /** The agent hung up (through the transport): the call ends from our side. */
  agentHungUp(reason: string): void {
    if (reason === 'agent-error') {
      this.#closeWith(CloseCode.internalError, 'agent error', 'agent-error', reason);
    } else {
      this.#closeWith(CloseCode.normal, 'call ended by the agent', 'agent-hangup', reason);
    }
  }

  /**
   * StreamServer's way to end the session: 1012 at the drain deadline, 1013 for a slow reader
   * or an evicted unstarted socket. Idempotent.
   */
  close(code: number, reason: string): void {
    const endReason: CallEndReason =
      code === CloseCode.serviceRestart
        ? 'service-restart'
        : code === CloseCode.tryAgainLater
          ? 'slow-reader'
          : 'internal-error';
    this.#closeWith(code, reason, endReason);
  }

  /**
   * A newer stream for the same call started: end this agent now (before the new one starts, so
   * two agents never talk over each other) and close with 4409.
   */
  replace(): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const code = 'MEDIA_ERR_STREAM_REPLACED';
    this.#log.warn('stream replaced by a newer stream for this call', { code });
    this.#worker.countError(code);
    this.#worker.metrics.streamsReplaced.inc();
    this.#closeWith(closeOf(MEDIA_ERRORS, code), REPLACED_REASON, 'replaced');
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#messageStartMs = performance.now();
    let text: string;
    try {
      text = messageText(data, isBinary);
    } catch (err) {
      // messageText refuses binary and oversized messages only.
      const code =
        errorCode(err, 'PROTO_ERR_BINARY') === 'PROTO_ERR_TOO_LARGE'
          ? 'PROTO_ERR_TOO_LARGE'
          : 'PROTO_ERR_BINARY';
      this.reject(code, (err as Error).message);
      return;
    }
    const bytes = Buffer.isBuffer(data) ? data.length : Buffer.byteLength(text);
    this.#bytesIn += bytes;
    this.#worker.metrics.tallies.bytesIn.add(this.#provider ?? 'unknown', bytes);
    try {
      if (this.#receiver === undefined && !this.#detect(text)) return;
      this.#receiver!.receive(text);
    } catch (err) {
      // A bug of ours, not the caller's: this call ends, the worker and other calls go on.
      this.#log.error('message handler failed', { code: 'MEDIA_ERR_INTERNAL', err });
      this.#worker.countError('MEDIA_ERR_INTERNAL');
      this.#closeWith(
        closeOf(MEDIA_ERRORS, 'MEDIA_ERR_INTERNAL'),
        'internal error',
        'internal-error',
      );
    }
  }

  #detect(text: string): boolean {
    const { provider, bad } = detectStream(text);
    if (bad) this.bad(bad.code, bad.message);
    if (provider === undefined) return false;
    if (provider === 'sanspbx' && !this.#worker.config.sansPbxEnabled) {
      this.reject('MEDIA_ERR_PROVIDER_DISABLED', 'SansPBX streams are turned off');
      return false;
    }
    this.#provider = provider;
    this.#state = 'awaiting-start';
    this.#log = this.#log.child({ provider });
    this.#receiver = provider === 'twilio' ? new TwilioReceiver(this) : new SansPbxReceiver(this);
    return true;
  }

  /** Caller audio at the line rate for the running call; too-fast audio is bad input. */
  receiveAudio(call: MediaCall, pcm: Int16Array, timestampMs?: number): void {
    this.#lastMediaMs = this.#messageStartMs;
    if (!call.receiveAudio(pcm, timestampMs)) {
      this.bad('MEDIA_ERR_TOO_FAST', 'caller audio arrives faster than real time');
      return;
    }
    // Time from the message's arrival (parse included) to the agent having the audio.
    const seconds = (performance.now() - this.#messageStartMs) / 1000;
    this.#worker.metrics.inboundProcessing.observe({ provider: this.#provider! }, seconds);
  }

  // ---- the call -----------------------------------------------------------------------------

  /** Claims the call for this stream and starts the agent. */
  begin(options: CallStart): void {
    const provider = this.#provider!;
    const { callSid, streamSid, transport } = options;
    const worker = this.#worker;
    clearTimeout(this.#startTimer);
    this.#callSid = callSid;
    this.#streamSid = streamSid;
    this.#log = this.#log.child({ callSid, streamSid });
    // Ends an older stream of this call (and its agent) before this one's agent starts.
    if (!worker.claimCall(callSid, this)) {
      this.#callSid = undefined;
      this.reject('MEDIA_ERR_TOO_MANY_CALLS', 'every call slot is taken');
      return;
    }
    const resume = this.resume;
    if (resume) worker.metrics.callsResumed.inc({ provider });
    const call = new MediaCall(this, worker, options);
    this.#call = call;
    this.#state = 'live';
    this.#log.info('call started', {
      ...options.fields,
      agent: worker.agent.name,
      sampleRate: transport.sampleRate,
      parameters: Object.keys(options.customParameters),
      recording: call.recordingPath,
      ...(resume === undefined
        ? {}
        : { resumed: { attempt: resume.attempt, signed: resume.signed } }),
    });
    call.start();
    this.#watch(call);
  }

  /**
   * Two bounds of a live call, independent of the heartbeat: Twilio sends caller audio every
   * 20 ms for the whole call, so none for NO_MEDIA_TIMEOUT_MS ends it (1008); and a caller acks
   * each mark once the audio before it has played, so a mark unacked for STUCK_READER_MS means
   * the caller stopped reading, whatever the kernel buffers still absorb: shed (1013).
   */
  #watch(call: MediaCall): void {
    const { noMediaTimeoutMs, stuckReaderMs } = this.#worker.config;
    this.#lastMediaMs = performance.now();
    const everyMs = Math.max(
      50,
      Math.min(500, Math.floor(Math.min(noMediaTimeoutMs, stuckReaderMs) / 4)),
    );
    this.#watchTimer = setInterval(() => {
      if (this.#state !== 'live') return;
      const now = performance.now();
      const wait = call.markAckWaitMs;
      if (wait !== undefined && wait > stuckReaderMs) {
        this.#reason = 'slow-reader';
        this.#closeCode = CloseCode.tryAgainLater;
        this.#worker.shed(this.#ws, {
          callSid: this.#callSid,
          markAckWaitMs: Math.round(wait),
          stuckReaderMs,
        });
        // The server's shed closes through close(1013); make sure the call ends either way.
        this.#closeWith(CloseCode.tryAgainLater, 'slow reader', 'slow-reader');
        return;
      }
      if (now - this.#lastMediaMs > noMediaTimeoutMs) {
        this.reject('MEDIA_ERR_NO_MEDIA', `no media for ${noMediaTimeoutMs} ms`);
      }
    }, everyMs);
    this.#watchTimer.unref();
  }

  /** The Call ended on its own (a transport throw); ours end it through #closeWith first. */
  callEnded(reason: string): void {
    if (this.#state !== 'live') return;
    if (reason === 'agent-error') {
      this.#closeWith(CloseCode.internalError, 'agent error', 'agent-error', reason);
    } else {
      this.#closeWith(CloseCode.internalError, 'internal error', 'internal-error', reason);
    }
  }

  // ---- errors and closing -------------------------------------------------------------------

  /** A bad message the session can survive: counted, logged, ignored, up to maxBadMessages. */
  bad(code: string, message: string, fields: Record<string, unknown> = {}): void {
    this.#badMessages++;
    this.#log.warn('bad message ignored', { code, message, ...fields });
    this.#worker.countError(code);
    if (this.#badMessages > this.#worker.config.maxBadMessages) {
      this.reject(
        'MEDIA_ERR_TOO_MANY_BAD_MESSAGES',
        `more than ${this.#worker.config.maxBadMessages} bad messages`,
      );
    }
  }

  /** Input the session cannot go on with: logged, counted, closed with the code's close code. */
  reject(code: RejectCode, message: string, fields: Record<string, unknown> = {}): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const closeCode = closeCodeOf(code);
    this.#log.warn('closing session', { code, message, closeCode, ...fields });
    this.#worker.countError(code);
    // The reason is the code: short (≤ 123 bytes), stable, and what a client can branch on.
    this.#closeWith(closeCode, code, 'protocol-error');
  }

  /** Ends the call (the agent hears `onEnd` now) and starts the close handshake. Idempotent. */
  #closeWith(
    code: number,
    closeReason: string,
    reason: CallEndReason,
    callEndReason: string = reason,
  ): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'closing';
    this.#reason = reason;
    this.#closeCode = code;
    clearTimeout(this.#startTimer);
    clearInterval(this.#watchTimer);
    this.#receiver?.close();
    this.#call?.call.end(callEndReason);
    const ws = this.#ws;
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) {
      closeOrTerminate(ws, code, closeReason, CLOSE_TIMEOUT_MS);
    }
  }

  async #finish(code: number): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#startTimer);
    clearInterval(this.#watchTimer);
    // 1013 comes from StreamServer shedding a slow reader; anything else we did not start is the
    // peer going away without `stop`.
    this.#reason ??= code === CloseCode.tryAgainLater ? 'slow-reader' : 'caller-disconnected';
    this.#closeCode ??= code;
    this.#receiver?.close();
    if (this.#callSid !== undefined) this.#worker.releaseCall(this.#callSid, this);
    try {
      if (this.#call) {
        await this.#call.finish(this.#reason, this.#closeCode, {
          bytesIn: this.#bytesIn,
          bytesOut: this.#bytesOut,
          badMessages: this.#badMessages,
        });
      } else {
        this.#log.debug('session ended before a call started', {
          closeCode: code,
          reason: this.#reason,
        });
      }
    } catch (err) {
      this.#log.error('session cleanup failed', { code: 'MEDIA_ERR_INTERNAL', err });
      this.#worker.countError('MEDIA_ERR_INTERNAL');
    } finally {
      this.#resolveClosed();
    }
  }
}
