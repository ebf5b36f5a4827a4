import { hostname } from 'node:os';
import { loadAgent } from '@callgate/agent';
import { collectDefaultMetrics, createLogger, errorCode, runMain } from '@callgate/runtime';
import { loadMediaConfig } from './config.js';
import { MediaWorker } from './media-worker.js';

// The only file of the media worker that touches `process`: environment, signals (via runMain)
// and the exit code.
let config;
try {
  config = loadMediaConfig(process.env, { workerId: `${hostname()}-${process.pid}` });
} catch (err) {
  createLogger({ fields: { service: 'media-worker' } }).error('invalid configuration', {
    code: errorCode(err, 'CONFIG_ERR_INVALID'),
    err,
  });
  process.exit(1);
}

const logger = createLogger({
  level: config.logLevel,
  fields: { service: 'media-worker', workerId: config.workerId },
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

await runMain({
  name: 'media-worker',
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
    recordingsDir: config.recordingsDir,
  }),
});
