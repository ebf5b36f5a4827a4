import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Pacer, concatPcm, frameSamples, resample } from '@callgate/audio';
import { errorCode } from '@callgate/runtime';
import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks.js';
import { WebSocket, type RawData } from 'ws';
import { SimulatorError, connectError } from './errors.js';
import { Playback } from './playback.js';
import { urlWithoutQuery } from './signature.js';
import { REPLY_RMS_THRESHOLD, computeReplies, windowRms } from './summary.js';
import type { CallSummary, Provider, Segment, SimEvent } from './types.js';

export const FRAME_MS = 20;
/** Protocol errors kept per call; a worker that sends garbage 50 times a second must not grow memory. */
const MAX_PROTOCOL_ERRORS = 100;
/** How long a caller that hung up waits for the server's close frame before dropping the socket. */
const CLOSE_WAIT_MS = 2000;

export interface CallerOptions {
  /** The stream URL to upgrade to. */
  url: string;
  callSid?: string;
  accountSid?: string;
  customParameters?: Record<string, string>;
  /** Signs the upgrade with `X-Twilio-Signature` over `signatureUrl`. */
  authToken?: string;
  /** URL to sign; default `url` without its query string. */
  signatureUrl?: string;
  headers?: Record<string, string>;
  connectTimeoutMs?: number;
  /** Caller utterances for reply latency; default: one per `say()`. */
  segments?: Segment[];
  /** Before `connect()` resolves: reject with SIM_ERR_ABORTED. Afterwards: `hangup()`. */
  signal?: AbortSignal;
  onEvent?: (e: SimEvent) => void;
  /**
   * Twilio's `<Connect action>`: called when the server closes the stream WITH a close frame
   * before the call ended (Twilio then requests the action URL and runs the TwiML it gets).
   * Resolve with the next stream to open, or undefined to end the call. Never called when the
   * connection drops without a close frame (code 1006): what Twilio does then is not documented.
   */
  onStreamEnded?: (info: StreamEndInfo) => Promise<NextStream | undefined>;
  /** Bound on streams opened after the first one (a server that offers streams forever). */
  maxReconnects?: number;
}

/** The stream that ended, for `onStreamEnded`. */
export interface StreamEndInfo {
  /** Close code of the server's close frame, or 1006 when the next stream failed to open. */
  code: number;
  reason: string;
  streamSid: string;
  /** Caller timeline, ms. */
  atMs: number;
  /** Aborted when the caller hangs up meanwhile. */
  signal: AbortSignal;
}

/** Where the call continues: a new `<Connect><Stream>`. */
export interface NextStream {
  url: string;
  customParameters: Record<string, string>;
}

const DEFAULT_MAX_RECONNECTS = 10;

/** Counters a provider-specific caller updates; the summary reads them. */
export interface CallCounters {
  audioFramesSent: number;
  audioFramesReceived: number;
  audioMessagesReceived: number;
  marksReceived: number;
  marksAcked: number;
  marksAckedOnClear: number;
  clears: number;
  dtmfSent: number;
}

/**
 * What both simulated phones share: the upgrade, one 20 ms clock that sends the caller's frame
 * and plays the worker's audio each tick (so both sides sit on the caller's timeline), DTMF and
 * hang-up scheduling, and the end-of-call summary. `TwilioCaller` and `SansPbxCaller` supply the
 * wire format. Emits every `SimEvent` under its `type` ('open', 'media', 'mark', ...).
 */
export abstract class BaseCaller extends EventEmitter {
  abstract readonly provider: Provider;
  /** Line sample rate: what goes on the wire and what the speaker plays. */
  readonly sampleRate: number;
  readonly samplesPerFrame: number;
  readonly url: string;
  readonly callSid: string;
  readonly accountSid: string;
  readonly customParameters: Record<string, string>;
  protected readonly counters: CallCounters = {
    audioFramesSent: 0,
    audioFramesReceived: 0,
    audioMessagesReceived: 0,
    marksReceived: 0,
    marksAcked: 0,
    marksAckedOnClear: 0,
    clears: 0,
    dtmfSent: 0,
  };
  protected readonly playback: Playback;

