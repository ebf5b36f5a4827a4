import {
  Call,
  copyCallStats,
  type Agent,
  type CallStats,
  type CallStatsCounters,
  type CallTransport,
  type PacerFactory,
} from '@callgate/agent';
import { detectDtmf, pcm16FromBytes, pcm16ToBytes } from '@callgate/audio';
import {
  TestAgentCloseCode,
  TEST_AGENT_FRAME_MS,
  TEST_AGENT_PROTOCOL_VERSION,
  parseTestAgentClientMessage,
  serializeTestAgentServerMessage,
  validateTestAgentAudio,
  type TestAgentSampleRate,
  type TestAgentServerMessage,
} from '@callgate/protocol';
import {
  closeOf,
  closeOrTerminate,
  errorCode,
  type Logger,
  type StreamSession,
  STREAM_SERVER_DEFAULTS,
} from '@callgate/runtime';
import type { WebSocket } from 'ws';
import { TEST_AGENT_ERRORS, TestAgentError } from './errors.js';
import type { TestAgentMetrics } from './metrics.js';

/** How far ahead of real time browser audio may run (network jitter, a backgrounded tab). */
const MAX_AUDIO_AHEAD_MS = 5000;

/** The parts of StreamServer a session uses: sending with backpressure and error counting. */
export interface SessionServer {
  send(ws: WebSocket, data: string | Buffer, options?: { binary?: boolean }): boolean;
  countError(code: string): void;
}

export interface TestAgentSessionOptions {
  sessionId: string;
  ws: WebSocket;
  server: SessionServer;
  agent: Agent;
  sampleRate: TestAgentSampleRate;
  maxDurationSeconds: number;
  /** Malformed messages tolerated; one more closes the session with 1008. */
  maxBadMessages: number;
  logger: Logger;
  metrics: TestAgentMetrics;
  /** The proxy's `X-Tunnel-Id` of the upgrade; on every line of the session when set. */
  tunnelId?: string | undefined;
  /** How long a close handshake may take before the socket is terminated. Default: the StreamServer's. */
  closeTimeoutMs?: number;
  /** Outbound pacer for the Call; tests may tick by hand. */
  createPacer?: PacerFactory;
  /** How far ahead of real time agent audio is sent (Call `playbackLeadMs`; default the Call's). */
  playbackLeadMs?: number;
}

type SessionState = 'open' | 'closing' | 'closed';

interface OpenUtterance {
  samples: number;
  tone: string | undefined;
}

const TONE_CHECK_SECONDS = 0.5;
// Close reasons travel in the close frame: at most 123 bytes.
const REASONS: Record<string, string> = {
  'caller-hangup': 'caller hung up',
  'max-duration': 'session reached its maximum duration',
  'agent-error': 'agent failed',
  'too-many-bad-messages': 'too many malformed messages',
};
/**
 * The `reason` label values of `test_agent_sessions_finished_total`: the worker's own end reasons
 * and the Call's. An agent may hang up with any string; as a label that would be unbounded
 * cardinality, so its reasons count as `agent-hangup` (and a Call end reason we do not know yet as
 * `other`). The raw reason is still in the `session ended` line and the `hangup` message.
 */
export const SESSION_END_LABELS = new Set([
  'caller-hangup',
  'caller-disconnected',
  'max-duration',
  'agent-error',
  'agent-hangup',
  'too-many-bad-messages',
  'service-restart',
  'server-close',
  'slow-reader',
  'message-too-big',
  'transport-error',
  'other',
]);

/**
 * One browser tab talking to the agent: binary PCM16 messages and JSON control messages on one
 * WebSocket (docs/test-agent-protocol.md), turned into the same `Call` the media worker runs.
 * It is the Call's transport at the session rate. Ends when either side hangs up, the socket
 * closes, the maximum duration passes, or the browser sends too many malformed messages.
 */
