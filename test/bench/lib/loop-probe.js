// Preloaded into the media worker by media.bench.js (`--import`): the worker's event-loop delay at
// 1 ms resolution, which is how late its 20 ms pacer ticks (and so its outbound frames) fire.
// On SIGUSR2 it writes the percentiles since the last SIGUSR2 to BENCH_LOOP_PROBE_FILE and resets.
// On SIGWINCH it runs full garbage collections (the bench starts the worker with --expose-gc)
// and writes what is left on the heap and outside it to BENCH_LOOP_PROBE_FILE + '.mem.json': the
// bench's check that the calls' memory was freed once they ended.
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const file = process.env.BENCH_LOOP_PROBE_FILE;
if (file) {
  const RESOLUTION_MS = 1;
  const h = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  h.enable();
  // A sample is the time between two timer turns; what exceeds the resolution is the lateness.
  const late = (ns) => Math.max(0, ns / 1e6 - RESOLUTION_MS);
  process.on('SIGUSR2', () => {
    writeFileSync(
      file,
      JSON.stringify({
        p50: late(h.percentile(50)),
        p99: late(h.percentile(99)),
        max: late(h.max),
        samples: h.count,
      }),
    );
    h.reset();
  });
  process.on('SIGWINCH', async () => {
    // ArrayBuffers' memory goes back to the allocator in the background after a GC: give it a
    // moment, then collect again and read.
    globalThis.gc?.();
    await new Promise((resolve) => setTimeout(resolve, 500));
    globalThis.gc?.();
    const { heapUsed, external, arrayBuffers } = process.memoryUsage();
    writeFileSync(
      `${file}.mem.json`,
      JSON.stringify({
        collected: typeof globalThis.gc === 'function',
        heapUsed,
        external,
        arrayBuffers,
      }),
    );
  });
}
