import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { entryPoints, repoRoot, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

// The README's promise: with the stack running, `npm run sim -- --url .../media-stream/CAtest`
// holds a whole conversation with the parrot through the proxy — webhook, token, stream, replies.

const spawned: SpawnedProcess[] = [];
let proxyPort: number;

beforeAll(async () => {
  const worker = await spawnProcess('media', entryPoints.media, {
    env: { LOG_LEVEL: 'info', CALL_TOKEN_SECRET: 'sim-cli-e2e-secret-0123456789abcdef' },
  });
  spawned.push(worker);
  const proxy = await spawnProcess('proxy', entryPoints.proxy, {
    env: { LOG_LEVEL: 'info', ADMIN_PORT: '0', MEDIA_BACKENDS: `127.0.0.1:${worker.port}` },
  });
  spawned.push(proxy);
  proxyPort = proxy.port;
});

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
});

describe('npm run sim', () => {
  it('holds a conversation with the parrot through the proxy, from a readable CallSid', async () => {
    const child = spawn(
      process.execPath,
      [
        entryPoints.sim,
        '--url',
        `ws://127.0.0.1:${proxyPort}/media-stream/CAtest`,
        '--json',
        '--tail-ms',
        '2500',
      ],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, stderr).toBe(0);

    const summary = JSON.parse(stdout) as {
      callSid: string;
      closedBy: string;
      clears: number;
      replies: Array<{ latencyMs: number | null }>;
      protocolErrors: unknown[];
      customParameters: Record<string, string>;
    };
    expect(summary.callSid).toBe('CAtest');
    expect(summary.customParameters.callToken).toEqual(expect.any(String));
    expect(summary.protocolErrors).toEqual([]);
    expect(summary.closedBy).toBe('caller');
    // The default utterances are spaced so the parrot finishes each reply: no barge-in.
    expect(summary.clears).toBe(0);
    // Without --wav the CLI speaks two utterances; the parrot answers both.
    expect(summary.replies).toHaveLength(2);
    for (const reply of summary.replies) expect(reply.latencyMs).toEqual(expect.any(Number));
  });
});
