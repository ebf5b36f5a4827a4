import { errorCode } from './errors.js';
import type { Logger } from './logger.js';
import type { DrainableService } from './service.js';

/**
 * The slice of `process` that `runMain` uses. The real `process` satisfies it; unit tests pass a
 * fake EventEmitter so signals, uncaught errors and exits can be driven without ending the runner.
 */
export interface MainProcess {
  on(event: 'SIGTERM' | 'SIGINT', listener: (signal: NodeJS.Signals) => void): unknown;
  on(event: 'uncaughtException', listener: (err: Error) => void): unknown;
  on(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown;
  exit(code?: number): void;
  exitCode?: number | string | undefined;
  readonly stdout: {
    write(chunk: string, callback?: (err?: Error | null) => void): unknown;
    on?(event: 'error', listener: (err: Error) => void): unknown;
  };
}

export interface RunMainOptions {
  /** 'proxy' | 'media-worker' | 'test-agent-worker'; the `name` field of the start/drain lines. */
  name: string;
  service: DrainableService;
  logger: Logger;
  /** Bound on the whole drain, counted from the first signal. */
  drainTimeoutMs: number;
  /** Exit code when the drain deadline or a second signal forced `destroy()`; default 1. */
  forcedExitCode?: number;
  /** How long a forced `destroy()` may take before the process exits anyway; default 5000. */
  destroyTimeoutMs?: number;
  /** Fields for the listening line; must include `port`. */
  describe(): Record<string, unknown>;
  /** Injectable for tests; default the real `process`. */
  process?: MainProcess;
}

const DEFAULT_FORCED_EXIT_CODE = 1;
const DEFAULT_DESTROY_TIMEOUT_MS = 5000;
// An uncaught error leaves the process in an unknown state: release ports quickly, then go.
const UNCAUGHT_DESTROY_TIMEOUT_MS = 1000;
// Bounds the wait for stdout to accept the last log lines (a closed pipe never calls back).
const FLUSH_TIMEOUT_MS = 1000;

type Phase = 'starting' | 'running' | 'draining' | 'destroying' | 'exiting';

/**
 * Starts `service`, logs `{"msg":"listening", ...describe()}` and owns the process's signals:
 * SIGTERM/SIGINT drains (`beginDrain()`, then `close()`, bounded by `drainTimeoutMs`; a service
 * that keeps accepting for a while after `beginDrain()` does so inside its own `close()`) and
 * exits 0; at the deadline, or on a second signal, it `destroy()`s and exits `forcedExitCode`. A start failure, an uncaught exception or an unhandled rejection logs one error
 * line and exits 1. Exits set `process.exitCode` and call `process.exit` once stdout has taken the
 * last line.
 *
 * Resolves once the service is listening (or once a failed start has been handled); never rejects.
 * This is the only place in callgate that installs signal handlers or exits, so each `main.ts`
 * stays a few lines of config parsing.
 */
export function runMain(options: RunMainOptions): Promise<void> {
  return new MainRunner(options).run();
}

class MainRunner {
  readonly #options: RunMainOptions;
  readonly #proc: MainProcess;
  readonly #log: Logger;
  readonly #forcedExitCode: number;
  readonly #timers = new Set<NodeJS.Timeout>();
  #phase: Phase = 'starting';
  #signalWhileStarting: NodeJS.Signals | undefined;
  #destroying: Promise<void> | undefined;

  constructor(options: RunMainOptions) {
    this.#options = options;
    this.#proc = options.process ?? process;
    this.#log = options.logger;
    this.#forcedExitCode = options.forcedExitCode ?? DEFAULT_FORCED_EXIT_CODE;
  }

