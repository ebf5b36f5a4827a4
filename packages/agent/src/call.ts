import { EventEmitter } from 'node:events';
import { Framer, Pacer, Resampler, frameSamples } from '@callgate/audio';
import type { Logger } from '@callgate/runtime';
import { AgentError } from './errors.js';
import { FRAME_MS, Playback } from './playback.js';
import type {
  Agent,
  AgentCall,
  AgentSession,
  CallInfo,
  CallStats,
  CallTransport,
  SayOptions,
} from './types.js';

/** Events of a Call; workers use them for metrics, turn logs and recordings. */
export interface CallEvents {
  /** The agent queued audio: utterance id, the piece at the agent's rate, and whether it was final. */
  say: [utteranceId: string, samples: Int16Array, final: boolean];
  clear: [];
  dtmf: [digit: string];
  /** The caller heard the whole utterance. */
  played: [utteranceId: string];
  hangup: [reason: string];
  /** An agent callback threw (or `start` failed); the error has the code and the cause. */
  'agent-error': [err: AgentError];
  /** Every problem the call logs, with its code (for `<area>_errors_total{code}`). */
  problem: [err: AgentError];
  /** A 20 ms frame at the transport's rate, just handed to `transport.sendAudio`. */
  'frame-out': [frame: Int16Array];
  end: [reason: string];
}

export interface PacerTick {
  tick: number;
  lateMs: number;
}

/** The part of @callgate/audio's Pacer the Call uses; injectable so tests can tick by hand. */
export interface CallPacer {
  start(): void;
  stop(): void;
  readonly running: boolean;
}

export type PacerFactory = (options: {
  intervalMs: number;
  onTick: (info: PacerTick) => void;
  now?: () => number;
}) => CallPacer;

export interface CallOptions {
  info: CallInfo;
  agent: Agent;
  transport: CallTransport;
  logger: Logger;
  /** Milliseconds clock for the pacer (default: the Pacer's own, `performance.now`). */
  clock?: () => number;
  /** Most outbound audio that may wait in the queue; `say` drops the excess. Default 60000. */
  maxQueuedMs?: number;
  /** The call hangs up with 'agent-error' once the agent has thrown more than this. Default 20. */
  maxAgentErrors?: number;
  /** Builds the outbound pacer (default: `new Pacer(options)` from @callgate/audio). */
  createPacer?: PacerFactory;
}

const LATE_FRAME_MS = 10;
// Caller audio and digits that arrive while `agent.start()` is still pending are held for it,
// up to one second; older frames are dropped.
const MAX_EARLY_FRAMES = 50;

type CallState = 'idle' | 'starting' | 'running' | 'ended';

const defaultPacer: PacerFactory = (options) => new Pacer(options);

/**
 * One call: connects a transport (Twilio, SansPBX, the browser test agent) to an agent. Owns the
 * inbound resampler and framer, the outbound playback queue and its pacer, and the marks.
 *
 * The agent never sees the transport: it gets an `AgentCall`. Every agent callback is guarded, so
 * a throwing agent is counted and logged but does not break the call (until `maxAgentErrors`).
 * After `end()` nothing reaches the agent session or the transport any more.
 */
