import { CallgateError } from '@callgate/runtime';

/**
 * The codes of @callgate/agent, logged by the `Call` and counted by the worker that runs it.
 * `close` is the close code the caller's socket is ended with when the code ends the call.
 */
export const AGENT_ERRORS = {
  /** `agent.start()` threw or rejected; the call hangs up with reason 'agent-error'. */
  AGENT_ERR_START: { close: 1011 },
  /** An agent callback (onAudio, onDtmf, onPlayed, onEnd) threw; the call goes on. */
  AGENT_ERR_CALLBACK: {},
  /** The agent threw more than `maxAgentErrors` times; the call hangs up with 'agent-error'. */
  AGENT_ERR_TOO_MANY_ERRORS: { close: 1011 },
  /** A mark acked by the peer named no utterance of this call. */
  AGENT_ERR_UNKNOWN_MARK: {},
  /** `say()` would have queued more than `maxQueuedMs`; the excess was dropped. */
  AGENT_ERR_QUEUE_FULL: {},
  /** The transport threw while the call was sending to it; the call ends. */
  AGENT_ERR_TRANSPORT: { close: 1011 },
  /** An agent module could not be imported or does not export an agent (thrown at start). */
  AGENT_ERR_LOAD: {},
  /** No built-in agent has that name (thrown by `loadAgent`). */
  AGENT_ERR_UNKNOWN: {},
} as const satisfies Record<string, { readonly status?: number; readonly close?: number }>;

export type AgentErrorCode = keyof typeof AGENT_ERRORS;

export class AgentError extends CallgateError {
  declare readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
