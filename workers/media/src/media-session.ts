import { randomUUID } from 'node:crypto';
import type { Agent } from '@callgate/agent';
import { mulawDecode, pcm16FromBytes } from '@callgate/audio';
import {
  decodeBase64Strict,
  detectProvider,
  messageText,
  parseSansPbxInbound,
  parseTwilioInbound,
  type SansPbxAnswer,
  type SansPbxInbound,
  type TwilioInbound,
  type TwilioMedia,
  type TwilioStart,
} from '@callgate/protocol';
import { errorCode, type Logger, type StreamSession } from '@callgate/runtime';
import type { WebSocket, RawData } from 'ws';
import { verifyCallToken } from './call-token.js';
import type { MediaConfig } from './config.js';
import { CloseCode, type MediaErrorCode } from './errors.js';
import { MediaCall, type CallOutcome } from './media-call.js';
import type { MediaMetrics, Provider } from './metrics.js';
import { SansPbxTransport } from './sanspbx-transport.js';
import { TwilioTransport, type TransportPort } from './twilio-transport.js';

export type SessionConfig = Pick<
  MediaConfig,
  | 'workerId'
  | 'callTokenSecret'
  | 'recordingsDir'
  | 'sansPbxEnabled'
  | 'sansPbxSampleRate'
  | 'startTimeoutMs'
  | 'maxBadMessages'
>;

/** What a session needs from its worker. */
export interface SessionHost {
  readonly config: SessionConfig;
  readonly agent: Agent;
  readonly metrics: MediaMetrics;
  readonly logger: Logger;
  /** StreamServer.send: backpressure; false when the socket is gone or was shed. */
  send(ws: WebSocket, text: string): boolean;
  /** One `media_errors_total{code}` for the whole worker. */
  countError(code: string): void;
  /** Registers the session as the live stream of `callSid`, replacing an older one. */
  claimCall(callSid: string, session: MediaSession): void;
  releaseCall(callSid: string, session: MediaSession): void;
}

type SessionState = 'detecting' | 'awaiting-start' | 'live' | 'closing' | 'closed';

// A peer that does not answer our close frame is cut off after this.
const CLOSE_TIMEOUT_MS = 3000;
const REPLACED_REASON = 'replaced by a newer stream for this call';

/**
 * One WebSocket = one call leg. Detects the provider from the first messages, authenticates the
 * Twilio `start` (CallSid in the path, per-call token), then runs a `Call` between the socket and
 * the agent, records it when asked to, and counts everything. Bad input is counted and logged
 * with its code; what the session cannot go on with closes it with a clear close code. Nothing
 * here throws out of a socket event.
 */
export class MediaSession implements StreamSession {
  readonly id = randomUUID();
  readonly closed: Promise<void>;
  readonly #ws: WebSocket;
  readonly #host: SessionHost;
  readonly #pathCallSid: string | undefined;
  readonly #port: TransportPort;
  #log: Logger;
  #state: SessionState = 'detecting';
  #provider: Provider | undefined;
  #resolveClosed!: () => void;
  #startTimer: NodeJS.Timeout | undefined;
  #closeTimer: NodeJS.Timeout | undefined;
  #badMessages = 0;
  #callSid: string | undefined;
  #streamSid: string | undefined;
  #call: MediaCall | undefined;
  #sansPbx: SansPbxTransport | undefined;
  #outcome: CallOutcome | undefined;
  #closeCode: number | undefined;
  #bytesIn = 0;
  #bytesOut = 0;
  #mediaFormatWarned = false;
  #messageStartMs = 0;

