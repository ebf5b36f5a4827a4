import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/index.js';

// The benchmarks are tools, not tests: nothing here times anything. It only checks that a smoke
// run (a few calls for about a second per step) completes, prints every row of its table, and
// that no message or call was lost on the way.

const dir = mkdtempSync(join(tmpdir(), 'callgate-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function runBench(script: string, out: string): Promise<{ code: number; output: string }> {
  const child = spawn(process.execPath, [script, '--smoke', `--out=${out}`], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code: code ?? -1, output };
}

/** The table's rows as label → cells. */
function tableRows(md: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of md.split('\n')) {
    if (!line.startsWith('| ') || line.startsWith('| figure') || line.startsWith('| agent |'))
      continue;
    const cells = line
      .slice(2, -2)
      .split(' | ')
      .map((c) => c.trim());
    rows.set(cells[0] ?? '', cells.slice(1));
  }
  return rows;
}

describe('benchmark smoke runs', () => {
  it('the proxy benchmark prints every row for every target and loses nothing', async () => {
    const out = join(dir, 'proxy.md');
    const { code, output } = await runBench('test/bench/proxy.bench.js', out);
    expect(code, output).toBe(0);
    const md = readFileSync(out, 'utf8');
    const header = md.split('\n')[0] ?? '';
    for (const target of ['direct', 'callgate media', 'callgate test-agent', 'bare Node relay']) {
      expect(header).toContain(target);
    }
    const rows = tableRows(md);
    const labels = [...rows.keys()];
    for (const prefix of [
      'proxy CPU-s per 1M messages, 5 calls',
      'proxy CPU-s per 1M messages, 20 calls',
      'RSS per active tunnel at',
      'RSS per idle tunnel at',
      'upgrades per second',
      'proxy CPU per upgrade',
      'round trip p50, ms',
      'round trip p99, ms',
      'round trip p99.9, ms',
      'round trip p50 added over direct',
      'round trip p99 added over direct',
      'round trip p99.9 added over direct',
      'messages lost + failed upgrades',
    ]) {
      const label = labels.find((l) => l.startsWith(prefix));
      expect(label, `row "${prefix}…" in\n${md}`).toBeDefined();
      // Column 1 is callgate media: a number in every row (the value itself is not checked).
      expect(rows.get(label ?? '')?.[1], `${prefix} in\n${md}`).toMatch(/^-?[\d,]+(\.\d+)?$/);
    }
    const lost = rows.get(labels.find((l) => l.startsWith('messages lost')) ?? '') ?? [];
    for (const cell of lost.filter((c) => c !== '')) expect(cell).toBe('0');
  }, 240_000);

  it('the media benchmark reports every agent, with every call up and every frame in', async () => {
    const out = join(dir, 'media.md');
    const { code, output } = await runBench('test/bench/media.bench.js', out);
    expect(code, output).toBe(0);
    const rows = tableRows(readFileSync(out, 'utf8'));
    for (const agent of ['echo', 'parrot', 'parrot-16k']) expect(rows.has(agent)).toBe(true);
    const { steps } = JSON.parse(readFileSync(out.replace(/\.md$/, '.json'), 'utf8')) as {
      steps: {
        agent: string;
        calls: number;
        live: number;
        failed: number;
        dropped: number;
        inboundMissing: number;
      }[];
    };
    expect(steps.length).toBeGreaterThanOrEqual(3);
    for (const s of steps) {
      expect(s, s.agent).toMatchObject({ failed: 0, dropped: 0, live: s.calls });
      expect(s.inboundMissing, s.agent).toBeLessThanOrEqual(0);
    }
  }, 120_000);
});
