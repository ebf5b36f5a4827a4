import { rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { loadTestAgentConfig } from '../src/config.js';
import type { TestAgentWorkerConfig } from '../src/test-agent-worker.js';

export const SECRET = 'a-test-secret-of-32-characters!!';

/**
 * The worker's defaults as config.ts gives them, on a free port, with the shared test secret and
 * no accept grace (a drained worker refuses at once unless a test asks otherwise).
 */
export function testConfig(overrides: Partial<TestAgentWorkerConfig> = {}): TestAgentWorkerConfig {
  const defaults = loadTestAgentConfig({ TEST_AGENT_SECRET: SECRET, ACCEPT_GRACE_MS: '0' });
  return { ...defaults, host: '127.0.0.1', port: 0, ...overrides };
}

let audioModules: Promise<string> | undefined;

/**
 * A folder with @callgate/audio's modules as the build writes them to `packages/audio/dist`, made
 * from the sources with TypeScript's transpiler: unit tests run without a build, and the worker
 * refuses to start without the modules its page imports. Made once per test file.
 */
export function audioModulesDir(): Promise<string> {
  audioModules ??= (async () => {
    const src = fileURLToPath(new URL('../../../packages/audio/src/', import.meta.url));
    const dir = await mkdtemp(join(tmpdir(), 'callgate-audio-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    for (const name of await readdir(src)) {
      if (!name.endsWith('.ts')) continue;
      const { outputText } = ts.transpileModule(await readFile(join(src, name), 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
      });
      await writeFile(join(dir, name.replace(/\.ts$/, '.js')), outputText);
    }
    return dir;
  })();
  return audioModules;
}
