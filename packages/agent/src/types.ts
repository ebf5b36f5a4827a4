import type { Logger } from '@callgate/runtime';

/** Who is calling and over what; fixed for the life of a call. */
export interface CallInfo {
  callId: string;
  streamId?: string;
  transport: 'twilio' | 'sanspbx' | 'test-agent';
  customParameters: Record<string, string>;
  /**
   * Set when this session takes over a call that was already running on another worker (the
   * proxy moved it after that worker crashed, hung or reached its drain deadline). The caller has
   * been talking to an agent already: skip the greeting, say something like "sorry, where were
   * we?". `attempt` counts the moves of this call: 1 for the first. Absent on a new call.
   */
  resumed?: { attempt: number };
}

/**
 * An agent: the thing that talks to the caller. `start` runs once per call and returns the
 * session that receives the caller's audio and events for that call.
 */
export interface Agent {
  readonly name: string;
  /** The rate the agent hears and speaks at; defaults to the transport's rate. */
  readonly sampleRate?: number;
  start(call: AgentCall): AgentSession | Promise<AgentSession>;
}

/** Per-call callbacks of an agent. All optional; a throw is counted and logged, the call goes on. */
export interface AgentSession {
  /** 20 ms of caller PCM16 at the agent's rate. */
  onAudio?(frame: Int16Array): void;
  onDtmf?(digit: string): void;
  /** The caller heard all of the utterance (its mark was echoed and it was not cleared). */
  onPlayed?(utteranceId: string): void;
  /** The call is over; nothing the agent does afterwards reaches the caller. */
  onEnd?(reason: string): void;
}

export interface SayOptions {
  /** `false` appends to the open utterance (streaming TTS); the mark goes out after the final piece. */
  final?: boolean;
}

/** What an agent sees of the call. */
export interface AgentCall {
  readonly info: CallInfo;
  /** The agent's rate: `say()` takes and `onAudio` gives PCM16 at this rate. */
  readonly sampleRate: number;
  readonly log: Logger;
  /** True from the first `say()` until the last utterance was played or cleared. */
  readonly isSpeaking: boolean;
  /** Queues audio of one utterance and returns its id (which is also its mark name). */
  say(pcm: Int16Array, options?: SayOptions): string;
  /** Barge-in: drops queued audio; the transport sends `clear`. */
  clear(): void;
  hangup(reason?: string): void;
}

/** Implemented by each worker session: how audio and control reach the caller. */
export interface CallTransport {
  /** 8000 for Twilio, 16000 for the test agent, configurable for SansPBX. */
  readonly sampleRate: number;
  /** Exactly 20 ms at the transport rate; the Call paces these. */
  sendAudio(frame: Int16Array): void;
  /** After the last frame of an utterance. The worker calls `Call.receiveMark` when it is echoed. */
  sendMark(name: string): void;
  sendClear(): void;
  hangup(reason: string): void;
}

/** Counters of one call; a snapshot is returned by `Call.stats`. */
export interface CallStats {
  /** 20 ms frames delivered to the agent (at the agent's rate). */
  framesIn: number;
  /** 20 ms frames handed to `transport.sendAudio` (at the transport's rate). */
  framesOut: number;
  /** Outbound ticks that fired more than 10 ms late. */
  lateFrames: number;
  utterances: number;
  marksSent: number;
  marksPlayed: number;
  /** Mark echoes of utterances that were cleared (Twilio echoes pending marks on clear). */
  marksCleared: number;
  clears: number;
  dtmfIn: number;
  agentErrors: number;
  /** Outbound audio dropped because the queue was over `maxQueuedMs`. */
  droppedMs: number;
}
