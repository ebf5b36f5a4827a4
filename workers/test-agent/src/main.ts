import { hostname } from 'node:os';
import { loadAgent } from '@callgate/agent';
import { collectDefaultMetrics, createLogger, logConfigError, runMain } from '@callgate/runtime';
import { loadTestAgentConfig } from './config.js';
import { TestAgentWorker } from './test-agent-worker.js';

// The only file of the worker that touches `process`: config, build, run.
const SERVICE = 'test-agent-worker';

let config: ReturnType<typeof loadTestAgentConfig>;
try {
  config = loadTestAgentConfig(process.env, { workerId: `${hostname()}-${process.pid}` });
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
if (config.isSecretEphemeral) {
  logger.warn(
    'TEST_AGENT_SECRET is not set: using a random secret for this process only. Tokens issued ' +
      'by one worker will not open sessions on another, and die with a restart; set it in production.',
    { code: 'TEST_AGENT_ERR_NO_SECRET' },
  );
}
const { agent: agentName, agentModule } = config;
const worker = new TestAgentWorker({
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
  // Sessions cut at the deadline are closed with 1012 on purpose: not a failure of the worker.
  forcedExitCode: 0,
  describe: () => ({
    port: worker.address().port,
    host: config.host,
    workerId: config.workerId,
    agent: worker.agentName,
    sampleRate: worker.sampleRate,
    apiKeyRequired: config.apiKey !== undefined,
    acceptGraceMs: config.acceptGraceMs,
  }),
});
