import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  CHROMIUM,
  CHROMIUM_ARGS,
  entryPoints,
  hasChromium,
  repoRoot,
  spawnProcess,
} from '../helpers/index.js';

// The proxy's admin status page in Debian's Chromium, with JavaScript off: the page must show
// the pools and backends and its Drain/Undrain buttons must work as plain HTML forms.
const SCREENSHOT = join(repoRoot, 'test-results', 'proxy-status.png');
const WAIT_MS = 15_000;

describe('proxy status page in Chromium', () => {
  it.skipIf(!hasChromium && !process.env.CI)(
    `shows every backend and drains one with a form POST, without JavaScript (needs ${CHROMIUM})`,
    async () => {
      if (!hasChromium) throw new Error(`${CHROMIUM} is missing: CI must install chromium`);
      const dir = await mkdtemp(join(tmpdir(), 'callgate-status-'));
      onTestFinished(() => rm(dir, { recursive: true, force: true }));

      const workers = [];
      for (let i = 0; i < 2; i++) {
        const w = await spawnProcess(`media-${i}`, entryPoints.media, {
          env: { CALL_TOKEN_SECRET: 'status-page-test-secret-0123456789', LOG_LEVEL: 'info' },
        });
        onTestFinished(() => w.kill());
        workers.push(w);
      }
      const backends = workers.map((w) => `127.0.0.1:${w.port}`);
      const proxy = await spawnProcess('proxy', entryPoints.proxy, {
        env: {
          PORT: '0',
          ADMIN_PORT: '0',
          LOG_LEVEL: 'info',
          HEALTH_CHECK_INTERVAL_MS: '200',
          MEDIA_BACKENDS: backends.join(','),
          // Nothing listens there: a backend the page must show as down.
          TEST_AGENT_BACKENDS: '127.0.0.1:9',
        },
      });
      onTestFinished(() => proxy.kill());
      const admin = `http://127.0.0.1:${String(proxy.listening.adminPort)}`;

      const context: BrowserContext = await chromium.launchPersistentContext(join(dir, 'profile'), {
        executablePath: CHROMIUM,
        headless: true,
        javaScriptEnabled: false,
        args: [...CHROMIUM_ARGS],
      });
      onTestFinished(() => context.close());
      const page = context.pages()[0] ?? (await context.newPage());

      await page.goto(`${admin}/`);
      const row = (pool: string, backend: string) =>
        page.locator(`#backends tr[data-pool="${pool}"][data-backend="${backend}"]`);
      for (const b of backends) {
        await expect
          .poll(() => row('media', b).getAttribute('data-state'), { timeout: WAIT_MS })
          .toBe('up');
      }
      // The page reloads itself (meta refresh) until the dead backend's probes mark it down.
      await expect
        .poll(() => row('test-agent', '127.0.0.1:9').getAttribute('data-state'), {
          timeout: WAIT_MS,
        })
        .toBe('down');
      await expect
        .poll(async () => (await row('media', backends[0]!).textContent()) ?? '', {
          timeout: WAIT_MS,
        })
        .toMatch(/ready \(200, [\d.]+ ms/);
      expect(await page.locator('#totals').textContent()).toMatch(/\d/);

      // Drain the first worker with its button: a form POST, then back to the page (303).
      await row('media', backends[0]!).getByRole('button', { name: 'Drain' }).click();
      await expect
        .poll(() => row('media', backends[0]!).getAttribute('data-state'), { timeout: WAIT_MS })
        .toBe('draining');
      expect(await row('media', backends[0]!).textContent()).toContain('drained by operator');
      await proxy.waitForLog((l) => l.msg === 'backend drained by operator', WAIT_MS);

      await mkdir(join(repoRoot, 'test-results'), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      // Probes keep answering 200; the drain holds until the operator undrains.
      await new Promise((resolve) => setTimeout(resolve, 600));
      await page.reload();
      expect(await row('media', backends[0]!).getAttribute('data-state')).toBe('draining');
      await row('media', backends[0]!).getByRole('button', { name: 'Undrain' }).click();
      await expect
        .poll(() => row('media', backends[0]!).getAttribute('data-state'), { timeout: WAIT_MS })
        .toBe('up');

      // Another site cannot make this browser drain a worker.
      const evil = await context.newPage();
      await evil.setContent(
        `<form method="post" action="${admin}/backends/media/${backends[1]}/drain"><button>go</button></form>`,
      );
      const [response] = await Promise.all([
        evil.waitForResponse((r) => r.url().includes('/drain')),
        evil.getByRole('button', { name: 'go' }).click(),
      ]);
      expect(response.status()).toBe(403);
      await page.reload();
      expect(await row('media', backends[1]!).getAttribute('data-state')).toBe('up');
    },
    45_000,
  );
});
