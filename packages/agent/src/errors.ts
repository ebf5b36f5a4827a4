import { CallgateError } from '@callgate/runtime';

export type AgentErrorCode =
  /** `agent.start()` threw or rejected; the call hangs up with reason 'agent-error'. */
  | 'AGENT_ERR_START'
  /** An agent callback (onAudio, onDtmf, onPlayed, onEnd) threw; the call goes on. */
  | 'AGENT_ERR_CALLBACK'
  /** The agent threw more than `maxAgentErrors` times; the call hangs up with 'agent-error'. */
  | 'AGENT_ERR_TOO_MANY_ERRORS'
  /** A mark echo named no utterance of this call. */
  | 'AGENT_ERR_UNKNOWN_MARK'
  /** `say()` would have queued more than `maxQueuedMs`; the excess was dropped. */
  | 'AGENT_ERR_QUEUE_FULL'
  /** The transport threw while the call was sending to it; the call ends. */
  | 'AGENT_ERR_TRANSPORT'
  /** An agent module could not be imported or does not export an agent. */
  | 'AGENT_ERR_LOAD'
  /** No built-in agent has that name. */
  | 'AGENT_ERR_UNKNOWN';

export class AgentError extends CallgateError {
  declare readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
