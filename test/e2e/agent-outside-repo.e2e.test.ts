import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { detectDtmf } from '@callgate/audio';
import { firstSoundAfter, simulateCall } from '@callgate/simulator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  entryPoints,
  noise,
  repoRoot,
  spawnProcess,
  type SpawnedProcess,
} from '../helpers/index.js';

// An agent written in its own project, outside this repository, as an agent builder would: it gets
// @callgate/agent from the tarball `npm run pack:agent` makes, installs it with no network, is
// type-checked by tsc against the packed .d.ts files (skipLibCheck off, so every type they name
// must resolve), is built, and runs in a real media worker through AGENT_MODULE.

const run = promisify(execFile);
const RATE = 8000;
const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');

/** The child's environment without npm's `npm_*` variables (vitest may run under `npm test`). */
function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !/^npm_/i.test(k)) env[k] = v;
  }
  return env;
}

async function sh(cmd: string, args: string[], cwd: string): Promise<string> {
  try {
    const { stdout } = await run(cmd, args, { cwd, env: cleanEnv(), maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${cmd} ${args.join(' ')} failed in ${cwd}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`,
      { cause: err },
    );
  }
}

const AGENT_TS = `import { EnergyVad, type Agent, type AgentCall, type AgentSession } from '@callgate/agent';

/** A DTMF-like pair of sines: the caller's side can tell this agent's voice from any other. */
function pair(lowHz: number, highHz: number, ms: number, rate: number): Int16Array {
  const out = new Int16Array(Math.round((ms * rate) / 1000));
  for (let i = 0; i < out.length; i++) {
    const t = i / rate;
    out[i] = Math.round(
      (Math.sin(2 * Math.PI * lowHz * t) + Math.sin(2 * Math.PI * highHz * t)) * 0.2 * 32767,
    );
  }
  return out;
}

export default function createAgent(): Agent {
  return {
    name: 'outside',
    start(call: AgentCall): AgentSession {
      const rate = call.sampleRate;
      call.log.info('outside agent answering', { callId: call.info.callId, transport: call.info.transport });
      // Digit 7 (852 + 1209 Hz) as the greeting; digit 9 (852 + 1477 Hz) after each sentence.
      call.say(pair(852, 1209, 300, rate));
      const vad = new EnergyVad({ sampleRate: rate });
      return {
        onAudio(frame: Int16Array): void {
          const event = vad.process(frame);
          if (event?.type === 'end') call.say(pair(852, 1477, 300, rate));
        },
        onPlayed(utteranceId: string): void {
          call.log.info('outside agent heard', { utteranceId });
        },
      };
    },
  };
}
`;

/** Misuses of the interface that tsc must reject: proof the packed types are real, not `any`. */
const MISUSE_TS = `import type { Agent } from '@callgate/agent';

export const agent: Agent = {
  name: 'misuse',
  start(call) {
    call.say('hello');
    call.log.shout('x');
    return { onAudio(frame: string) { void frame; } };
  },
};
`;

/** The first TypeScript block of a markdown file. */
function readmeExample(path: string): string {
  const m = /```ts\n([\s\S]*?)```/.exec(readFileSync(join(repoRoot, path), 'utf8'));
  if (!m) throw new Error(`${path}: no ts example`);
  return m[1]!;
}

let dir: string;
let agentDir: string;
let worker: SpawnedProcess | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'callgate-outside-agent-'));
  agentDir = join(dir, 'my-agent');
  const packs = join(dir, 'packs');
  mkdirSync(join(agentDir, 'src'), { recursive: true });
  mkdirSync(join(agentDir, 'misuse'), { recursive: true });

  const tarball = (await sh(process.execPath, ['scripts/pack-agent.js', '--out', packs], repoRoot))
    .trim()
    .split('\n')
    .at(-1)!;
  // Node's own types come from the agent's project, as in any Node TypeScript project. With no
  // registry here they are packed from this repository's copy: the same files npm would download.
  for (const pkg of ['@types/node', 'undici-types']) {
    await sh(
      'npm',
      ['pack', join(repoRoot, 'node_modules', pkg), '--pack-destination', packs],
      dir,
    );
  }
  const typeTarballs = readdirSync(packs)
    .filter((f) => f !== tarball.split('/').at(-1))
    .map((f) => join(packs, f));

  writeFileSync(
    join(agentDir, 'package.json'),
    JSON.stringify({ name: 'my-agent', version: '1.0.0', private: true, type: 'module' }, null, 2),
  );
  const compilerOptions = {
    target: 'ES2022',
    lib: ['ES2023'],
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    exactOptionalPropertyTypes: true,
    skipLibCheck: false,
    types: ['node'],
  };
  writeFileSync(
    join(agentDir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        ...compilerOptions,
        allowJs: true,
        checkJs: true,
        rootDir: 'src',
        outDir: 'dist',
      },
      include: ['src'],
    }),
  );
  writeFileSync(
    join(agentDir, 'misuse/tsconfig.json'),
    JSON.stringify({ compilerOptions: { ...compilerOptions, noEmit: true }, include: ['.'] }),
  );
  writeFileSync(join(agentDir, 'src/agent.ts'), AGENT_TS);
  // The example in the package's README (shipped in the tarball) must compile too.
  writeFileSync(join(agentDir, 'src/readme-agent.ts'), readmeExample('packages/agent/README.md'));
  // The voice-pipeline example is JavaScript with JSDoc types: checked here against the packed
  // types too (checkJs), as a builder who copies it into their project would.
  cpSync(join(repoRoot, 'examples/agents/voice-pipeline'), join(agentDir, 'src/voice-pipeline'), {
    recursive: true,
    filter: (src) => !src.endsWith('.md'),
  });
  writeFileSync(join(agentDir, 'misuse/misuse.ts'), MISUSE_TS);

  await sh(
    'npm',
    [
      'install',
      '--offline',
      '--no-audit',
      '--no-fund',
      '--ignore-scripts',
      tarball,
      ...typeTarballs,
    ],
    agentDir,
  );
}, 180_000);

afterAll(async () => {
  await worker?.kill();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('an agent in its own project, outside the repository', () => {
  it('lives outside the workspace and got the package from the tarball, with no network', () => {
    expect(relative(repoRoot, agentDir).startsWith('..')).toBe(true);
    const pkg = JSON.parse(readFileSync(join(agentDir, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(pkg.dependencies['@callgate/agent']).toMatch(/^file:.*callgate-agent-[\d.]+\.tgz$/);
    // A real copy, not a link back into the workspace.
    const installed = join(agentDir, 'node_modules/@callgate/agent');
    expect(existsSync(join(installed, 'dist/index.d.ts'))).toBe(true);
    expect(existsSync(join(installed, 'node_modules/@callgate/runtime/dist/index.d.ts'))).toBe(
      true,
    );
    expect(existsSync(join(installed, 'dist/.tsbuildinfo'))).toBe(false);
  });

  it('type-checks and builds against the packed types (its agent and the voice-pipeline example)', async () => {
    await sh(process.execPath, [tsc, '-p', '.'], agentDir);
    expect(existsSync(join(agentDir, 'dist/agent.js'))).toBe(true);
    expect(existsSync(join(agentDir, 'dist/voice-pipeline/agent.js'))).toBe(true);
    expect(existsSync(join(agentDir, 'dist/readme-agent.js'))).toBe(true);
  });

  it('rejects misuse of the interface at compile time', async () => {
    const failure = await sh(process.execPath, [tsc, '-p', 'misuse'], agentDir).then(
      () => '',
      (err: Error) => err.message,
    );
    expect(failure).toContain("Argument of type 'string' is not assignable"); // say('hello')
    expect(failure).toContain("Property 'shout' does not exist on type 'Logger'"); // call.log
    expect(failure).toMatch(/onAudio/); // a session callback with the wrong frame type
  });

  it('runs in a media worker via AGENT_MODULE, and a simulated caller hears it', async () => {
    if (!existsSync(join(agentDir, 'dist/agent.js')))
      await sh(process.execPath, [tsc, '-p', '.'], agentDir);
    worker = await spawnProcess('media', entryPoints.media, {
      env: { LOG_LEVEL: 'info', AGENT_MODULE: join(agentDir, 'dist/agent.js') },
    });
    const sid = `CA${'0'.repeat(31)}7`;
    const audio = new Int16Array(RATE * 2);
    audio.set(noise(700, 11), RATE * 0.8);
    const summary = await simulateCall({
      url: `ws://127.0.0.1:${worker.port}/media-stream/${sid}`,
      callSid: sid,
      audio,
      segments: [{ startMs: 800, endMs: 1500 }],
      tailMs: 2000,
    });
    expect(summary.protocolErrors).toEqual([]);
    await worker.waitForLog((l) => l.msg === 'outside agent answering' && l.transport === 'twilio');

    // The greeting: digit 7, from the start of the call.
    const greeting = firstSoundAfter(summary.replyAudio, RATE, 0)!;
    expect(greeting).toEqual(expect.any(Number));
    const at = (ms: number) => Math.round((ms * RATE) / 1000);
    expect(detectDtmf(summary.replyAudio.subarray(at(greeting), at(greeting + 150)), RATE)).toBe(
      '7',
    );
    // The answer to the caller's sentence: digit 9.
    const reply = summary.replies[0]?.firstReplyMs;
    expect(reply).toEqual(expect.any(Number));
    expect(detectDtmf(summary.replyAudio.subarray(at(reply!), at(reply! + 150)), RATE)).toBe('9');
    // Both utterances were marked, echoed, and reported back to the agent as heard.
    expect(summary.marksAcked).toBe(2);
    for (const n of [1, 2]) {
      await worker.waitForLog(
        (l) => l.msg === 'outside agent heard' && String(l.utteranceId).endsWith(`-u${n}`),
      );
    }
  });
});
