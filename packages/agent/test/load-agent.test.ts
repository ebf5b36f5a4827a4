import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AgentError } from '../src/errors.js';
import { loadAgent } from '../src/load-agent.js';
import { concat, feed, makeCall, silence, speechLike } from './helpers.js';

const fixture = (name: string): string =>
  fileURLToPath(new URL(`fixtures/${name}`, import.meta.url));
const helloAgentPath = fileURLToPath(
  new URL('../../../examples/agents/hello-agent.js', import.meta.url),
);

async function loadError(options: Parameters<typeof loadAgent>[0]): Promise<AgentError> {
  try {
    await loadAgent(options);
  } catch (err) {
    expect(err).toBeInstanceOf(AgentError);
    return err as AgentError;
  }
  throw new Error('loadAgent did not fail');
}

/** Bursts of sound separated by silence in a signal (to count beeps). */
function countBursts(pcm: Int16Array): number {
  let bursts = 0;
  let quiet = Infinity;
  for (const s of pcm) {
    if (Math.abs(s) > 500) {
      if (quiet > 40) bursts++;
      quiet = 0;
    } else {
      quiet++;
    }
  }
  return bursts;
}

describe('loadAgent', () => {
  it.each([
    [{}, 'parrot'],
    [{ name: 'parrot' }, 'parrot'],
    [{ name: 'echo' }, 'echo'],
  ])('returns the built-in agent for %j', async (options, name) => {
    expect((await loadAgent(options)).name).toBe(name);
  });

  it('refuses an unknown name', async () => {
    const err = await loadError({ name: 'parot' });
    expect(err.code).toBe('AGENT_ERR_UNKNOWN');
    expect(err.message).toContain('"parot"');
    expect(err.message).toContain('parrot, echo');
  });

  it.each([
    ['object-agent.js', 'object-agent', undefined],
    ['create-agent-factory.js', 'factory-agent', 16000],
    ['async-factory.js', 'async-agent', undefined],
  ])('loads %s', async (file, name, sampleRate) => {
    const agent = await loadAgent({ modulePath: fixture(file) });
    expect(agent.name).toBe(name);
    expect(agent.sampleRate).toBe(sampleRate);
    expect(typeof agent.start).toBe('function');
  });

  it.each([
    ['no-start.js', 'the default export is not an agent: "start" must be a function'],
    ['no-name.js', 'what the createAgent export returned is not an agent: "name" must be'],
    ['no-export.js', 'exports neither a default nor a createAgent export'],
    ['not-an-object.js', 'got string'],
    ['bad-rate.js', '"sampleRate" must be a positive rate with whole 20 ms frames, got 44110'],
    ['throws-on-import.js', 'cannot be imported (agent module exploded at import)'],
    ['factory-throws.js', 'the default export threw when called (missing API key)'],
    ['does-not-exist.js', 'cannot be imported'],
  ])('refuses %s with a message naming the path and the problem', async (file, problem) => {
    const err = await loadError({ modulePath: fixture(file) });
    expect(err.code).toBe('AGENT_ERR_LOAD');
    expect(err.message).toContain(fixture(file));
    expect(err.message).toContain(problem);
  });

  it('keeps the original error as the cause', async () => {
    const err = await loadError({ modulePath: fixture('factory-throws.js') });
    expect((err.cause as Error).message).toBe('missing API key');
  });

  it('resolves a relative path against the working directory', async () => {
    const relative = fixture('object-agent.js').slice(process.cwd().length + 1);
    expect((await loadAgent({ modulePath: relative })).name).toBe('object-agent');
  });

  describe('examples/agents/hello-agent.js', () => {
    async function helloCall() {
      const agent = await loadAgent({ modulePath: helloAgentPath });
      const test = makeCall(agent, { echoMarks: true });
      const says: Int16Array[] = [];
      test.call.on('say', (_id, samples) => says.push(samples));
      await test.call.start();
      return { ...test, agent, says };
    }

    it('loads and greets the caller with a three-note chime', async () => {
      const { agent, says, pacer, transport, call } = await helloCall();
      expect(agent.name).toBe('hello');
      expect(says).toHaveLength(1);
      expect(countBursts(says[0]!)).toBe(1); // three notes back to back
      pacer().drain();
      expect(transport.marks).toEqual(['CA1-u1']);
      expect(call.stats.marksPlayed).toBe(1);
    });

    it.each([
      ['3', 3],
      ['0', 10],
      ['#', 1],
    ])('answers DTMF %s with %i beep(s)', async (digit, beeps) => {
      const { call, says } = await helloCall();
      call.receiveDtmf(digit);
      expect(says).toHaveLength(2);
      expect(countBursts(says[1]!)).toBe(beeps);
    });

    it('beeps when the caller stops talking', async () => {
      const { call, says, pacer } = await helloCall();
      pacer().drain();
      feed(call, concat([speechLike(800, 8000, -15, 9), silence(1000, 8000)]));
      expect(says).toHaveLength(2);
      expect(countBursts(says[1]!)).toBe(1);
      expect(call.stats.agentErrors).toBe(0);
    });

    it('stops its chime when the caller talks over it', async () => {
      const { call, transport } = await helloCall();
      feed(call, speechLike(300, 8000, -10, 10));
      expect(transport.count('clear')).toBe(1);
    });
  });
});