export class TestAgentSession implements StreamSession, CallTransport {
  readonly id: string;
  readonly sampleRate: TestAgentSampleRate;
  /** Resolves once the socket has closed and the call has ended. */
  readonly closed: Promise<void>;
  readonly #ws: WebSocket;
  readonly #server: SessionServer;
  readonly #call: Call;
  readonly #log: Logger;
  readonly #metrics: TestAgentMetrics;
  readonly #maxDurationSeconds: number;
  readonly #maxBadMessages: number;
  readonly #closeTimeoutMs: number;
  readonly #agentName: string;
  readonly #utterances = new Map<string, OpenUtterance>();
  #state: SessionState = 'open';
  #badMessages = 0;
  /** Browser audio received so far, in ms: held to real time plus MAX_AUDIO_AHEAD_MS. */
  #audioMsIn = 0;
  #endReason: string | undefined;
  /** `#endReason` as a bounded metric label (SESSION_END_LABELS). */
  #endLabel: string | undefined;
  /** What of the Call's stats has been added to the worker's counters so far. */
  readonly #reported: CallStats;
  /** The Call's stats the worker counts from the Call itself; the rest it counts as it sends. */
  readonly #statsCounters: CallStatsCounters;
  #openedAt = 0;
  #maxDurationTimer: NodeJS.Timeout | undefined;