  /** `tunnelId`: the proxy's `X-Tunnel-Id`, on every line of the session when present. */
  constructor(
    ws: WebSocket,
    host: SessionHost,
    pathCallSid: string | undefined,
    tunnelId?: string,
  ) {
    this.#ws = ws;
    this.#host = host;
    this.#pathCallSid = pathCallSid;
    this.#log = host.logger.child(
      tunnelId === undefined ? { sessionId: this.id } : { sessionId: this.id, tunnelId },
    );
    this.closed = new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#port = {
      send: (text) => this.#send(text),
      hangup: (reason) => this.#onAgentHangup(reason),
    };
    // Listeners go on synchronously: Twilio sends `connected` and `start` right after the 101,
    // and a handler attached after an await would miss them (twilio-labs/call-gpt#46).
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    ws.on('close', (code) => void this.#finish(code));
    this.#startTimer = setTimeout(() => {
      this.#reject('MEDIA_ERR_START_TIMEOUT', `no start within ${host.config.startTimeoutMs} ms`);
    }, host.config.startTimeoutMs);
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

  /** StreamServer's way to end the session (1012 at the drain deadline). Idempotent. */
  close(code: number, reason: string): void {
    this.#closeWith(code, reason, code === CloseCode.serviceRestart ? 'service-restart' : 'error');
  }

  /**
   * A newer stream for the same call started: end this agent now (before the new one starts, so
   * two agents never talk over each other) and close with 4409.
   */
  replace(): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    const code: MediaErrorCode = 'MEDIA_ERR_STREAM_REPLACED';
    this.#log.warn('stream replaced by a newer stream for this call', { code });
    this.#host.countError(code);
    this.#host.metrics.streamsReplaced.inc();
    this.#closeWith(CloseCode.replaced, REPLACED_REASON, 'replaced');
  }

  #onMessage(data: RawData, isBinary: boolean): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#messageStartMs = performance.now();
    let text: string;
    try {
      text = messageText(data, isBinary);
    } catch (err) {
      const code = errorCode(err, 'PROTO_ERR_BINARY');
      const closeCode =
        code === 'PROTO_ERR_TOO_LARGE' ? CloseCode.tooBig : CloseCode.unsupportedData;
      this.#reject(code, (err as Error).message, {}, closeCode);
      return;
    }
    const bytes = Buffer.isBuffer(data) ? data.length : Buffer.byteLength(text);
    this.#bytesIn += bytes;
    this.#host.metrics.bytesIn.inc({ provider: this.#provider ?? 'unknown' }, bytes);
    try {
      if (this.#provider === undefined && !this.#detect(text)) return;
      if (this.#provider === 'twilio') this.#onTwilio(text);
      else this.#onSansPbx(text);
    } catch (err) {
      // A bug of ours, not the caller's: this call ends, the worker and other calls go on.
      this.#log.error('message handler failed', { code: 'MEDIA_ERR_INTERNAL', err });
      this.#host.countError('MEDIA_ERR_INTERNAL');
      this.#closeWith(CloseCode.internal, 'internal error', 'error');
    }
  }

  #detect(text: string): boolean {
    const provider = detectProvider(text);
    if (provider === undefined) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        this.#bad('PROTO_ERR_INVALID_JSON', 'message is not valid JSON');
        return false;
      }
      // A bare `connected` carries nothing to tell by; the next message will.
      const event = (value as { event?: unknown } | null)?.event;
      if (event !== 'connected') {
        this.#bad('MEDIA_ERR_UNKNOWN_PROVIDER', 'first messages match neither Twilio nor SansPBX');
      }
      return false;
    }
    if (provider === 'sanspbx' && !this.#host.config.sansPbxEnabled) {
      this.#reject('MEDIA_ERR_PROVIDER_DISABLED', 'SansPBX streams are turned off');
      return false;
    }
    this.#provider = provider;
    this.#state = 'awaiting-start';
    this.#log = this.#log.child({ provider });
    return true;
  }

  // ---- Twilio -------------------------------------------------------------------------------

  #onTwilio(text: string): void {
    let msg: TwilioInbound;
    try {
      msg = parseTwilioInbound(text);
    } catch (err) {
      this.#bad(errorCode(err, 'PROTO_ERR_INVALID_MESSAGE'), (err as Error).message);
      return;
    }
    if (msg.event === 'connected') return;
    if (msg.event === 'start') {
      this.#startTwilio(msg);
      return;
    }
    const call = this.#call;
    if (!call) {
      this.#reject('MEDIA_ERR_NOT_STARTED', `${msg.event} before start`);
      return;
    }
    if (msg.streamSid !== this.#streamSid) {
      this.#bad('MEDIA_ERR_WRONG_STREAM_SID', `${msg.event} for another stream`, {
        gotStreamSid: msg.streamSid.slice(0, 64),
      });
      return;
    }
    switch (msg.event) {
      case 'media':
        this.#twilioMedia(call, msg);
        return;
      case 'dtmf':
        this.#log.debug('dtmf', { digit: msg.dtmf.digit });
        call.receiveDtmf(msg.dtmf.digit);
        return;
      case 'mark':
        call.receiveMark(msg.mark.name);
        return;
      case 'stop':
        this.#closeWith(CloseCode.normal, 'stop received', 'stop');
        return;
    }
  }

  #startTwilio(msg: TwilioStart): void {
    if (this.#state !== 'awaiting-start') {
      this.#bad('MEDIA_ERR_ALREADY_STARTED', 'second start on one stream');
      return;
    }
    const { start } = msg;
    const format = start.mediaFormat;
    if (format.sampleRate !== 8000 || format.channels !== 1) {
      this.#reject(
        'MEDIA_ERR_MEDIA_FORMAT',
        `media format ${format.encoding} ${format.sampleRate} Hz ${format.channels} ch is not μ-law 8 kHz mono`,
      );
      return;
    }
    if (this.#pathCallSid !== undefined && this.#pathCallSid !== start.callSid) {
      this.#reject('MEDIA_ERR_CALLSID_MISMATCH', 'start.callSid differs from the URL path', {
        callSid: start.callSid.slice(0, 64),
        pathCallSid: this.#pathCallSid,
      });
      return;
    }
    const { callToken, ...customParameters } = start.customParameters;
    const secret = this.#host.config.callTokenSecret;
    if (secret !== undefined) {
      const verdict = verifyCallToken({ secret, callSid: start.callSid, token: callToken });
      if (!verdict.ok) {
        this.#reject('MEDIA_ERR_BAD_CALL_TOKEN', `call token ${verdict.reason}`, {
          callSid: start.callSid.slice(0, 64),
          reason: verdict.reason,
        });
        return;
      }
    }
    this.#begin({
      callSid: start.callSid,
      streamSid: msg.streamSid,
      customParameters,
      transport: new TwilioTransport(msg.streamSid, this.#port),
      fields: { tracks: start.tracks },
    });
  }

  #twilioMedia(call: MediaCall, msg: TwilioMedia): void {
    // Only the caller's track is audio to answer; `outbound` appears on both_tracks streams.
    if (msg.media.track !== 'inbound') return;
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64Strict(msg.media.payload);
    } catch (err) {
      this.#bad(errorCode(err, 'PROTO_ERR_BAD_BASE64'), (err as Error).message);
      return;
    }
    if (!call.receiveAudio(mulawDecode(bytes), Number(msg.media.timestamp))) this.#tooFast();
    else this.#observeMedia('twilio');
  }

  // ---- SansPBX ------------------------------------------------------------------------------

  #onSansPbx(text: string): void {
    let msg: SansPbxInbound;
    try {
      msg = parseSansPbxInbound(text);
    } catch (err) {
      this.#bad(errorCode(err, 'PROTO_ERR_INVALID_MESSAGE'), (err as Error).message);
      return;
    }
    switch (msg.event) {
      case 'connected':
        return;
      case 'answer':
        this.#startSansPbx(msg);
        return;
      case 'start': {
        const rate = msg.mediaFormat?.sampleRate;
        const configured = this.#host.config.sansPbxSampleRate;
        if (rate !== undefined && rate !== configured && !this.#mediaFormatWarned) {
          // Not fatal: the vendor's own notes disagree on the rate, and the configured one wins.
          this.#mediaFormatWarned = true;
          this.#log.warn('SansPBX start names another sample rate; using SANSPBX_SAMPLE_RATE', {
            code: 'MEDIA_ERR_MEDIA_FORMAT',
            announcedRate: rate,
            sampleRate: configured,
          });
          this.#host.countError('MEDIA_ERR_MEDIA_FORMAT');
        }
        return;
      }
      default:
        break;
    }
    const call = this.#call;
    if (!call) {
      this.#reject('MEDIA_ERR_NOT_STARTED', `${msg.event} before answer`);
      return;
    }
    if (msg.streamId !== undefined && msg.streamId !== this.#streamSid) {
      this.#bad('MEDIA_ERR_WRONG_STREAM_SID', `${msg.event} for another stream`, {
        gotStreamId: msg.streamId.slice(0, 64),
      });
      return;
    }
    switch (msg.event) {
      case 'media': {
        let bytes: Uint8Array;
        try {
          bytes = decodeBase64Strict(msg.payload);
        } catch (err) {
          this.#bad(errorCode(err, 'PROTO_ERR_BAD_BASE64'), (err as Error).message);
          return;
        }
        if (bytes.byteLength % 2 !== 0) {
          this.#bad('PROTO_ERR_INVALID_MESSAGE', 'payload is not whole PCM16 samples');
          return;
        }
        if (!call.receiveAudio(pcm16FromBytes(bytes))) this.#tooFast();
        else this.#observeMedia('sanspbx');
        return;
      }
      case 'dtmf':
        this.#log.debug('dtmf', { digit: msg.digit });
        call.receiveDtmf(msg.digit);
        return;
      case 'stop':
        this.#closeWith(CloseCode.normal, 'stop received', 'stop');
        return;
    }
  }

  #startSansPbx(msg: SansPbxAnswer): void {
    if (this.#state !== 'awaiting-start') {
      this.#bad('MEDIA_ERR_ALREADY_STARTED', 'second answer on one stream');
      return;
    }
    if (this.#pathCallSid !== undefined && this.#pathCallSid !== msg.callId) {
      this.#reject('MEDIA_ERR_CALLSID_MISMATCH', 'answer.callId differs from the URL path', {
        callSid: msg.callId.slice(0, 64),
        pathCallSid: this.#pathCallSid,
      });
      return;
    }
    const transport = new SansPbxTransport({
      identity: { callId: msg.callId, streamId: msg.streamId, channelId: msg.channelId },
      sampleRate: this.#host.config.sansPbxSampleRate,
      port: this.#port,
      onMark: (name) => this.#call?.receiveMark(name),
    });
    this.#sansPbx = transport;
    this.#begin({
      callSid: msg.callId,
      streamSid: msg.streamId,
      customParameters: { channelId: msg.channelId },
      transport,
      fields: { channelId: msg.channelId },
    });
  }

  /** Time from the message's arrival (parse included) to the agent having the audio. */
  #observeMedia(provider: Provider): void {
    const seconds = (performance.now() - this.#messageStartMs) / 1000;
    this.#host.metrics.inboundProcessing.observe({ provider }, seconds);
  }

  #tooFast(): void {
    this.#bad('MEDIA_ERR_TOO_FAST', 'caller audio arrives faster than real time');
  }

  // ---- the call -----------------------------------------------------------------------------

  #begin(options: {
    callSid: string;
    streamSid: string;
    customParameters: Record<string, string>;
    transport: TwilioTransport | SansPbxTransport;
    fields: Record<string, unknown>;
  }): void {
    const provider = this.#provider!;
    const { callSid, streamSid, transport } = options;
    const host = this.#host;
    clearTimeout(this.#startTimer);
    this.#callSid = callSid;
    this.#streamSid = streamSid;
    this.#log = this.#log.child({ callSid, streamSid });
    // Ends an older stream of this call (and its agent) before this one's agent starts.
    host.claimCall(callSid, this);
    const call = new MediaCall({
      provider,
      sessionId: this.id,
      callSid,
      streamSid,
      customParameters: options.customParameters,
      transport,
      agent: host.agent,
      metrics: host.metrics,
      log: this.#log,
      workerId: host.config.workerId,
      recordingsDir: host.config.recordingsDir,
      countError: (code) => host.countError(code),
      onEnd: (reason) => this.#onCallEnd(reason),
    });
    this.#call = call;
    this.#state = 'live';
    this.#log.info('call started', {
      ...options.fields,
      agent: host.agent.name,
      sampleRate: transport.sampleRate,
      parameters: Object.keys(options.customParameters),
      recording: call.recordingPath,
    });
    call.start();
  }

  #onAgentHangup(reason: string): void {
    if (reason === 'agent-error') {
      this.#closeWith(CloseCode.internal, 'agent error', 'agent-error', reason);
    } else {
      this.#closeWith(CloseCode.normal, 'call ended by the agent', 'hangup', reason);
    }
  }

  /** The Call ended on its own (a transport throw); ours end it through #closeWith first. */
  #onCallEnd(reason: string): void {
    if (this.#state !== 'live') return;
    if (reason === 'agent-error') {
      this.#closeWith(CloseCode.internal, 'agent error', 'agent-error', reason);
    } else {
      this.#closeWith(CloseCode.internal, 'internal error', 'error', reason);
    }
  }

  #send(text: string): void {
    if (this.#host.send(this.#ws, text)) {
      this.#bytesOut += text.length; // JSON of ASCII: characters are bytes
      this.#host.metrics.bytesOut.inc({ provider: this.#provider ?? 'unknown' }, text.length);
    }
  }

  // ---- errors and closing -------------------------------------------------------------------

  /** A bad message the session can survive: counted, logged, ignored, up to maxBadMessages. */
  #bad(code: string, message: string, fields: Record<string, unknown> = {}): void {
    this.#badMessages++;
    this.#log.warn('bad message ignored', { code, message, ...fields });
    this.#host.countError(code);
    if (this.#badMessages > this.#host.config.maxBadMessages) {
      this.#reject(
        'MEDIA_ERR_TOO_MANY_BAD_MESSAGES',
        `more than ${this.#host.config.maxBadMessages} bad messages`,
      );
    }
  }

  /** Input the session cannot go on with: logged, counted, closed (1008 unless said). */
  #reject(
    code: string,
    message: string,
    fields: Record<string, unknown> = {},
    closeCode: number = CloseCode.policy,
  ): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#log.warn('closing session', { code, message, closeCode, ...fields });
    this.#host.countError(code);
    // The reason is the code: short (≤ 123 bytes), stable, and what a client can branch on.
    this.#closeWith(closeCode, code, 'protocol-error');
  }

  /** Ends the call (the agent hears `onEnd` now) and starts the close handshake. Idempotent. */
  #closeWith(
    code: number,
    reason: string,
    outcome: CallOutcome,
    endReason: string = outcome,
  ): void {
    if (this.#state === 'closing' || this.#state === 'closed') return;
    this.#state = 'closing';
    this.#outcome = outcome;
    this.#closeCode = code;
    clearTimeout(this.#startTimer);
    this.#sansPbx?.close();
    this.#call?.call.end(endReason);
    const ws = this.#ws;
    if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) {
      ws.close(code, reason);
      this.#closeTimer = setTimeout(() => ws.terminate(), CLOSE_TIMEOUT_MS);
    }
  }

  async #finish(code: number): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    clearTimeout(this.#startTimer);
    clearTimeout(this.#closeTimer);
    // 1013 comes from StreamServer shedding a slow reader; anything else we did not start is the
    // peer going away without `stop`.
    this.#outcome ??= code === 1013 ? 'shed' : 'disconnected';
    this.#closeCode ??= code;
    this.#sansPbx?.close();
    if (this.#callSid !== undefined) this.#host.releaseCall(this.#callSid, this);
    try {
      if (this.#call) {
        await this.#call.finish(this.#outcome, this.#closeCode, {
          bytesIn: this.#bytesIn,
          bytesOut: this.#bytesOut,
          badMessages: this.#badMessages,
        });
      } else {
        this.#log.debug('session ended before a call started', {
          closeCode: code,
          outcome: this.#outcome,
        });
      }
    } catch (err) {
      this.#log.error('session cleanup failed', { code: 'MEDIA_ERR_INTERNAL', err });
      this.#host.countError('MEDIA_ERR_INTERNAL');
    } finally {
      this.#resolveClosed();
    }
  }
}
