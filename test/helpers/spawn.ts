import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

/** Repository root (test/helpers/../..). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Entry points of the built processes. `npm test` builds before e2e runs. */
export const entryPoints = {
  proxy: 'proxy/dist/main.js',
  media: 'workers/media/dist/main.js',
  testAgent: 'workers/test-agent/dist/main.js',
  sim: 'packages/simulator/dist/cli.js',
} as const;

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export interface SpawnedProcess {
  readonly child: ChildProcess;
  readonly name: string;
  /** The `listening` log line ({ msg: 'listening', port, adminPort?, ... }). */
  readonly listening: LogLine;
  readonly port: number;
  /** Every JSON log line seen so far (stdout), in order. */
  readonly logs: LogLine[];
  /** Non-JSON output (stderr and stray stdout), for failure messages. */
  readonly rawOutput: string[];
  /** Resolves with the first log line matching `pred` (already seen or future). */
  waitForLog(pred: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  /** Sends a signal. */
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL if still running, and wait for exit. Safe to call twice. */
  kill(): Promise<void>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** Extra argv after the entry point. */
  args?: string[];
  /** How long to wait for the listening line. */
  startTimeoutMs?: number;
}

/**
 * Spawns a built callgate process with PORT=0 (unless given), waits for its
 * `{"msg":"listening","port":N}` line and returns a handle. Register `kill()` in cleanup.
 */
export async function spawnProcess(
  name: string,
  entry: string,
  options: SpawnOptions = {},
): Promise<SpawnedProcess> {
  const child = spawn(process.execPath, [entry, ...(options.args ?? [])], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', PORT: '0', LOG_LEVEL: 'debug', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  const rawOutput: string[] = [];
  const waiters = new Set<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, sig) => resolve(code ?? sig ?? 'unknown'));
  });
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      rawOutput.push(text);
      return;
    }
    logs.push(line);
    for (const w of waiters) {
      if (w.pred(line)) {
        waiters.delete(w);
        w.resolve(line);
      }
    }
  });
  createInterface({ input: child.stderr! }).on('line', (text) => rawOutput.push(text));

  const waitForLog = (pred: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> => {
    const seen = logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const w = {
        pred,
        resolve: (l: LogLine) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(
          new Error(
            `${name}: no matching log line within ${timeoutMs} ms\n--- logs ---\n` +
              [...logs.map((l) => JSON.stringify(l)), ...rawOutput].slice(-40).join('\n'),
          ),
        );
      }, timeoutMs);
      waiters.add(w);
      void exited.then(() => {
        if (!waiters.has(w)) return;
        waiters.delete(w);
        clearTimeout(timer);
        reject(
          new Error(
            `${name} exited before a matching log line\n--- output ---\n` +
              [...logs.map((l) => JSON.stringify(l)), ...rawOutput].slice(-40).join('\n'),
          ),
        );
      });
    });
  };

  let listening: LogLine;
  try {
    listening = await waitForLog((l) => l.msg === 'listening', options.startTimeoutMs ?? 15_000);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    throw err;
  }
  return {
    child,
    name,
    listening,
    port: Number(listening.port),
    logs,
    rawOutput,
    waitForLog,
    exited,
    signal: (sig) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig);
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Waits for an event with a deadline, so a broken test fails with a message instead of hanging. */
export async function onceWithin<T extends unknown[]>(
  emitter: NodeJS.EventEmitter,
  event: string,
  timeoutMs: number,
): Promise<T> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  try {
    return (await once(emitter, event, { signal: ac.signal })) as T;
  } catch (err) {
    if (ac.signal.aborted)
      throw new Error(`no '${event}' event within ${timeoutMs} ms`, { cause: err });
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
