import { hostname } from 'node:os';
import {
  collectDefaultMetrics,
  createLogger,
  logConfigError,
  createRegistry,
  runMain,
} from '@callgate/runtime';
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
const registry = createRegistry();
collectDefaultMetrics({ register: registry });
const worker = new TestAgentWorker({
  host: config.host,
  port: config.port,
  logger,
  registry,
  secret: config.secret,
  apiKey: config.apiKey,
  agentOptions:
    config.agentModule === undefined ? { name: config.agent } : { modulePath: config.agentModule },
  sampleRate: config.sampleRate,
  maxSessions: config.maxSessions,
  sessionMaxDurationSeconds: config.sessionMaxDurationSeconds,
  sessionTokenTtlSeconds: config.sessionTokenTtlSeconds,
  sessionCreateRatePerMinute: config.sessionCreateRatePerMinute,
  maxBadMessages: config.maxBadMessages,
  playbackLeadMs: config.playbackLeadMs,
  heartbeatIntervalMs: config.heartbeatIntervalMs,
  maxBufferedBytes: config.maxBufferedBytes,
  acceptGraceMs: config.acceptGraceMs,
});

await runMain({
  name: SERVICE,
  service: worker,
  logger,
  drainTimeoutMs: config.drainTimeoutMs,
  // Sessions cut at the deadline are closed with 1012 on purpose: not a failure of the worker.
  forcedExitCode: 0,
  // No accept grace here: the worker's StreamServer keeps accepting for ACCEPT_GRACE_MS after
  // beginDrain() and its close() waits for that grace itself.
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
