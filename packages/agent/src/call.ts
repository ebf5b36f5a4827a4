import { EventEmitter } from 'node:events';
import type { Logger } from '@callgate/runtime';
import { AgentGuard, messageOf } from './agent-guard.js';
import { CallInbound } from './call-inbound.js';
import type { CallEvents } from './call-events.js';
import {
  createCallPacer,
  type CallPacer,
  type PacerFactory,
  type PacerTick,
} from './call-pacer.js';
import { AgentError } from './errors.js';
import { FRAME_MS, Playback, type MarkOutcome } from './playback.js';
import type {
  Agent,
  AgentCall,
  AgentSession,
  CallInfo,
  CallStats,
  CallTransport,
  SayOptions,
} from './types.js';

export type { CallEvents } from './call-events.js';
export type { CallPacer, PacerFactory, PacerTick } from './call-pacer.js';

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
  /**
   * How far ahead of real time outbound audio is sent, so the far end's playback buffer always
   * holds this much: a stall of the worker, the proxy or the network shorter than the lead is not
   * heard as a gap. Costs nothing on barge-in (`clear` drops it). Rounded to 20 ms frames.
   * Default 100; 0 sends each frame exactly in its slot.
   */
  playbackLeadMs?: number;
}

const LATE_FRAME_MS = 10;
export const DEFAULT_PLAYBACK_LEAD_MS = 100;
const MAX_PLAYBACK_LEAD_MS = 2000;

type CallState = 'idle' | 'starting' | 'running' | 'ended';

/**
 * One call: connects a transport (Twilio, SansPBX, the browser test agent) to an agent. Owns the
 * inbound path (`CallInbound`: resampler, framer, input held until the agent has started), the
 * outbound playback queue and its pacer, and the marks.
 *
 * The agent never sees the transport: it gets an `AgentCall`. Every agent callback is guarded
 * (`AgentGuard`), so a throwing agent is counted and logged but does not break the call (until
 * `maxAgentErrors`).
 * After `end()` nothing reaches the agent session or the transport any more.
 */
export class Call extends EventEmitter<CallEvents> {
  readonly info: CallInfo;
  readonly agentSampleRate: number;
  readonly transportSampleRate: number;
  readonly #agent: Agent;
  readonly #transport: CallTransport;
  readonly #log: Logger;
  readonly #guard: AgentGuard;
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
  #inbound: CallInbound | undefined;
  #playback: Playback | undefined;
  #pacer: CallPacer | undefined;
  readonly #leadFrames: number;
  /** Frames sent that the far end has not played yet, counted in pacer ticks (an estimate). */
  #farEndFrames = 0;

