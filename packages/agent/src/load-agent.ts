import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createEchoAgent } from './echo.js';
import { AgentError } from './errors.js';
import { createParrotAgent } from './parrot.js';
import type { Agent } from './types.js';

export type BuiltInAgentName = 'parrot' | 'echo';

export interface LoadAgentOptions {
  /** A built-in agent; default 'parrot'. Ignored when `modulePath` is given. */
  name?: string;
  /** An ES module (relative to the working directory) exporting an agent or a factory of one. */
  modulePath?: string;
}

const BUILT_INS: Record<BuiltInAgentName, () => Agent> = {
  parrot: () => createParrotAgent(),
  echo: () => createEchoAgent(),
};

/**
 * Returns a built-in agent by name, or imports a user's agent module. The module's `default`
 * export, or else its `createAgent` export, is either an Agent or a function returning one (or a
 * promise of one). Failures are AgentError AGENT_ERR_LOAD (naming the path and what is wrong) or
 * AGENT_ERR_UNKNOWN for a name that is not built in.
 */
export async function loadAgent(options: LoadAgentOptions = {}): Promise<Agent> {
  if (options.modulePath !== undefined) return loadAgentModule(options.modulePath);
  const name = options.name ?? 'parrot';
  if (!Object.hasOwn(BUILT_INS, name)) {
    throw new AgentError(
      'AGENT_ERR_UNKNOWN',
      `unknown agent "${name}"; built-in agents are ${Object.keys(BUILT_INS).join(', ')}`,
    );
  }
  return BUILT_INS[name as BuiltInAgentName]();
}

async function loadAgentModule(modulePath: string): Promise<Agent> {
  const path = resolve(modulePath);
  const fail = (what: string, cause?: unknown): AgentError =>
    new AgentError(
      'AGENT_ERR_LOAD',
      `agent module ${path}: ${what}`,
      cause === undefined ? undefined : { cause },
    );
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
  } catch (err) {
    throw fail(`cannot be imported (${messageOf(err)})`, err);
  }
  const exportName = mod.default !== undefined ? 'default' : 'createAgent';
  const exported = mod[exportName];
  if (exported === undefined) {
    throw fail('exports neither a default nor a createAgent export');
  }
  let candidate: unknown = exported;
  if (typeof exported === 'function') {
    try {
      candidate = await (exported as () => unknown)();
    } catch (err) {
      throw fail(`the ${exportName} export threw when called (${messageOf(err)})`, err);
    }
  }
  const problem = agentShapeProblem(candidate);
  if (problem) {
    const source =
      typeof exported === 'function'
        ? `what the ${exportName} export returned`
        : `the ${exportName} export`;
    throw fail(`${source} is not an agent: ${problem}`);
  }
  return candidate as Agent;
}

/** Why `value` is not an Agent, or undefined when it is one. */
function agentShapeProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) {
    return `expected an object with a name and a start() method, got ${value === null ? 'null' : typeof value}`;
  }
  const agent = value as Record<string, unknown>;
  if (typeof agent.name !== 'string' || agent.name.length === 0) {
    return '"name" must be a non-empty string';
  }
  if (typeof agent.start !== 'function') return '"start" must be a function';
  const rate = agent.sampleRate;
  if (
    rate !== undefined &&
    !(typeof rate === 'number' && Number.isInteger((rate * 20) / 1000) && rate > 0)
  ) {
    return `"sampleRate" must be a positive rate with whole 20 ms frames, got ${String(rate)}`;
  }
  return undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
