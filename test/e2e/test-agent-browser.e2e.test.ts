import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeWav } from '@callgate/audio';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  CHROMIUM,
  CHROMIUM_ARGS,
  entryPoints,
  hasChromium,
  repoRoot,
  spawnProcess,
} from '../helpers/index.js';

// The browser page end to end: Debian's Chromium with a fake microphone that plays a WAV we
// generate, through the real proxy and the real test-agent worker processes.
const SCREENSHOT = join(repoRoot, 'test-results', 'test-agent.png');
const WAIT_MS = 15_000;

/**
 * 48 kHz PCM16 mono: 1.2 s of a voiced, syllable-like signal (harmonics of 140 Hz, modulated at
 * 4 Hz), then 2.8 s of silence. Chromium loops the file, so the caller "speaks" every 4 s.
 */
function callerWav(): Buffer {
  const rate = 48_000;
  const samples = new Int16Array(rate * 4);
  for (let i = 0; i < rate * 1.2; i++) {
    const t = i / rate;
    let v = 0;
    for (let k = 1; k <= 8; k++) v += Math.sin(2 * Math.PI * 140 * k * t) / k;
    samples[i] = Math.round(v * (0.6 + 0.4 * Math.sin(2 * Math.PI * 4 * t)) * 6000);
  }
  return encodeWav({ sampleRate: rate, channels: 1, samples });
}

// The page's CSP forbids eval, so predicates are functions with arguments, never strings.
function waitForSelector(page: Page, selector: string): Promise<unknown> {
  return page.waitForSelector(selector, { state: 'attached', timeout: WAIT_MS });
}

interface PageGlobals {
  document: { getElementById(id: string): { dataset: Record<string, string | undefined> } | null };
}

function waitForData(
  page: Page,
  name: string,
  predicate: 'equals' | 'atLeast',
  value: string | number,
): Promise<unknown> {
  return page.waitForFunction(
    ([n, p, v]) => {
      // Runs in the page; the test is compiled without the DOM types.
      const doc = (globalThis as unknown as PageGlobals).document;
      const actual = doc.getElementById('app')?.dataset[n as string];
      return p === 'equals' ? actual === v : Number(actual) >= Number(v);
    },
    [name, predicate, value] as const,
    { timeout: WAIT_MS },
  );
}

describe('test-agent page in Chromium, through the proxy', () => {
  it.skipIf(!hasChromium && !process.env.CI)(
    `talks to the parrot, plays its reply, sends DTMF and hangs up (needs ${CHROMIUM}; skipped locally without it)`,
    async () => {
      if (!hasChromium) {
        throw new Error(
          `${CHROMIUM} is missing: CI must install Debian's chromium package for the browser test`,
        );
      }
      const dir = await mkdtemp(join(tmpdir(), 'callgate-browser-'));
      onTestFinished(() => rm(dir, { recursive: true, force: true }));
      const wav = join(dir, 'caller.wav');
      await writeFile(wav, callerWav());

      const worker = await spawnProcess('test-agent', entryPoints.testAgent, {
        env: { TEST_AGENT_SECRET: 'browser-test-secret-0123456789', LOG_LEVEL: 'info' },
      });
      onTestFinished(() => worker.kill());
      const proxy = await spawnProcess('proxy', entryPoints.proxy, {
        env: {
          PORT: '0',
          ADMIN_PORT: '0',
          LOG_LEVEL: 'info',
          TEST_AGENT_BACKENDS: `127.0.0.1:${worker.port}`,
        },
      });
      onTestFinished(() => proxy.kill());
      expect(Number(proxy.listening.adminPort)).toBeGreaterThan(0);

      const context: BrowserContext = await chromium.launchPersistentContext(join(dir, 'profile'), {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--use-fake-device-for-media-stream',
          '--use-fake-ui-for-media-stream',
          `--use-file-for-fake-audio-capture=${wav}`,
          '--autoplay-policy=no-user-gesture-required',
          ...CHROMIUM_ARGS,
        ],
      });
      onTestFinished(() => context.close());
      const page = context.pages()[0] ?? (await context.newPage());
      const pageErrors: string[] = [];
      page.on('pageerror', (err) => pageErrors.push(err.message));

      await page.goto(`http://127.0.0.1:${proxy.port}/test-agent/`);
      await page.getByRole('button', { name: 'Start', exact: true }).click();
      await waitForData(page, 'state', 'equals', 'connected');

      // The fake microphone speaks; the parrot says it back; the page plays it and acks its mark.
      await waitForSelector(page, '#log li[data-kind="caller"]');
      await waitForSelector(page, '#log li[data-kind="agent"]');
      await waitForData(page, 'framesPlayed', 'atLeast', 25);
      await waitForData(page, 'marksPlayed', 'atLeast', 1);
      const app = page.locator('#app');
      expect(Number(await app.getAttribute('data-frames-sent'))).toBeGreaterThan(50);
      expect(Number(await app.getAttribute('data-frames-received'))).toBeGreaterThanOrEqual(25);

      // DTMF: a keypad click reaches the agent, which answers with the key's tone.
      await page.getByRole('button', { name: 'Send DTMF 5' }).click();
      await waitForSelector(page, '#log li[data-kind="dtmf"][data-digit="5"]');
      await waitForSelector(page, '#log li[data-kind="agent"][data-tone="5"]');

      await mkdir(join(repoRoot, 'test-results'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      await page.getByRole('button', { name: 'Hang up', exact: true }).click();
      await waitForData(page, 'state', 'equals', 'ended');
      expect(await app.getAttribute('data-close-code')).toBe('1000');
      expect(await page.locator('#status').textContent()).toBe('You hung up.');
      const ended = await worker.waitForLog((l) => l.msg === 'session ended', WAIT_MS);
      expect(ended).toMatchObject({ reason: 'caller-hangup', closeCode: 1000 });
      expect(Number(ended.marksPlayed)).toBeGreaterThanOrEqual(1);
      expect(Number(ended.dtmfIn)).toBe(1);
      expect(pageErrors).toEqual([]);
    },
    45_000,
  );
});