  constructor(options: CallOptions) {
    super();
    const { info, agent, transport, logger } = options;
    this.info = info;
    this.#agent = agent;
    this.#transport = transport;
    this.#log = logger;
    this.#guard = new AgentGuard({
      agent,
      log: logger,
      maxAgentErrors: options.maxAgentErrors ?? 20,
      stats: this.#stats,
      call: this,
      hangup: (reason) => this.#hangup(reason),
    });
    this.transportSampleRate = transport.sampleRate;
    this.agentSampleRate = agent.sampleRate ?? transport.sampleRate;
    const maxQueuedMs = options.maxQueuedMs ?? 60_000;
    if (!(maxQueuedMs >= FRAME_MS)) {
      throw new TypeError(`maxQueuedMs must be at least ${FRAME_MS}, got ${maxQueuedMs}`);
    }
    const leadMs = options.playbackLeadMs ?? DEFAULT_PLAYBACK_LEAD_MS;
    if (!(leadMs >= 0 && leadMs <= MAX_PLAYBACK_LEAD_MS)) {
      throw new TypeError(
        `playbackLeadMs must be between 0 and ${MAX_PLAYBACK_LEAD_MS}, got ${leadMs}`,
      );
    }
    this.#leadFrames = Math.round(leadMs / FRAME_MS);
    // An agent with an unusable rate is the agent's fault, not the worker's: remember the error
    // and fail in start() like any other agent start failure, instead of throwing here.
    try {
      const agentRate = this.agentSampleRate;
      const transportRate = this.transportSampleRate;
      this.#inbound = new CallInbound(transportRate, agentRate);
      this.#playback = new Playback({
        callId: info.callId,
        agentRate,
        transportRate,
        maxQueuedMs,
      });
    } catch (err) {
      this.#setupError = err;
    }
    this.#pacer = createCallPacer(options, (tick) => this.#onTick(tick));

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

  /** The live counters, read-only and without a copy (they keep moving; `stats` is a snapshot). */
  get counters(): Readonly<CallStats> {
    return this.#stats;
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
      if (!this.isEnded) this.#guard.startFailed(err);
      return;
    }
    this.#session = session;
    if (this.isEnded) {
      // The call ended while the agent was starting; let it release what it set up.
      this.#guard.invoke('onEnd', () => session.onEnd?.(this.#endReason ?? 'ended'));
      return;
    }
    this.#state = 'running';
    // A failed setup never gets here: it fails the start above.
    for (const item of this.#inbound?.takeEarly() ?? []) {
      if (this.#state !== 'running') break;
      if ('frame' in item) this.#deliverFrame(item.frame);
      else this.#deliverDtmf(item.digit);
    }
  }

  /** Caller audio at the transport's rate, any length. */
  receiveAudio(pcm: Int16Array): void {
    const inbound = this.#inbound;
    if (this.isEnded || !inbound) return;
    for (const frame of inbound.frames(pcm)) {
      if (this.#state === 'running') this.#deliverFrame(frame);
      else if (this.isEnded) return;
      else inbound.holdFrame(frame);
    }
  }

  receiveDtmf(digit: string): void {
    if (this.isEnded) return;
    this.#stats.dtmfIn++;
    this.emit('dtmf', digit);
    if (this.#state === 'running') this.#deliverDtmf(digit);
    // Without an inbound path the start fails, so a digit held for it would never be delivered.
    else this.#inbound?.holdDigit(digit);
  }

  /** How long the oldest sent mark has waited for its ack (ms); undefined when none waits. */
  get markAckWaitMs(): number | undefined {
    return this.#playback?.oldestAckWaitMs();
  }

  /**
   * A mark acked by the peer (Twilio sends it back; the page sends `mark`): "played" unless its
   * utterance was cleared. Returns what the ack was (undefined once the call ended). An `unknown` mark is left to the caller: on a fresh
   * call the media session counts it as a bad message; on a resumed call (`info.resumed`) it is
   * normal, an echo of audio an earlier worker sent, ignored here without a warning and counted
   * by the caller of this method.
   */
  receiveMark(name: string): MarkOutcome | undefined {
    if (this.isEnded || !this.#playback) return undefined;
    const outcome = this.#playback.markAcked(name);
    if (outcome === 'cleared') {
      this.#stats.marksCleared++;
      return outcome;
    }
    if (outcome === 'unknown') {
      if (this.info.resumed !== undefined) return outcome;
      const error = new AgentError('AGENT_ERR_UNKNOWN_MARK', `mark "${name}" names no utterance`);
      this.#log.debug('unknown mark ignored', { code: error.code, mark: name });
      this.emit('problem', error);
      return outcome;
    }
    this.#stats.marksPlayed++;
    const session = this.#session;
    if (session?.onPlayed) this.#guard.invoke('onPlayed', () => session.onPlayed?.(name));
    if (this.isEnded) return outcome;
    this.emit('played', name);
    return outcome;
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
    this.#inbound?.dropEarly();
    const session = this.#session;
    if (hadSession && session?.onEnd) this.#guard.invoke('onEnd', () => session.onEnd?.(reason));
    this.emit('end', reason);
  }

  #deliverFrame(frame: Int16Array): void {
    this.#stats.framesIn++;
    const session = this.#session;
    if (session?.onAudio) this.#guard.invoke('onAudio', () => session.onAudio?.(frame));
  }

  #deliverDtmf(digit: string): void {
    const session = this.#session;
    if (session?.onDtmf) this.#guard.invoke('onDtmf', () => session.onDtmf?.(digit));
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
      this.#guard.queueFull(utteranceId, droppedMs);
    }
    if (final) this.#guard.utteranceDone(utteranceId);
    this.emit('say', utteranceId, pcm, final);
    if (!playback.isEmpty && !this.isEnded && this.#pacer && !this.#pacer.running) {
      // A new run of audio: what the far end held has played out or will, so fill the lead again.
      this.#farEndFrames = 0;
      this.#pacer.start();
    }
    return utteranceId;
  }

  #clear(): void {
    if (this.isEnded || !this.#playback) return;
    this.#playback.clear();
    this.#pacer?.stop();
    this.#farEndFrames = 0; // the far end drops its buffer on clear
    this.#guard.utterancesCleared();
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

  /**
   * One pacer tick: the far end has played one frame since the last tick, so send frames until it
   * holds the lead again (the first tick of a run sends the whole lead at once, then one frame per
   * tick), with every mark right where it sits between them.
   */
  #onTick({ lateMs }: PacerTick): void {
    const playback = this.#playback;
    if (!playback || this.isEnded) {
      this.#pacer?.stop();
      return;
    }
    this.#farEndFrames = Math.max(0, this.#farEndFrames - 1);
    for (;;) {
      if (this.isEnded) return;
      const item = playback.peek();
      if (!item || (item.kind === 'frame' && this.#farEndFrames > this.#leadFrames)) break;
      playback.take();
      if (item.kind === 'frame') {
        this.#farEndFrames++;
        // Inline rather than #toTransport: no closure per frame.
        try {
          this.#transport.sendAudio(item.frame);
        } catch (err) {
          this.#transportFailed(err);
          return;
        }
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
      this.#transportFailed(err);
      return false;
    }
  }

  #transportFailed(err: unknown): void {
    const error = new AgentError('AGENT_ERR_TRANSPORT', `transport failed: ${messageOf(err)}`, {
      cause: err,
    });
    this.#log.error('transport threw, ending the call', { code: error.code, err: error });
    this.emit('problem', error);
    this.end('transport-error');
  }
}
