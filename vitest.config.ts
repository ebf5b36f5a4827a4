import { defineConfig } from 'vitest/config';

// Two projects: `unit` runs against TypeScript sources (no build needed), `e2e` spawns the built
// processes from dist/ and drives them over loopback (and a real Chromium for the test-agent page).
export default defineConfig({
  test: {
    projects: [
      {
        resolve: { conditions: ['@callgate/source'] },
        ssr: { resolve: { conditions: ['@callgate/source'] } },
        test: {
          name: 'unit',
          include: ['{packages,proxy,workers}/**/test/**/*.test.ts', 'test/deploy/**/*.test.ts'],
          exclude: ['**/node_modules/**', '**/dist/**'],
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
      {
        resolve: { conditions: ['@callgate/source'] },
        ssr: { resolve: { conditions: ['@callgate/source'] } },
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.e2e.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // Cross-process tests spawn several Node processes each; on a 2-core machine running
          // files one at a time keeps timing-sensitive audio paths honest.
          fileParallelism: false,
        },
      },
    ],
  },
});