  readonly #options: CallerOptions;
  readonly #pacer: Pacer;
  #ws: WebSocket | undefined;
  #state: 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed' = 'idle';
  /** 20 ms ticks on the caller's timeline, including ticks between two streams. */
  #ticks = 0;
  /** Audio messages sent on the current stream (Twilio's `media.chunk`). */
  #streamAudioMessages = 0;
  #streamStartTick = 0;
  #streamSids: string[] = [];
  #reconnectAttempts = 0;
  #reconnectGapsMs: number[] = [];
  #reconnectAbort: AbortController | undefined;
  #out: Int16Array[] = [];
  #outOffset = 0;
  #outSamples = 0;
  readonly #segments: Segment[];
  readonly #explicitSegments: boolean;
  #dtmf: Array<{ atMs: number; digit: string }> = [];
  #hangupAtMs = Infinity;
  #played: Int16Array[] = [];
  #wasSilent = true;
  #repliedTo = -1;
  #protocolErrors: Array<{ code: string; message: string }> = [];
  #samplesReceived = 0;
  #startedAt = 0;
  #durationMs = 0;
  #closeCode: number | null = null;
  #closeReason = '';
  #closedBy: 'caller' | 'server' = 'server';
  #closeTimer: NodeJS.Timeout | undefined;
  #abortConnect: (() => void) | undefined;
  #resolveEnded!: () => void;
  /** Resolves once the socket is closed (by either side); never rejects. */
  readonly ended: Promise<void>;

