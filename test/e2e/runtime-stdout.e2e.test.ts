import { describe, expect, it, onTestFinished } from 'vitest';
import { entryPoints, spawnProcess } from '../helpers/index.js';

// Regression: when a process's log collector goes away, stdout becomes a broken pipe and every
// later log line fails with EPIPE. runMain used to turn each failure into an uncaught exception
// whose own log line failed again — a busy loop that never reached the SIGTERM handler.
describe('runMain with a broken stdout', () => {
  it('still drains and exits on SIGTERM', async () => {
    const proxy = await spawnProcess('proxy', entryPoints.proxy, {
      env: { PORT: '0', ADMIN_PORT: '0', HOST: '127.0.0.1', MEDIA_BACKENDS: '127.0.0.1:9' },
    });
    onTestFinished(() => proxy.kill());

    proxy.child.stdout!.destroy();
    // The health checker logs the unreachable backend; with LOG_LEVEL=debug there is soon a
    // write to the closed pipe. Then ask the process to stop.
    await new Promise<void>((resolve) => setImmediate(resolve));
    proxy.signal('SIGTERM');

    const exit = await Promise.race([
      proxy.exited,
      new Promise<string>((resolve) => setTimeout(() => resolve('hung'), 10_000).unref()),
    ]);
    expect(exit).toBe(0);
  });
});