  async run(): Promise<void> {
    const proc = this.#proc;
    proc.on('SIGTERM', () => this.#onSignal('SIGTERM'));
    proc.on('SIGINT', () => this.#onSignal('SIGINT'));
    proc.on('uncaughtException', (err) => this.#onUncaught('uncaught exception', err));
    proc.on('unhandledRejection', (reason) => this.#onUncaught('unhandled rejection', reason));
    // A closed stdout (the log collector went away) emits EPIPE on every later write. Unhandled,
    // each one is an uncaught exception whose log line fails again: a busy loop that starves the
    // signal handlers. Losing log lines is better than losing calls, so swallow it.
    proc.stdout.on?.('error', () => {});

    let fields: Record<string, unknown>;
    try {
      await this.#options.service.start();
      fields = this.#options.describe();
    } catch (err) {
      // A second signal or an uncaught error during start already owns the exit.
      if (this.#phase !== 'starting') return;
      this.#phase = 'destroying';
      this.#safeLog('error', 'start failed', {
        name: this.#options.name,
        code: errorCode(err, 'RUNTIME_ERR_START_FAILED'),
        err,
      });
      await this.#destroyWithin(UNCAUGHT_DESTROY_TIMEOUT_MS);
      this.#exit(1);
      return;
    }
    if (this.#phase !== 'starting') return;
    this.#phase = 'running';
    this.#log.info('listening', fields);
    if (this.#signalWhileStarting) void this.#drain(this.#signalWhileStarting);
  }

  #onSignal(signal: NodeJS.Signals): void {
    switch (this.#phase) {
      case 'starting':
        // Draining a half-started service is undefined; drain as soon as it is up.
        if (this.#signalWhileStarting === undefined) {
          this.#signalWhileStarting = signal;
          this.#log.info('signal while starting, draining once started', { signal });
        } else {
          this.#forceNow(signal);
        }
        return;
      case 'running':
        void this.#drain(signal);
        return;
      case 'draining':
        this.#forceNow(signal);
        return;
      case 'destroying':
      case 'exiting':
        this.#log.debug('signal ignored, already exiting', { signal });
        return;
    }
  }

  async #drain(signal: NodeJS.Signals): Promise<void> {
    this.#phase = 'draining';
    const { drainTimeoutMs, service } = this.#options;
    this.#log.info('draining', { name: this.#options.name, signal, drainTimeoutMs });
    this.#timer(drainTimeoutMs, () => this.#onDeadline());
    try {
      service.beginDrain();
    } catch (err) {
      // Not fatal: close() still drains; readiness may just flip later.
      this.#log.error('beginDrain failed', {
        code: errorCode(err, 'RUNTIME_ERR_CLOSE_FAILED'),
        err,
      });
    }
    try {
      await service.close();
    } catch (err) {
      if (this.#phase !== 'draining') return;
      this.#phase = 'destroying';
      this.#log.error('close failed, destroying', {
        code: errorCode(err, 'RUNTIME_ERR_CLOSE_FAILED'),
        err,
      });
      await this.#destroyWithin(this.#destroyTimeoutMs());
      this.#exit(1);
      return;
    }
    if (this.#phase !== 'draining') return;
    this.#log.info('drained');
    this.#exit(0);
  }

  #onDeadline(): void {
    if (this.#phase !== 'draining') return;
    this.#log.warn('drain deadline reached, destroying', {
      code: 'RUNTIME_ERR_DRAIN_TIMEOUT',
      drainTimeoutMs: this.#options.drainTimeoutMs,
    });
    void this.#destroyAndExit(this.#forcedExitCode);
  }

  #forceNow(signal: NodeJS.Signals): void {
    this.#log.warn('second signal, destroying now', { signal });
    void this.#destroyAndExit(this.#forcedExitCode);
  }

  async #destroyAndExit(code: number): Promise<void> {
    this.#phase = 'destroying';
    await this.#destroyWithin(this.#destroyTimeoutMs());
    this.#exit(code);
  }

  #onUncaught(msg: string, err: unknown): void {
    // Only the first one is reported: later ones are usually its echoes.
    if (this.#phase === 'destroying' || this.#phase === 'exiting') return;
    this.#safeLog('error', msg, {
      code: 'RUNTIME_ERR_UNCAUGHT',
      err,
      stack: err instanceof Error ? err.stack : undefined,
    });
    this.#phase = 'destroying';
    void this.#destroyWithin(UNCAUGHT_DESTROY_TIMEOUT_MS).then(() => this.#exit(1));
  }

  #destroyTimeoutMs(): number {
    return this.#options.destroyTimeoutMs ?? DEFAULT_DESTROY_TIMEOUT_MS;
  }

  /** Calls `service.destroy()` once; resolves when it settles or after `ms`, whichever is first. */
  #destroyWithin(ms: number): Promise<void> {
    this.#destroying ??= Promise.resolve()
      .then(() => this.#options.service.destroy())
      .catch((err: unknown) => {
        this.#safeLog('error', 'destroy failed', {
          code: errorCode(err, 'RUNTIME_ERR_CLOSE_FAILED'),
          err,
        });
      });
    const destroying = this.#destroying;
    return new Promise<void>((resolve) => {
      const timer = this.#timer(ms, () => {
        this.#safeLog('warn', 'destroy did not finish in time, exiting anyway', {
          code: 'RUNTIME_ERR_DESTROY_TIMEOUT',
          timeoutMs: ms,
        });
        resolve();
      });
      void destroying.then(() => {
        this.#clearTimer(timer);
        resolve();
      });
    });
  }

  #exit(code: number): void {
    if (this.#phase === 'exiting') return;
    this.#phase = 'exiting';
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    const proc = this.#proc;
    proc.exitCode = code;
    let exited = false;
    const finish = (): void => {
      if (exited) return;
      exited = true;
      clearTimeout(flushTimer);
      proc.exit(code);
    };
    // An empty write calls back once every earlier line has been handed to the OS.
    const flushTimer = setTimeout(finish, FLUSH_TIMEOUT_MS);
    try {
      proc.stdout.write('', () => finish());
    } catch {
      finish();
    }
  }

  #timer(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
    return t;
  }

  #clearTimer(t: NodeJS.Timeout): void {
    clearTimeout(t);
    this.#timers.delete(t);
  }

  /** Logging must not throw inside the last-resort handlers (stdout may be a broken pipe). */
  #safeLog(level: 'warn' | 'error', msg: string, fields: Record<string, unknown>): void {
    try {
      this.#log[level](msg, fields);
    } catch {
      // Nothing left to report to.
    }
  }
}