export class Call extends EventEmitter<CallEvents> {
  readonly info: CallInfo;
  readonly agentSampleRate: number;
  readonly transportSampleRate: number;
  readonly #agent: Agent;
  readonly #transport: CallTransport;
  readonly #log: Logger;
  readonly #maxAgentErrors: number;
  readonly #agentCall: AgentCall;
  readonly #stats: CallStats = {
    framesIn: 0,
    framesOut: 0,
    lateFrames: 0,
    utterances: 0,
    marksSent: 0,
    marksPlayed: 0,
    marksCleared: 0,
    clears: 0,
    dtmfIn: 0,
    agentErrors: 0,
    droppedMs: 0,
  };
  #state: CallState = 'idle';
  #startPromise: Promise<void> | undefined;
  #session: AgentSession | undefined;
  #endReason: string | undefined;
  #setupError: unknown;
  #inboundResampler: Resampler | undefined;
  #inboundFramer: Framer | undefined;
  #playback: Playback | undefined;
  #pacer: CallPacer | undefined;
  #early: Array<{ frame: Int16Array } | { digit: string }> = [];
  #queueFullLogged = new Set<string>();

  constructor(options: CallOptions) {
    super();
    const { info, agent, transport, logger } = options;
    this.info = info;
    this.#agent = agent;
    this.#transport = transport;
    this.#log = logger;
    this.#maxAgentErrors = options.maxAgentErrors ?? 20;
    this.transportSampleRate = transport.sampleRate;
    this.agentSampleRate = agent.sampleRate ?? transport.sampleRate;
    const maxQueuedMs = options.maxQueuedMs ?? 60_000;
    if (!(maxQueuedMs >= FRAME_MS)) {
      throw new TypeError(`maxQueuedMs must be at least ${FRAME_MS}, got ${maxQueuedMs}`);
    }
    // An agent with an unusable rate is the agent's fault, not the worker's: remember the error
    // and fail in start() like any other agent start failure, instead of throwing here.
    try {
      const agentRate = this.agentSampleRate;
      const transportRate = this.transportSampleRate;
      if (agentRate !== transportRate) {
        this.#inboundResampler = new Resampler(transportRate, agentRate);
      }
      this.#inboundFramer = new Framer(frameSamples(agentRate, FRAME_MS));
      this.#playback = new Playback({
        callId: info.callId,
        agentRate,
        transportRate,
        maxQueuedMs,
      });
    } catch (err) {
      this.#setupError = err;
    }
    const createPacer = options.createPacer ?? defaultPacer;
    const pacerOptions: Parameters<PacerFactory>[0] = {
      intervalMs: FRAME_MS,
      onTick: (tick) => this.#onTick(tick),
    };
    if (options.clock) pacerOptions.now = options.clock;
    this.#pacer = createPacer(pacerOptions);

    const isSpeaking = (): boolean => this.isSpeaking;
    this.#agentCall = Object.freeze({
      info,
      sampleRate: this.agentSampleRate,
      log: logger.child({ agent: agent.name }),
      get isSpeaking(): boolean {
        return isSpeaking();
      },
      say: (pcm: Int16Array, sayOptions?: SayOptions): string =>
        this.#say(pcm, sayOptions?.final ?? true),
      clear: (): void => this.#clear(),
      hangup: (reason?: string): void => this.#hangup(reason ?? 'agent-hangup'),
    });
  }

  /** A snapshot of the counters. */
  get stats(): CallStats {
    return { ...this.#stats };
  }

  /** An utterance is open, queued, or sent and not yet played or cleared. */
  get isSpeaking(): boolean {
    return this.#playback?.isSpeaking ?? false;
  }

  get isEnded(): boolean {
    return this.#state === 'ended';
  }

  /** Why the call ended, once it has. */
  get endReason(): string | undefined {
    return this.#endReason;
  }

  /**
   * Starts the agent. Resolves once `agent.start()` settled; never rejects: a failing agent is
   * logged with AGENT_ERR_START and the call hangs up with reason 'agent-error'. Idempotent.
   */
  start(): Promise<void> {
    this.#startPromise ??= this.#start();
    return this.#startPromise;
  }

  async #start(): Promise<void> {
    if (this.#state !== 'idle') return;
    this.#state = 'starting';
    let session: AgentSession;
    try {
      if (this.#setupError !== undefined) throw this.#setupError;
      session = await this.#agent.start(this.#agentCall);
      if (typeof session !== 'object' || session === null) {
        throw new TypeError(`start() returned ${session === null ? 'null' : typeof session}`);
      }
    } catch (err) {
      if (this.isEnded) return;
      const error = new AgentError(
        'AGENT_ERR_START',
        `agent "${this.#agent.name}" failed to start: ${messageOf(err)}`,
        { cause: err },
      );
      this.#stats.agentErrors++;
      this.#log.error('agent failed to start', { code: error.code, err: error });
      this.emit('agent-error', error);
      this.emit('problem', error);
      this.#hangup('agent-error');
      return;
    }
    this.#session = session;
    if (this.isEnded) {
      // The call ended while the agent was starting; let it release what it set up.
      this.#invoke('onEnd', () => session.onEnd?.(this.#endReason ?? 'ended'));
      return;
    }
    this.#state = 'running';
    const early = this.#early;
    this.#early = [];
    for (const item of early) {
      if (this.#state !== 'running') break;
      if ('frame' in item) this.#deliverFrame(item.frame);
      else this.#deliverDtmf(item.digit);
    }
  }

  /** Caller audio at the transport's rate, any length. */
  receiveAudio(pcm: Int16Array): void {
    if (this.isEnded || !this.#inboundFramer) return;
    const atAgentRate = this.#inboundResampler ? this.#inboundResampler.process(pcm) : pcm;
    for (const frame of this.#inboundFramer.push(atAgentRate)) {
      if (this.#state === 'running') this.#deliverFrame(frame);
      else if (this.isEnded) return;
      else this.#holdEarly(frame);
    }
  }

  receiveDtmf(digit: string): void {
    if (this.isEnded) return;
    this.#stats.dtmfIn++;
    this.emit('dtmf', digit);
    if (this.#state === 'running') this.#deliverDtmf(digit);
    else this.#early.push({ digit });
  }

  /** A mark echo from the transport: "played" unless its utterance was cleared. */
  receiveMark(name: string): void {
    if (this.isEnded || !this.#playback) return;
    const outcome = this.#playback.markEchoed(name);
    if (outcome === 'cleared') {
      this.#stats.marksCleared++;
      return;
    }
    if (outcome === 'unknown') {
      const error = new AgentError('AGENT_ERR_UNKNOWN_MARK', `mark "${name}" names no utterance`);
      this.#log.warn('unknown mark ignored', { code: error.code, mark: name });
      this.emit('problem', error);
      return;
    }
    this.#stats.marksPlayed++;
    const session = this.#session;
    if (session?.onPlayed) this.#invoke('onPlayed', () => session.onPlayed?.(name));
    if (this.isEnded) return;
    this.emit('played', name);
  }

  /**
   * Ends the call (the transport went away, or the agent hung up): stops playback, tells the
   * agent with `onEnd(reason)`, emits 'end'. Idempotent; only the first reason counts.
   */
  end(reason: string): void {
    if (this.isEnded) return;
    const hadSession = this.#state === 'running';
    this.#state = 'ended';
    this.#endReason = reason;
    this.#pacer?.stop();
    this.#playback?.clear();
    this.#early = [];
    const session = this.#session;
    if (hadSession && session?.onEnd) this.#invoke('onEnd', () => session.onEnd?.(reason));
    this.emit('end', reason);
  }

  #holdEarly(frame: Int16Array): void {
    this.#early.push({ frame });
    if (this.#early.length > MAX_EARLY_FRAMES) {
      const oldest = this.#early.findIndex((item) => 'frame' in item);
      this.#early.splice(oldest, 1);
    }
  }

  #deliverFrame(frame: Int16Array): void {
    this.#stats.framesIn++;
    const session = this.#session;
    if (session?.onAudio) this.#invoke('onAudio', () => session.onAudio?.(frame));
  }

  #deliverDtmf(digit: string): void {
    const session = this.#session;
    if (session?.onDtmf) this.#invoke('onDtmf', () => session.onDtmf?.(digit));
  }

  #say(pcm: Int16Array, final: boolean): string {
    if (!(pcm instanceof Int16Array)) {
      throw new TypeError('say() takes PCM16 as an Int16Array');
    }
    const playback = this.#playback;
    if (this.isEnded || !playback) {
      const id = playback?.nextUtteranceId() ?? `${this.info.callId}-u0`;
      this.#log.debug('say after the call ended ignored', { utteranceId: id });
      return id;
    }
    const { utteranceId, isNew, droppedMs } = playback.say(pcm, final);
    if (isNew) this.#stats.utterances++;
    if (droppedMs > 0) {
      this.#stats.droppedMs += droppedMs;
      // One line per utterance: a streaming agent that outruns the queue would otherwise log
      // every 20 ms.
      if (!this.#queueFullLogged.has(utteranceId)) {
        this.#queueFullLogged.add(utteranceId);
        const error = new AgentError(
          'AGENT_ERR_QUEUE_FULL',
          `outbound queue is full; dropped ${droppedMs} ms of ${utteranceId}`,
        );
        this.#log.warn('outbound queue full, audio dropped', {
          code: error.code,
          utteranceId,
          droppedMs,
        });
        this.emit('problem', error);
      }
    }
    if (final) this.#queueFullLogged.delete(utteranceId);
    this.emit('say', utteranceId, pcm, final);
    if (!playback.isEmpty && !this.isEnded && this.#pacer && !this.#pacer.running) {
      this.#pacer.start();
    }
    return utteranceId;
  }

  #clear(): void {
    if (this.isEnded || !this.#playback) return;
    this.#playback.clear();
    this.#pacer?.stop();
    this.#queueFullLogged.clear();
    this.#stats.clears++;
    if (!this.#toTransport(() => this.#transport.sendClear())) return;
    this.emit('clear');
  }

  #hangup(reason: string): void {
    if (this.isEnded) return;
    this.emit('hangup', reason);
    this.#toTransport(() => this.#transport.hangup(reason));
    this.end(reason);
  }

  /** One pacer tick: leading marks, at most one frame, then the marks right behind it. */
  #onTick({ lateMs }: PacerTick): void {
    const playback = this.#playback;
    if (!playback || this.isEnded) {
      this.#pacer?.stop();
      return;
    }
    let sentFrame = false;
    for (;;) {
      if (this.isEnded) return;
      const item = playback.peek();
      if (!item || (item.kind === 'frame' && sentFrame)) break;
      playback.take();
      if (item.kind === 'frame') {
        sentFrame = true;
        if (!this.#toTransport(() => this.#transport.sendAudio(item.frame))) return;
        this.#stats.framesOut++;
        if (lateMs > LATE_FRAME_MS) this.#stats.lateFrames++;
        this.emit('frame-out', item.frame);
      } else {
        if (!this.#toTransport(() => this.#transport.sendMark(item.utteranceId))) return;
        this.#stats.marksSent++;
      }
    }
    // Nothing left: stop instead of idling at 50 ticks a second; the next say restarts it.
    if (!this.isEnded && playback.isEmpty) this.#pacer?.stop();
  }

  /** Runs a transport call; a throw is a worker bug, so it is logged and ends the call. */
  #toTransport(fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (err) {
      const error = new AgentError('AGENT_ERR_TRANSPORT', `transport failed: ${messageOf(err)}`, {
        cause: err,
      });
      this.#log.error('transport threw, ending the call', { code: error.code, err: error });
      this.emit('problem', error);
      this.end('transport-error');
      return false;
    }
  }

  /** Runs an agent callback; a throw (or rejection) is counted, logged and emitted. */
  #invoke(callback: string, fn: () => unknown): void {
    try {
      const result = fn();
      if (isThenable(result)) {
        result.then(undefined, (err: unknown) => this.#agentThrew(callback, err));
      }
    } catch (err) {
      this.#agentThrew(callback, err);
    }
  }

  #agentThrew(callback: string, err: unknown): void {
    this.#stats.agentErrors++;
    const error = new AgentError(
      'AGENT_ERR_CALLBACK',
      `agent "${this.#agent.name}" ${callback} threw: ${messageOf(err)}`,
      { cause: err },
    );
    this.#log.warn('agent callback threw', { code: error.code, callback, err: error });
    this.emit('agent-error', error);
    this.emit('problem', error);
    if (!this.isEnded && this.#stats.agentErrors > this.#maxAgentErrors) {
      const fatal = new AgentError(
        'AGENT_ERR_TOO_MANY_ERRORS',
        `agent "${this.#agent.name}" threw ${this.#stats.agentErrors} times; hanging up`,
      );
      this.#log.error('too many agent errors, hanging up', { code: fatal.code });
      this.emit('problem', fatal);
      this.#hangup('agent-error');
    }
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
