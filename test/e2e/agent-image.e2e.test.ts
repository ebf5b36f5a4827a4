import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/index.js';

// The build-time agent check of the Dockerfile (AGENT_MODULE build argument) and of
// examples/agents/agent.Dockerfile, run as the image build runs it (sh in the app directory, after
// the build): no Docker engine here, but the step that fails a bad agent's build is exercised.

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'callgate-agent-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The RUN line of `file` that checks the agent, continuation lines joined. */
function agentCheck(file: string): string {
  const lines = readFileSync(join(repoRoot, file), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim());
  const check = lines.find((l) => l.startsWith('RUN ') && l.includes('loadAgent'));
  if (!check) throw new Error(`${file}: no RUN line checks the agent`);
  return check.slice('RUN '.length);
}

async function build(file: string, agentModule: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run('sh', ['-c', agentCheck(file)], {
      cwd: repoRoot,
      env: { PATH: process.env.PATH ?? '', AGENT_MODULE: agentModule },
    });
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

describe('the image build checks the agent it ships', () => {
  it.each([
    ['examples/agents/voice-pipeline/agent.js', 'voice-pipeline'],
    ['examples/agents/hello-agent.js', 'hello'],
  ])('Dockerfile --build-arg AGENT_MODULE=%s passes', async (module, name) => {
    const result = await build('Dockerfile', module);
    expect(result).toEqual({ ok: true, output: `AGENT_MODULE ${module}: agent ${name}\n` });
  });

  it('Dockerfile without the build argument skips the check (built-in agent)', async () => {
    expect(await build('Dockerfile', '')).toEqual({ ok: true, output: '' });
  });

  it('fails the build for a module that is missing or does not export an agent', async () => {
    const notAnAgent = join(dir, 'not-an-agent.js');
    writeFileSync(notAnAgent, 'export default { name: "x" };\n');
    for (const file of ['Dockerfile', 'examples/agents/agent.Dockerfile']) {
      const missing = await build(file, join(dir, 'missing.js'));
      expect(missing.ok, file).toBe(false);
      expect(missing.output).toContain('AGENT_ERR_LOAD');
      const bad = await build(file, notAnAgent);
      expect(bad.ok, file).toBe(false);
      expect(bad.output).toContain('"start" must be a function');
    }
  });

  it('agent.Dockerfile passes for a built agent at an absolute path, as in /agent', async () => {
    const module = join(repoRoot, 'examples/agents/voice-pipeline/agent.js');
    const result = await build('examples/agents/agent.Dockerfile', module);
    expect(result).toEqual({ ok: true, output: `AGENT_MODULE ${module}: agent voice-pipeline\n` });
  });
});
