import type { AgentError } from './errors.js';

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