  constructor(options: TestAgentSessionOptions) {
    this.id = options.sessionId;
    this.sampleRate = options.sampleRate;
    this.#ws = options.ws;
    this.#server = options.server;
    this.#log = options.logger.child(
      options.tunnelId === undefined
        ? { sessionId: options.sessionId }
        : { sessionId: options.sessionId, tunnelId: options.tunnelId },
    );
    this.#metrics = options.metrics;
    this.#maxDurationSeconds = options.maxDurationSeconds;
    this.#maxBadMessages = options.maxBadMessages;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? STREAM_SERVER_DEFAULTS.closeTimeoutMs;
    this.#agentName = options.agent.name;
    const callOptions: ConstructorParameters<typeof Call>[0] = {
      info: { callId: options.sessionId, transport: 'test-agent', customParameters: {} },
      agent: options.agent,
      transport: this,
      logger: this.#log,
    };
    if (options.createPacer) callOptions.createPacer = options.createPacer;
    if (options.playbackLeadMs !== undefined) callOptions.playbackLeadMs = options.playbackLeadMs;
    this.#call = new Call(callOptions);
    this.#reported = this.#call.stats; // a copy
    const metrics = this.#metrics;
    this.#statsCounters = {
      lateFrames: (n) => metrics.lateFrames.inc(n),
      marksCleared: (n) => metrics.marksAcked.inc({ outcome: 'cleared' }, n),
    };
    this.#call.on('say', (id, pcm, final) => this.#callOnSay(id, pcm, final));
    this.#call.on('dtmf', (digit) => this.#sendControl({ type: 'event', event: 'dtmf', digit }));
    this.#call.on('played', () => this.#metrics.marksAcked.inc({ outcome: 'played' }));
    // Late frames are counted as they go out, so a dashboard sees choppy audio during a session.
    this.#call.on('frame-out', () => this.#syncStats());
    // The Call logs each problem once; here it is only counted.
    this.#call.on('problem', (err) => this.#server.countError(err.code));
    this.#call.on('end', (reason) => this.#onCallEnded(reason));
    this.closed = new Promise<void>((resolve) => {
      this.#ws.once('close', (code: number) => {
        this.#onSocketClose(code);
        resolve();
      });
    });
  }

  /** Sends `hello`, starts the agent and arms the maximum-duration timer. */
  start(): void {
    this.#openedAt = performance.now();
    this.#ws.on('message', (data: Buffer, isBinary: boolean) => this.#onMessage(data, isBinary));
    this.#sendControl({
      type: 'hello',
      protocol: TEST_AGENT_PROTOCOL_VERSION,
      sessionId: this.id,
      agent: this.#agentName,
      sampleRate: this.sampleRate,
      channels: 1,
      encoding: 'pcm16le',
      frameMs: TEST_AGENT_FRAME_MS,
      maxDurationSeconds: this.#maxDurationSeconds,
    });
    this.#maxDurationTimer = setTimeout(
      () => this.#onMaxDuration(),
      this.#maxDurationSeconds * 1000,
    );
    this.#log.info('session started', { agent: this.#agentName, sampleRate: this.sampleRate });
    void this.#call.start();
  }

  /** Ends the call and closes the socket with `code`; idempotent. StreamServer uses it on destroy. */
  close(code: number, reason: string): void {
    const endReason =
      code === TestAgentCloseCode.serviceRestart ? 'service-restart' : 'server-close';
    this.#end(endReason, code, reason);
  }

  // ── CallTransport ─────────────────────────────────────────────────────────────────────────

  sendAudio(frame: Int16Array): void {
    const bytes = pcm16ToBytes(frame);
    if (this.#server.send(this.#ws, bytes, { binary: true })) {
      this.#metrics.audioMessagesOut.inc();
      this.#metrics.bytesOut.inc(bytes.byteLength);
    }
  }

  sendMark(name: string): void {
    this.#sendControl({ type: 'mark', name });
    this.#metrics.marksSent.inc();
  }

  sendClear(): void {
    this.#sendControl({ type: 'clear' });
    this.#metrics.clears.inc();
  }

  hangup(reason: string): void {
    const code =
      reason === 'agent-error' ? TestAgentCloseCode.internalError : TestAgentCloseCode.normal;
    const label = SESSION_END_LABELS.has(reason) ? reason : 'agent-hangup';
    this.#end(reason, code, REASONS[reason] ?? 'agent hung up', label);
  }

  // ── inbound ───────────────────────────────────────────────────────────────────────────────

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#state !== 'open') return;
    this.#metrics.bytesIn.inc(data.byteLength);
    try {
      if (isBinary) {
        validateTestAgentAudio(data.byteLength);
        this.#metrics.audioMessagesIn.inc();
        // As the media worker: audio faster than real time (plus a little jitter room) would
        // take the event loop from every other session, so it is dropped and counted as bad.
        const ms = (data.byteLength / 2 / this.sampleRate) * 1000;
        if (this.#audioMsIn + ms > performance.now() - this.#openedAt + MAX_AUDIO_AHEAD_MS) {
          throw new TestAgentError(
            'TEST_AGENT_ERR_TOO_FAST',
            'audio arrives faster than real time',
          );
        }
        this.#audioMsIn += ms;
        this.#call.receiveAudio(pcm16FromBytes(data));
        return;
      }
      const msg = parseTestAgentClientMessage(data.toString('utf8'));
      switch (msg.type) {
        case 'dtmf':
          this.#metrics.dtmf.inc();
          this.#call.receiveDtmf(msg.digit);
          return;
        case 'mark':
          this.#call.receiveMark(msg.name);
          this.#syncStats();
          return;
        case 'hangup':
          this.#end('caller-hangup', TestAgentCloseCode.normal, REASONS['caller-hangup']!);
          return;
      }
    } catch (err) {
      this.#badMessage(err);
    }
  }

  #badMessage(err: unknown): void {
    const code = errorCode(err, 'PROTO_ERR_INVALID_MESSAGE');
    const message = err instanceof Error ? err.message : String(err);
    this.#badMessages++;
    this.#server.countError(code);
    this.#log.info('malformed message', { code, err, badMessages: this.#badMessages });
    this.#sendControl({ type: 'error', code, message });
    if (this.#badMessages > this.#maxBadMessages) {
      const error = new TestAgentError(
        'TEST_AGENT_ERR_TOO_MANY_BAD_MESSAGES',
        `${this.#badMessages} malformed messages (limit ${this.#maxBadMessages})`,
      );
      this.#log.warn('too many malformed messages, closing', { code: error.code });
      this.#server.countError(error.code);
      this.#sendControl({ type: 'error', code: error.code, message: error.message });
      this.#end(
        'too-many-bad-messages',
        closeOf(TEST_AGENT_ERRORS, 'TEST_AGENT_ERR_TOO_MANY_BAD_MESSAGES'),
        REASONS['too-many-bad-messages']!,
      );
    }
  }

  // ── outbound events ───────────────────────────────────────────────────────────────────────

  /** One `say` event per utterance, after its final piece, so a streaming agent is one turn. */
  #callOnSay(utteranceId: string, pcm: Int16Array, final: boolean): void {
    let open = this.#utterances.get(utteranceId);
    if (!open) {
      // Only the start of the first piece is checked: a tone reply is one short piece, and
      // scanning every piece of a long streamed utterance would be work for nothing.
      const rate = this.#call.agentSampleRate;
      const head = pcm.subarray(0, Math.round(rate * TONE_CHECK_SECONDS));
      open = { samples: 0, tone: detectDtmf(head, rate) };
      this.#utterances.set(utteranceId, open);
    }
    open.samples += pcm.length;
    if (!final) return;
    this.#utterances.delete(utteranceId);
    const durationMs = Math.round((open.samples * 1000) / this.#call.agentSampleRate);
    this.#sendControl(
      open.tone === undefined
        ? { type: 'event', event: 'say', utteranceId, durationMs }
        : { type: 'event', event: 'say', utteranceId, durationMs, tone: open.tone },
    );
  }

  #sendControl(msg: TestAgentServerMessage): void {
    const text = serializeTestAgentServerMessage(msg);
    if (this.#server.send(this.#ws, text)) this.#metrics.bytesOut.inc(Buffer.byteLength(text));
  }

  // ── ending ────────────────────────────────────────────────────────────────────────────────

  #onMaxDuration(): void {
    this.#maxDurationTimer = undefined;
    const error = new TestAgentError(
      'TEST_AGENT_ERR_MAX_DURATION',
      `session reached its maximum duration of ${this.#maxDurationSeconds} s`,
    );
    this.#log.info('maximum duration reached, closing', { code: error.code });
    this.#server.countError(error.code);
    this.#end(
      'max-duration',
      closeOf(TEST_AGENT_ERRORS, 'TEST_AGENT_ERR_MAX_DURATION'),
      REASONS['max-duration']!,
    );
  }

  /**
   * The Call ended without us ending it (a transport throw ends it with 'transport-error'): the
   * page must not be left on an open socket with no agent behind it.
   */
  #onCallEnded(reason: string): void {
    if (this.#state !== 'open') return;
    const label = SESSION_END_LABELS.has(reason) ? reason : 'other';
    this.#end(reason, TestAgentCloseCode.internalError, 'internal error', label);
  }

  /** Our side ends the session: the call ends, `hangup` tells the page why, then the close. */
  #end(reason: string, code: number, closeReason: string, label: string = reason): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    this.#endReason = reason;
    this.#endLabel = label;
    this.#clearMaxDuration();
    this.#call.end(reason);
    try {
      this.#sendControl({ type: 'hangup', reason });
      // A browser that stopped reading never finishes the close handshake: cut it after the
      // timeout. The deadline cancels itself when the socket closes.
      closeOrTerminate(this.#ws, code, closeReason, this.#closeTimeoutMs);
    } catch (err) {
      // ws throws for a code it does not allow, and whatever broke the transport may break the
      // hangup message too; either is our bug, but the socket must still go.
      this.#closeFailed(err);
    }
  }

  #closeFailed(err: unknown): void {
    const code = 'TEST_AGENT_ERR_CLOSE_FAILED';
    this.#log.error('close failed, terminating', { code, err });
    this.#server.countError(code);
    this.#ws.terminate();
  }

  /** Adds what the Call counted since last time (late frames, cleared marks) to the counters. */
  #syncStats(): void {
    copyCallStats(this.#call.counters, this.#reported, this.#statsCounters);
  }

  #onSocketClose(code: number): void {
    this.#state = 'closed';
    this.#clearMaxDuration();
    // Closes we did not start: the browser went away, or StreamServer shed a slow reader.
    const reason =
      this.#endReason ??
      (code === TestAgentCloseCode.tryAgainLater
        ? 'slow-reader'
        : code === TestAgentCloseCode.messageTooBig
          ? 'message-too-big'
          : 'caller-disconnected');
    this.#endReason = reason;
    this.#endLabel ??= reason;
    this.#call.end(reason);
    this.#syncStats();
    const stats = this.#call.stats;
    const seconds = (performance.now() - this.#openedAt) / 1000;
    this.#metrics.sessionsFinished.inc({ reason: this.#endLabel });
    this.#metrics.sessionDuration.observe(seconds);
    this.#log.info('session ended', {
      reason,
      closeCode: code,
      durationSeconds: Math.round(seconds * 10) / 10,
      framesIn: stats.framesIn,
      framesOut: stats.framesOut,
      lateFrames: stats.lateFrames,
      utterances: stats.utterances,
      marksSent: stats.marksSent,
      marksPlayed: stats.marksPlayed,
      clears: stats.clears,
      dtmfIn: stats.dtmfIn,
      agentErrors: stats.agentErrors,
    });
  }

  #clearMaxDuration(): void {
    if (this.#maxDurationTimer) clearTimeout(this.#maxDurationTimer);
    this.#maxDurationTimer = undefined;
  }
}
