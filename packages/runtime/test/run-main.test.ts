import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  CallgateError,
  runMain,
  type DrainableService,
  type MainProcess,
  type RunMainOptions,
} from '../src/index.js';
import { captureLogger, type CapturedLine } from './helpers.js';

// The real process must satisfy the injectable interface (checked by tsc -p tsconfig.test.json).
const realProcess: MainProcess = process;
void realProcess;

/** A promise with its resolve/reject exposed, for driving the fake service step by step. */
function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

class FakeProcess extends EventEmitter implements MainProcess {
  exitCode: number | string | undefined;
  readonly exits: (number | undefined)[] = [];
  /** Held stdout callbacks when `holdFlush` is set; otherwise they run at once. */
  holdFlush = false;
  neverFlush = false;
  readonly pendingFlushes: (() => void)[] = [];
  readonly #exited = deferred<number | undefined>();
  readonly stdout = {
    write: (_chunk: string, callback?: (err?: Error | null) => void): boolean => {
      if (this.neverFlush) return true;
      if (this.holdFlush) this.pendingFlushes.push(() => callback?.());
      else callback?.();
      return true;
    },
  };

  exit(code?: number): void {
    this.exits.push(code);
    this.#exited.resolve(code);
  }

  /** Resolves with the code of the first exit() call. */
  get exited(): Promise<number | undefined> {
    return this.#exited.promise;
  }
}

class FakeService implements DrainableService {
  readonly calls: string[] = [];
  startResult: Promise<void> = Promise.resolve();
  closeResult: Promise<void> = Promise.resolve();
  destroyResult: Promise<void> = Promise.resolve();
  beginDrainError: Error | undefined;

  start(): Promise<void> {
    this.calls.push('start');
    return this.startResult;
  }
  beginDrain(): void {
    this.calls.push('beginDrain');
    if (this.beginDrainError) throw this.beginDrainError;
  }
  close(): Promise<void> {
    this.calls.push('close');
    return this.closeResult;
  }
  destroy(): Promise<void> {
    this.calls.push('destroy');
    return this.destroyResult;
  }
}

interface Run {
  proc: FakeProcess;
  service: FakeService;
  lines: CapturedLine[];
  started: Promise<void>;
}

function run(
  setup: (service: FakeService, proc: FakeProcess) => void = () => undefined,
  options: Partial<RunMainOptions> = {},
): Run {
  const proc = new FakeProcess();
  const service = new FakeService();
  setup(service, proc);
  const { logger, lines } = captureLogger();
  const started = runMain({
    name: 'media-worker',
    service,
    logger,
    drainTimeoutMs: 60_000,
    describe: () => ({ port: 4321, pool: 'media' }),
    process: proc,
    ...options,
  });
  return { proc, service, lines, started };
}

const never = <T = void>(): Promise<T> => new Promise<T>(() => undefined);

function line(lines: CapturedLine[], msg: string): CapturedLine | undefined {
  return lines.find((l) => l.msg === msg);
}

afterEach(() => {
  vi.useRealTimers();
});

