import {
  collectDefaultMetrics,
  createLogger,
  logConfigError,
  createRegistry,
  runMain,
} from '@callgate/runtime';
import { loadProxyConfig, type ProxyConfig } from './config.js';
import { ProxyServer } from './proxy-server.js';

// The only file that touches `process`: configuration in, signals and exit codes via runMain.
let config: Readonly<ProxyConfig>;
try {
  config = loadProxyConfig(process.env);
} catch (err) {
  // Nothing is bound yet: one line that lists every problem, then a plain exit.
  logConfigError(createLogger({ fields: { service: 'proxy' } }), err);
  process.exit(1);
}

const logger = createLogger({ level: config.logLevel, fields: { service: 'proxy' } });
const registry = createRegistry();
collectDefaultMetrics({ register: registry });
const edge = new ProxyServer({ config, logger, registry });

await runMain({
  name: 'proxy',
  service: edge,
  logger,
  drainTimeoutMs: config.drainTimeoutMs,
  // A drain that had to cut live tunnels is a failure an operator should see.
  forcedExitCode: 1,
  describe: () => ({ port: edge.address().port, adminPort: edge.adminAddress().port }),
});
