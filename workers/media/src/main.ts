import { hostname } from 'node:os';
import { loadAgent } from '@callgate/agent';
import { collectDefaultMetrics, createLogger, logConfigError, runMain } from '@callgate/runtime';
import { loadMediaConfig } from './config.js';
import { MediaWorker } from './media-worker.js';

// The only file of the media worker that touches `process`: environment, signals (via runMain)
// and the exit code.
const SERVICE = 'media-worker';

let config;
try {
  config = loadMediaConfig(process.env, { workerId: `${hostname()}-${process.pid}` });
} catch (err) {
  // Nothing is bound yet: one line that lists every problem, then a plain exit.
  logConfigError(createLogger({ fields: { service: SERVICE } }), err);
  process.exit(1);
}

// Every line of the process carries the same `service` and `workerId`, runMain's included.
const logger = createLogger({
  level: config.logLevel,
  fields: { service: SERVICE, workerId: config.workerId },
});
const { agent: agentName, agentModule } = config;
const worker = new MediaWorker({
  config,
  logger,
  // Loaded in start(): a bad AGENT_MODULE fails the start with its code and runMain exits 1.
  agent: () =>
    loadAgent(agentModule === undefined ? { name: agentName } : { modulePath: agentModule }),
});
collectDefaultMetrics({ register: worker.registry });

// The accept grace (ACCEPT_GRACE_MS) is the worker's own: its StreamServer keeps accepting after
// beginDrain() and its close() waits for the grace, inside runMain's drain deadline.
await runMain({
  name: SERVICE,
  service: worker,
  logger,
  drainTimeoutMs: config.drainTimeoutMs,
  // Calls cut at the drain deadline were closed with 1012 on purpose; that is a normal exit.
  forcedExitCode: 0,
  describe: () => ({
    port: worker.address().port,
    host: config.host,
    workerId: config.workerId,
    agent: agentModule ?? agentName,
    maxCalls: config.maxCalls,
    callTokenCheck: config.callTokenSecret !== undefined,
    acceptGraceMs: config.acceptGraceMs,
    recordingsDir: config.recordingsDir,
  }),
});