describe('runMain', () => {
  it('starts the service and logs one listening line with describe() fields', async () => {
    const r = run();
    await r.started;
    const listening = r.lines.filter((l) => l.msg === 'listening');
    expect(listening).toHaveLength(1);
    expect(listening[0]).toMatchObject({ level: 'info', port: 4321, pool: 'media' });
    expect(r.service.calls).toEqual(['start']);
    expect(r.proc.exits).toEqual([]);
  });

  it.each<[string, unknown, string]>([
    ['a coded error', new CallgateError('RUNTIME_ERR_LISTEN', 'port taken'), 'RUNTIME_ERR_LISTEN'],
    ['an uncoded error', new Error('nope'), 'RUNTIME_ERR_START_FAILED'],
  ])('on a start failure with %s logs start failed and exits 1', async (_label, err, code) => {
    const r = run((s) => {
      s.startResult = Promise.reject(err);
    });
    await r.started;
    expect(await r.proc.exited).toBe(1);
    expect(r.proc.exitCode).toBe(1);
    expect(line(r.lines, 'start failed')).toMatchObject({ level: 'error', code });
    expect(r.lines.some((l) => l.msg === 'listening')).toBe(false);
    expect(r.service.calls).toEqual(['start', 'destroy']);
  });

  it('treats a describe() throw as a start failure', async () => {
    const r = run(undefined, {
      describe: () => {
        throw new Error('no address');
      },
    });
    expect(await r.proc.exited).toBe(1);
    expect(line(r.lines, 'start failed')).toMatchObject({ code: 'RUNTIME_ERR_START_FAILED' });
  });

  it.each(['SIGTERM', 'SIGINT'] as const)(
    'on %s drains: beginDrain, close, drained, exit 0',
    async (signal) => {
      const r = run();
      await r.started;
      r.proc.emit(signal, signal);
      expect(await r.proc.exited).toBe(0);
      expect(r.proc.exitCode).toBe(0);
      expect(r.service.calls).toEqual(['start', 'beginDrain', 'close']);
      expect(line(r.lines, 'draining')).toMatchObject({ signal, drainTimeoutMs: 60_000 });
      expect(line(r.lines, 'drained')).toBeDefined();
      expect(r.proc.exits).toEqual([0]);
    },
  );

  it.each<[string, number | undefined, number]>([
    ['default', undefined, 1],
    ['0 (workers)', 0, 0],
  ])(
    'at the drain deadline destroys and exits forcedExitCode %s',
    async (_label, forcedExitCode, expected) => {
      vi.useFakeTimers();
      const r = run(
        (s) => {
          s.closeResult = never();
        },
        forcedExitCode === undefined
          ? { drainTimeoutMs: 1000 }
          : { drainTimeoutMs: 1000, forcedExitCode },
      );
      await r.started;
      r.proc.emit('SIGTERM', 'SIGTERM');
      await vi.advanceTimersByTimeAsync(999);
      expect(r.service.calls).not.toContain('destroy');
      await vi.advanceTimersByTimeAsync(1);
      expect(await r.proc.exited).toBe(expected);
      expect(r.service.calls).toEqual(['start', 'beginDrain', 'close', 'destroy']);
      expect(line(r.lines, 'drain deadline reached, destroying')).toMatchObject({
        level: 'warn',
        code: 'RUNTIME_ERR_DRAIN_TIMEOUT',
        drainTimeoutMs: 1000,
      });
      expect(line(r.lines, 'drained')).toBeUndefined();
    },
  );

  it('on a second signal during the drain destroys at once and exits forcedExitCode', async () => {
    const r = run(
      (s) => {
        s.closeResult = never();
      },
      { forcedExitCode: 3 },
    );
    await r.started;
    r.proc.emit('SIGTERM', 'SIGTERM');
    r.proc.emit('SIGINT', 'SIGINT');
    expect(await r.proc.exited).toBe(3);
    expect(line(r.lines, 'second signal, destroying now')).toMatchObject({
      level: 'warn',
      signal: 'SIGINT',
    });
    // A third signal while destroying changes nothing.
    r.proc.emit('SIGTERM', 'SIGTERM');
    expect(r.service.calls.filter((c) => c === 'destroy')).toHaveLength(1);
    expect(r.proc.exits).toEqual([3]);
  });

  it('exits anyway when a forced destroy does not finish within destroyTimeoutMs', async () => {
    vi.useFakeTimers();
    const r = run(
      (s) => {
        s.closeResult = never();
        s.destroyResult = never();
      },
      { destroyTimeoutMs: 200 },
    );
    await r.started;
    r.proc.emit('SIGTERM', 'SIGTERM');
    r.proc.emit('SIGTERM', 'SIGTERM');
    await vi.advanceTimersByTimeAsync(200);
    expect(await r.proc.exited).toBe(1);
    expect(line(r.lines, 'destroy did not finish in time, exiting anyway')).toMatchObject({
      code: 'RUNTIME_ERR_DESTROY_TIMEOUT',
    });
  });

  it('logs a failing destroy and still exits', async () => {
    const r = run((s) => {
      s.closeResult = never();
      s.destroyResult = Promise.reject(new Error('stuck socket'));
    });
    await r.started;
    r.proc.emit('SIGTERM', 'SIGTERM');
    r.proc.emit('SIGTERM', 'SIGTERM');
    expect(await r.proc.exited).toBe(1);
    expect(line(r.lines, 'destroy failed')).toMatchObject({ level: 'error' });
  });

  it('when close() rejects, logs it, destroys and exits 1', async () => {
    const r = run(
      (s) => {
        s.closeResult = Promise.reject(new Error('close broke'));
      },
      { forcedExitCode: 0 },
    );
    await r.started;
    r.proc.emit('SIGTERM', 'SIGTERM');
    expect(await r.proc.exited).toBe(1);
    expect(line(r.lines, 'close failed, destroying')).toMatchObject({
      code: 'RUNTIME_ERR_CLOSE_FAILED',
    });
    expect(r.service.calls).toEqual(['start', 'beginDrain', 'close', 'destroy']);
  });

  it('keeps draining when beginDrain throws', async () => {
    const r = run((s) => {
      s.beginDrainError = new Error('readiness flag broke');
    });
    await r.started;
    r.proc.emit('SIGTERM', 'SIGTERM');
    expect(await r.proc.exited).toBe(0);
    expect(line(r.lines, 'beginDrain failed')).toMatchObject({ level: 'error' });
    expect(r.service.calls).toEqual(['start', 'beginDrain', 'close']);
  });

  it('drains once started when a signal arrives during start', async () => {
    const start = deferred();
    const r = run((s) => {
      s.startResult = start.promise;
    });
    r.proc.emit('SIGTERM', 'SIGTERM');
    expect(r.service.calls).toEqual(['start']);
    start.resolve();
    await r.started;
    expect(await r.proc.exited).toBe(0);
    expect(r.lines.map((l) => l.msg)).toEqual([
      'signal while starting, draining once started',
      'listening',
      'draining',
      'drained',
    ]);
  });

  it('destroys at once on a second signal during start, and never logs listening', async () => {
    const start = deferred();
    const r = run((s) => {
      s.startResult = start.promise;
    });
    r.proc.emit('SIGTERM', 'SIGTERM');
    r.proc.emit('SIGTERM', 'SIGTERM');
    expect(await r.proc.exited).toBe(1);
    start.resolve();
    await r.started;
    expect(r.lines.some((l) => l.msg === 'listening')).toBe(false);
    expect(r.service.calls).toEqual(['start', 'destroy']);
  });

  it.each<[string, string, unknown]>([
    ['uncaughtException', 'uncaught exception', new TypeError('bug')],
    ['unhandledRejection', 'unhandled rejection', 'a string reason'],
  ])('on %s logs RUNTIME_ERR_UNCAUGHT, destroys and exits 1', async (event, msg, err) => {
    const r = run(undefined, { forcedExitCode: 0 });
    await r.started;
    r.proc.emit(event, err);
    expect(await r.proc.exited).toBe(1);
    expect(line(r.lines, msg)).toMatchObject({ level: 'error', code: 'RUNTIME_ERR_UNCAUGHT' });
    expect(r.service.calls).toEqual(['start', 'destroy']);
  });

  it('bounds the destroy after an uncaught exception to about a second', async () => {
    vi.useFakeTimers();
    const r = run((s) => {
      s.destroyResult = never();
    });
    await r.started;
    r.proc.emit('uncaughtException', new Error('bug'));
    await vi.advanceTimersByTimeAsync(999);
    expect(r.proc.exits).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(await r.proc.exited).toBe(1);
  });

  it('sets exitCode first and calls exit only after stdout flushed', async () => {
    const r = run();
    r.proc.holdFlush = true;
    await r.started;
    r.proc.emit('SIGTERM', 'SIGTERM');
    await vi.waitFor(() => expect(r.proc.pendingFlushes).toHaveLength(1));
    expect(r.proc.exitCode).toBe(0);
    expect(r.proc.exits).toEqual([]);
    r.proc.pendingFlushes[0]!();
    expect(r.proc.exits).toEqual([0]);
  });

  it('exits after a second even if stdout never flushes', async () => {
    vi.useFakeTimers();
    const r = run();
    r.proc.neverFlush = true;
    await r.started;
    r.proc.emit('SIGTERM', 'SIGTERM');
    await vi.advanceTimersByTimeAsync(999);
    expect(r.proc.exits).toEqual([]);
    expect(r.proc.exitCode).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(r.proc.exits).toEqual([0]);
  });
});
