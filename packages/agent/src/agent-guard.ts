import type { EventEmitter } from 'node:events';
import type { Logger } from '@callgate/runtime';
import type { CallEvents } from './call-events.js';
import { AgentError } from './errors.js';
import type { Agent, CallStats } from './types.js';

export interface AgentGuardOptions {
  agent: Agent;
  log: Logger;
  /** The call hangs up with 'agent-error' once the agent has thrown more than this. */
  maxAgentErrors: number;
  /** The Call's counters; the guard counts `agentErrors` there. */
  stats: CallStats;
  /** The Call: where 'agent-error' and 'problem' go, and whether it has ended. */
  call: Pick<EventEmitter<CallEvents>, 'emit'> & { readonly isEnded: boolean };
  hangup(reason: string): void;
}

/**
 * What a misbehaving agent costs. Every agent callback runs through `invoke`, so a throwing agent
 * is counted and logged but does not break the call, until it has thrown `maxAgentErrors` times.
 * An agent that outruns the outbound queue is logged once per utterance.
 */
export class AgentGuard {
  readonly #o: AgentGuardOptions;
  readonly #queueFullLogged = new Set<string>();

  constructor(options: AgentGuardOptions) {
    this.#o = options;
  }

  /** Runs an agent callback; a throw (or rejection) is counted, logged and emitted. */
  invoke(callback: string, fn: () => unknown): void {
    try {
      const result = fn();
      if (isThenable(result)) {
        result.then(undefined, (err: unknown) => this.#agentThrew(callback, err));
      }
    } catch (err) {
      this.#agentThrew(callback, err);
    }
  }

  /** `agent.start()` threw, rejected or returned no session: logged, and the call hangs up. */
  startFailed(err: unknown): void {
    const { agent, log, stats, call } = this.#o;
    const error = new AgentError(
      'AGENT_ERR_START',
      `agent "${agent.name}" failed to start: ${messageOf(err)}`,
      { cause: err },
    );
    stats.agentErrors++;
    log.error('agent failed to start', { code: error.code, err: error });
    call.emit('agent-error', error);
    call.emit('problem', error);
    this.#o.hangup('agent-error');
  }

  /** `say` dropped audio of an utterance because the outbound queue was full. */
  queueFull(utteranceId: string, droppedMs: number): void {
    // One line per utterance: a streaming agent that outruns the queue would otherwise log
    // every 20 ms.
    if (this.#queueFullLogged.has(utteranceId)) return;
    this.#queueFullLogged.add(utteranceId);
    const error = new AgentError(
      'AGENT_ERR_QUEUE_FULL',
      `outbound queue is full; dropped ${droppedMs} ms of ${utteranceId}`,
    );
    this.#o.log.warn('outbound queue full, audio dropped', {
      code: error.code,
      utteranceId,
      droppedMs,
    });
    this.#o.call.emit('problem', error);
  }

  /** The utterance got its final piece: no more audio of it can be dropped. */
  utteranceDone(utteranceId: string): void {
    this.#queueFullLogged.delete(utteranceId);
  }

  /** Barge-in dropped every queued utterance. */
  utterancesCleared(): void {
    this.#queueFullLogged.clear();
  }

  #agentThrew(callback: string, err: unknown): void {
    const { agent, log, stats, call } = this.#o;
    stats.agentErrors++;
    const error = new AgentError(
      'AGENT_ERR_CALLBACK',
      `agent "${agent.name}" ${callback} threw: ${messageOf(err)}`,
      { cause: err },
    );
    log.warn('agent callback threw', { code: error.code, callback, err: error });
    call.emit('agent-error', error);
    call.emit('problem', error);
    if (!call.isEnded && stats.agentErrors > this.#o.maxAgentErrors) {
      const fatal = new AgentError(
        'AGENT_ERR_TOO_MANY_ERRORS',
        `agent "${agent.name}" threw ${stats.agentErrors} times; hanging up`,
      );
      log.error('too many agent errors, hanging up', { code: fatal.code });
      call.emit('problem', fatal);
      this.#o.hangup('agent-error');
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

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