  constructor(options: CallerOptions, sampleRate: number) {
    super();
    this.#options = options;
    this.url = options.url;
    this.sampleRate = sampleRate;
    this.samplesPerFrame = frameSamples(sampleRate, FRAME_MS);
    this.callSid = options.callSid ?? callSidFromUrl(options.url) ?? randomSid('CA');
    this.accountSid = options.accountSid ?? randomSid('AC');
    this.customParameters = { ...options.customParameters };
    this.#segments = options.segments ? options.segments.map((s) => ({ ...s })) : [];
    this.#explicitSegments = options.segments !== undefined;
    this.playback = new Playback({
      samplesPerFrame: this.samplesPerFrame,
      onMark: (name, cleared) => this.onMarkReached(name, cleared),
    });
    this.#pacer = new Pacer({ intervalMs: FRAME_MS, onTick: ({ tick }) => this.#onTick(tick) });
    this.ended = new Promise((resolve) => (this.#resolveEnded = resolve));
  }

  /** The stream id this caller announces (`MZ…` for Twilio); a new one for every stream. */
  abstract readonly streamSid: string;
  /** A new stream of the same call starts: new stream id, counters from the start. */
  protected abstract newStream(): void;
  protected abstract openingMessages(): string[];
  protected abstract mediaMessage(frame: Int16Array, chunk: number, timestampMs: number): string;
  protected abstract dtmfMessage(digit: string): string;
  protected abstract stopMessage(): string;
  /** Parses and acts on one text message from the worker. */
  protected abstract handleMessage(text: string): void;
  /** A mark was reached by playback or dropped by `clear`; Twilio echoes it. */
  protected abstract onMarkReached(name: string, cleared: boolean): void;

  /** Time on the caller's timeline: ms of 20 ms ticks since the call started. */
  get elapsedMs(): number {
    return this.#ticks * FRAME_MS;
  }

  get isOpen(): boolean {
    return this.#state === 'open';
  }

  /**
   * Opens the WebSocket, sends the opening messages and starts the 20 ms clock. Rejects with
   * SIM_ERR_CONNECT (refused, unreachable), SIM_ERR_HANDSHAKE (not 101; `status` set),
   * SIM_ERR_TIMEOUT or SIM_ERR_ABORTED.
   */
  connect(): Promise<void> {
    if (this.#state !== 'idle') {
      return Promise.reject(
        new SimulatorError('SIM_ERR_INVALID_OPTIONS', 'connect() may be called only once'),
      );
    }
    this.#state = 'connecting';
    const o = this.#options;
    const abort = new AbortController();
    this.#abortConnect = () => abort.abort();
    const onOuterAbort = (): void => abort.abort();
    o.signal?.addEventListener('abort', onOuterAbort, { once: true });
    if (o.signal?.aborted === true) abort.abort();
    const cleanup = (): void => {
      this.#abortConnect = undefined;
      o.signal?.removeEventListener('abort', onOuterAbort);
    };
    return this.#dial(this.url, o.signatureUrl, abort.signal).then(
      (socket) => {
        cleanup();
        if (o.signal) {
          const signal = o.signal;
          const hangUpOnAbort = (): void => void this.hangup();
          signal.addEventListener('abort', hangUpOnAbort, { once: true });
          void this.ended.then(() => signal.removeEventListener('abort', hangUpOnAbort));
        }
        this.#startedAt = performance.now();
        this.#onOpen(socket);
        this.#pacer.start();
      },
      (err: unknown) => {
        cleanup();
        this.#state = 'closed';
        this.#closeReason = err instanceof Error ? err.message : String(err);
        this.#resolveEnded();
        throw err;
      },
    );
  }

  /** Opens one stream's WebSocket; resolves on the 101, rejects with a SimulatorError. */
  #dial(url: string, signatureUrl: string | undefined, signal: AbortSignal): Promise<WebSocket> {
    const o = this.#options;
    const timeoutMs = o.connectTimeoutMs ?? 5000;
    const headers: Record<string, string> = { ...o.headers };
    if (o.authToken !== undefined) {
      headers['X-Twilio-Signature'] = getExpectedTwilioSignature(
        o.authToken,
        signatureUrl ?? urlWithoutQuery(url),
        {},
      );
    }
    return new Promise<WebSocket>((resolve, reject) => {
      let settled = false;
      let ws: WebSocket | undefined;
      let timer: NodeJS.Timeout | undefined = undefined;
      const fail = (err: SimulatorError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        ws?.terminate();
        reject(err);
      };
      const onAbort = (): void =>
        fail(new SimulatorError('SIM_ERR_ABORTED', `call to ${url} aborted before it opened`));
      if (signal.aborted) {
        onAbort();
        return;
      }
      try {
        ws = new WebSocket(url, {
          perMessageDeflate: false,
          headers,
          handshakeTimeout: timeoutMs,
        });
      } catch (err) {
        // An invalid URL throws synchronously (ws: "Invalid URL", unsupported protocol).
        fail(
          new SimulatorError('SIM_ERR_INVALID_OPTIONS', `bad stream URL ${url}`, {
            cause: err,
          }),
        );
        return;
      }
      const socket = ws;
      const timeoutError = (cause?: unknown): SimulatorError =>
        new SimulatorError(
          'SIM_ERR_TIMEOUT',
          `no WebSocket handshake from ${url} within ${timeoutMs} ms`,
          cause === undefined ? {} : { cause },
        );
      timer = setTimeout(() => fail(timeoutError()), timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      socket.on('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        fail(
          new SimulatorError(
            'SIM_ERR_HANDSHAKE',
            `${url} answered the upgrade with HTTP ${status} instead of 101`,
            { status },
          ),
        );
      });
      socket.on('error', (err) => {
        // After the open, ws follows every error with 'close' (code 1006), which ends the stream.
        if (settled) return;
        fail(
          /handshake has timed out/i.test(err.message) ? timeoutError(err) : connectError(url, err),
        );
      });
      socket.on('open', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(socket);
      });
    });
  }

  #onOpen(ws: WebSocket): void {
    this.#ws = ws;
    this.#state = 'open';
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (this.#ws !== ws || (this.#state !== 'open' && this.#state !== 'closing')) return;
      if (isBinary) {
        this.protocolError('PROTO_ERR_BINARY', 'binary message from the worker (Twilio 31950)');
        return;
      }
      this.handleMessage(rawToString(data));
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (this.#ws === ws) this.#onClose(code, reason.toString());
    });
    this.#streamAudioMessages = 0;
    this.#streamStartTick = this.#ticks;
    this.#streamSids.push(this.streamSid);
    for (const text of this.openingMessages()) this.send(text);
    this.emitSim({
      type: 'open',
      provider: this.provider,
      callSid: this.callSid,
      streamSid: this.streamSid,
      url: ws.url,
    });
  }

  /**
   * Queues caller audio (mono PCM16 at the line rate) behind audio already queued; it goes out one
   * 20 ms frame per tick. Without explicit segments, each call is one utterance for the summary.
   */
  say(pcm: Int16Array, sampleRate = this.sampleRate): void {
    const line =
      sampleRate === this.sampleRate ? pcm.slice() : resample(pcm, sampleRate, this.sampleRate);
    if (line.length === 0) return;
    const startSample = this.#ticks * this.samplesPerFrame + this.#outSamples;
    this.#out.push(line);
    this.#outSamples += line.length;
    if (!this.#explicitSegments) {
      const toMs = (n: number): number => (n * 1000) / this.sampleRate;
      this.#segments.push({ startMs: toMs(startSample), endMs: toMs(startSample + line.length) });
    }
  }

  /** Alias of `say()`. */
  sendAudio(pcm: Int16Array, sampleRate = this.sampleRate): void {
    this.say(pcm, sampleRate);
  }

  /** Caller audio still waiting to be sent, in ms. */
  get queuedAudioMs(): number {
    return (this.#outSamples * 1000) / this.sampleRate;
  }

  /**
   * Sends a DTMF message now, or with `atMs` on the first tick at or after that time on the
   * caller's timeline (may be scheduled before `connect()`).
   */
  sendDtmf(digit: string, atMs?: number): void {
    if (atMs !== undefined) {
      this.#dtmf.push({ atMs, digit });
      this.#dtmf.sort((a, b) => a.atMs - b.atMs);
      return;
    }
    if (this.#state === 'open' && this.send(this.dtmfMessage(digit))) this.counters.dtmfSent++;
  }

  /** Hangs up when the caller timeline reaches `atMs`. */
  hangupAt(atMs: number): void {
    this.#hangupAtMs = atMs;
  }

  /**
   * Hangs up: sends `stop`, closes with 1000 and resolves once the socket is closed (the server's
   * close frame, or CLOSE_WAIT_MS later by dropping it). Idempotent.
   */
  hangup(): Promise<void> {
    if (this.#state === 'idle') {
      this.#state = 'closed';
      this.#closedBy = 'caller';
      this.#resolveEnded();
    } else if (this.#state === 'connecting') {
      this.#abortConnect?.();
    } else if (this.#state === 'reconnecting') {
      // Between two streams there is no socket: the call just ends.
      this.#closedBy = 'caller';
      this.#durationMs = performance.now() - this.#startedAt;
      this.#finish(null, 'caller hung up between two streams');
    } else if (this.#state === 'open') {
      this.#state = 'closing';
      this.#closedBy = 'caller';
      this.#pacer.stop();
      this.#durationMs = performance.now() - this.#startedAt;
      this.send(this.stopMessage());
      this.#ws?.close(1000, 'caller hung up');
      this.#closeTimer = setTimeout(() => this.#ws?.terminate(), CLOSE_WAIT_MS);
    }
    return this.ended;
  }

  /** Drops the socket without `stop` (a lost line). Idempotent. */
  destroy(): void {
    if (this.#state === 'reconnecting') {
      void this.hangup();
    } else if (this.#state === 'open' || this.#state === 'closing') {
      if (this.#state === 'open') this.#closedBy = 'caller';
      this.#ws?.terminate();
    }
  }

  #onClose(code: number, reason: string): void {
    if (this.#state === 'closed' || this.#state === 'reconnecting') return;
    if (this.#state === 'open') {
      // 1006: ws saw no close frame (TCP cut, RST). Twilio's behaviour then is unknown: end.
      if (code !== 1006 && this.#options.onStreamEnded !== undefined) {
        this.#streamEnded(code, reason);
        return;
      }
      this.#closedBy = 'server';
      this.#durationMs = performance.now() - this.#startedAt;
    }
    this.#finish(code, reason);
  }

  #finish(code: number | null, reason: string): void {
    this.#state = 'closed';
    this.#pacer.stop();
    clearTimeout(this.#closeTimer);
    this.#reconnectAbort?.abort();
    this.#closeCode = code;
    this.#closeReason = reason;
    this.emitSim({ type: 'close', code, reason, closedBy: this.#closedBy });
    this.#resolveEnded();
  }

  /**
   * The server closed the stream with a close frame while the call goes on: like Twilio, ask
   * `onStreamEnded` (the action URL) where to go next. The caller's clock keeps running; audio
   * said meanwhile is lost, the speaker plays silence, audio still buffered from the old stream
   * is dropped and its marks are never echoed.
   */
  #streamEnded(code: number, reason: string): void {
    this.#state = 'reconnecting';
    const gapStartedAt = performance.now();
    const abort = new AbortController();
    this.#reconnectAbort = abort;
    this.playback.reset();
    this.emitSim({
      type: 'stream-end',
      atMs: this.elapsedMs,
      code,
      reason,
      streamSid: this.streamSid,
    });
    void this.#followAction(code, reason, gapStartedAt, abort.signal);
  }

  async #followAction(
    code: number,
    reason: string,
    gapStartedAt: number,
    signal: AbortSignal,
  ): Promise<void> {
    const hook = this.#options.onStreamEnded;
    const max = this.#options.maxReconnects ?? DEFAULT_MAX_RECONNECTS;
    const live = (): boolean => !signal.aborted && this.#state === 'reconnecting';
    const end = (why: string): void => {
      if (!live()) return;
      this.#closedBy = 'server';
      this.#durationMs = performance.now() - this.#startedAt;
      this.#finish(code, why);
    };
    for (;;) {
      let next: NextStream | undefined;
      try {
        next = await hook?.({
          code,
          reason,
          streamSid: this.streamSid,
          atMs: this.elapsedMs,
          signal,
        });
      } catch (err) {
        if (!live()) return;
        this.protocolError(
          errorCode(err, 'SIM_ERR_TWIML'),
          `action request failed: ${err instanceof Error ? err.message : String(err)}`,
        );
        next = undefined;
      }
      if (!live()) return;
      if (next === undefined) {
        end(reason);
        return;
      }
      if (this.#reconnectAttempts >= max) {
        end(`${reason} (simulator gave up after ${max} new streams)`);
        return;
      }
      this.#reconnectAttempts++;
      let socket: WebSocket;
      try {
        socket = await this.#dial(next.url, undefined, signal);
      } catch (err) {
        if (!live()) return;
        // A stream that cannot open ends like any other (Twilio 31920): the action URL again.
        code = 1006;
        reason = err instanceof Error ? err.message : String(err);
        this.protocolError(errorCode(err, 'SIM_ERR_CONNECT'), `new stream: ${reason}`);
        continue;
      }
      if (!live()) {
        socket.terminate();
        return;
      }
      for (const key of Object.keys(this.customParameters)) delete this.customParameters[key];
      Object.assign(this.customParameters, next.customParameters);
      this.newStream();
      const gapMs = performance.now() - gapStartedAt;
      this.#reconnectGapsMs.push(gapMs);
      this.#reconnectAbort = undefined;
      this.#onOpen(socket);
      this.emitSim({
        type: 'reconnect',
        atMs: this.elapsedMs,
        streamSid: this.streamSid,
        url: next.url,
        gapMs,
        reconnects: this.#reconnectGapsMs.length,
      });
      return;
    }
  }

  #onTick(tick: number): void {
    if (this.#state !== 'open' && this.#state !== 'reconnecting') return;
    const nowMs = tick * FRAME_MS;
    if (nowMs >= this.#hangupAtMs) {
      void this.hangup();
      return;
    }
    this.#ticks++;
    if (this.#state === 'reconnecting') {
      // No stream: what the caller says now is lost, DTMF too.
      this.#nextOutFrame();
      while (this.#dtmf.length > 0 && (this.#dtmf[0]?.atMs ?? Infinity) <= nowMs)
        this.#dtmf.shift();
    } else {
      while (this.#dtmf.length > 0 && (this.#dtmf[0]?.atMs ?? Infinity) <= nowMs) {
        const next = this.#dtmf.shift();
        if (next) this.sendDtmf(next.digit);
      }
      this.counters.audioFramesSent++;
      this.#streamAudioMessages++;
      this.send(
        this.mediaMessage(
          this.#nextOutFrame(),
          this.#streamAudioMessages,
          (this.#ticks - 1 - this.#streamStartTick) * FRAME_MS,
        ),
      );
    }
    // The speaker plays after this turn's socket reads: when this process was stalled (the
    // Pacer then delivers every overdue tick at once, before any I/O), audio the worker sent in
    // time is read first, so our own stall is not mistaken for a gap in the worker's audio.
    setImmediate(() => {
      if (this.#state !== 'closed') this.#play(nowMs);
    });
  }

  #nextOutFrame(): Int16Array {
    const frame = new Int16Array(this.samplesPerFrame);
    let filled = 0;
    while (filled < frame.length && this.#out.length > 0) {
      const head = this.#out[0]!;
      const take = Math.min(frame.length - filled, head.length - this.#outOffset);
      frame.set(head.subarray(this.#outOffset, this.#outOffset + take), filled);
      filled += take;
      this.#outOffset += take;
      this.#outSamples -= take;
      if (this.#outOffset === head.length) {
        this.#out.shift();
        this.#outOffset = 0;
      }
    }
    return frame;
  }

  #play(nowMs: number): void {
    const frame = this.playback.playFrame();
    this.#played.push(frame);
    const loud = windowRms(frame, 0, frame.length) > REPLY_RMS_THRESHOLD;
    if (loud && this.#wasSilent) this.#emitReplyStart(nowMs);
    this.#wasSilent = !loud;
  }

  #emitReplyStart(atMs: number): void {
    let utteranceIndex: number | null = null;
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      if ((this.#segments[i]?.endMs ?? Infinity) <= atMs) {
        utteranceIndex = i;
        break;
      }
    }
    let latencyMs: number | null = null;
    if (utteranceIndex !== null && utteranceIndex > this.#repliedTo) {
      this.#repliedTo = utteranceIndex;
      latencyMs = atMs - (this.#segments[utteranceIndex]?.endMs ?? atMs);
    } else {
      utteranceIndex = null;
    }
    this.emitSim({ type: 'reply-start', atMs, utteranceIndex, latencyMs });
  }

  /** Sends one text message if the socket is open; false (nothing sent) otherwise. */
  protected send(text: string): boolean {
    const ws = this.#ws;
    if (ws?.readyState !== WebSocket.OPEN) return false;
    ws.send(text);
    return true;
  }

  /** Records a message from the worker that Twilio would reject (31950/31951) and emits it. */
  protected protocolError(code: string, message: string): void {
    if (this.#protocolErrors.length < MAX_PROTOCOL_ERRORS) {
      this.#protocolErrors.push({ code, message });
    }
    this.emitSim({ type: 'protocol-error', code, message });
  }

  /** Buffers worker audio (line rate) for playback. */
  protected receiveAudio(pcm: Int16Array): void {
    this.counters.audioMessagesReceived++;
    this.#samplesReceived += pcm.length;
    this.counters.audioFramesReceived = Math.round(this.#samplesReceived / this.samplesPerFrame);
    this.playback.enqueueAudio(pcm);
    this.emitSim({
      type: 'media',
      atMs: this.elapsedMs,
      samples: pcm.length,
      audioMessagesReceived: this.counters.audioMessagesReceived,
      samplesPlayed: this.playback.samplesPlayed,
    });
  }

  protected emitSim(e: SimEvent): void {
    this.emit(e.type, e);
    try {
      this.#options.onEvent?.(e);
    } catch {
      // A test's event callback must not break the simulated phone; its own assertions report.
    }
  }

  /** The call's summary; complete once `ended` has resolved. */
  summary(): CallSummary {
    const played = concatPcm(this.#played);
    const replyAudio = this.sampleRate === 8000 ? played : resample(played, this.sampleRate, 8000);
    const c = this.counters;
    return {
      callSid: this.callSid,
      streamSid: this.streamSid,
      provider: this.provider,
      durationMs: Math.round(
        this.#state === 'open' || this.#state === 'reconnecting'
          ? performance.now() - this.#startedAt
          : this.#durationMs,
      ),
      audioFramesSent: c.audioFramesSent,
      audioFramesReceived: c.audioFramesReceived,
      audioMessagesReceived: c.audioMessagesReceived,
      marksReceived: c.marksReceived,
      marksAcked: c.marksAcked,
      marksAckedOnClear: c.marksAckedOnClear,
      clears: c.clears,
      dtmfSent: c.dtmfSent,
      replies: computeReplies(replyAudio, 8000, this.#segments),
      protocolErrors: this.#protocolErrors.slice(),
      closeCode: this.#closeCode,
      closeReason: this.#closeReason,
      closedBy: this.#closedBy,
      replyAudio: replyAudio.subarray(0, Math.round((played.length * 8000) / this.sampleRate)),
      replyAudioSampleRate: 8000,
      customParameters: { ...this.customParameters },
      streamSids: this.#streamSids.slice(),
      reconnects: this.#reconnectGapsMs.length,
      reconnectGapsMs: this.#reconnectGapsMs.map((ms) => Math.round(ms)),
      actionRequests: 0,
      actionResult: null,
    };
  }
}

function rawToString(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

/** A Twilio-style id: two letters and 32 lowercase hex digits (34 chars). */
export function randomSid(prefix: string): string {
  return prefix + randomBytes(16).toString('hex');
}

/**
 * `/media-stream/<CallSid>` carries the CallSid; use it so the webhook, the stream and the summary
 * agree (the worker closes a stream whose `start.callSid` differs from its path). Any id the worker
 * accepts is taken, so a readable `CAtest` works as well as a real 34-character sid.
 */
export function callSidFromUrl(url: string): string | undefined {
  try {
    const segments = new URL(url).pathname.split('/');
    if (segments.length !== 3 || segments[1] !== 'media-stream') return undefined;
    const last = segments[2] ?? '';
    return /^[A-Za-z0-9_-]{1,64}$/.test(last) ? last : undefined;
  } catch {
    return undefined;
  }
}
