import { loadTestAgentConfig } from '../src/config.js';
import type { TestAgentWorkerConfig } from '../src/test-agent-worker.js';

export const SECRET = 'a-test-secret-of-32-characters!!';

/**
 * The worker's defaults as config.ts gives them, on a free port, with the shared test secret and
 * no accept grace (a drained worker refuses at once unless a test asks otherwise).
 */
export function testConfig(overrides: Partial<TestAgentWorkerConfig> = {}): TestAgentWorkerConfig {
  const defaults = loadTestAgentConfig({ TEST_AGENT_SECRET: SECRET, ACCEPT_GRACE_MS: '0' });
  return { ...defaults, host: '127.0.0.1', port: 0, ...overrides };
}
