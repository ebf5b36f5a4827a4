import { PerformanceObserver } from 'node:perf_hooks';
import { collectDefaultMetrics as promDefaults } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { collectDefaultMetrics, createRegistry } from '../src/index.js';

describe('collectDefaultMetrics', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("registers prom-client's process and Node.js metrics, all but the GC histogram", () => {
    const ours = createRegistry();
    collectDefaultMetrics({ register: ours });
    const theirs = createRegistry();
    promDefaults({ register: theirs });
    const names = (r: ReturnType<typeof createRegistry>): string[] =>
      r.getMetricsAsArray().map((m) => m.name);
    expect(names(theirs)).toContain('nodejs_gc_duration_seconds');
    expect(names(ours)).toEqual(names(theirs).filter((n) => n !== 'nodejs_gc_duration_seconds'));
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(names(ours)).toContain(name);
    }
  });

  it('starts no observer of GC events (one costs every pause, and so every call, latency)', () => {
    const observe = vi.spyOn(PerformanceObserver.prototype, 'observe');
    collectDefaultMetrics({ register: createRegistry() });
    const gcObserved = observe.mock.calls.some(([options]) =>
      JSON.stringify(options ?? {}).includes('"gc"'),
    );
    expect(gcObserved).toBe(false);
    // The check itself sees prom-client's own observer.
    promDefaults({ register: createRegistry() });
    expect(observe.mock.calls.some(([o]) => JSON.stringify(o ?? {}).includes('"gc"'))).toBe(true);
  });
});
