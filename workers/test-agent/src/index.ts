export { TestAgentWorker, SESSIONS_PATH, TEST_AGENT_PREFIX } from './test-agent-worker.js';
export type {
  CreatedSession,
  TestAgentWorkerConfig,
  TestAgentWorkerOptions,
} from './test-agent-worker.js';
export { TestAgentSession } from './test-agent-session.js';
export type { SessionServer, TestAgentSessionOptions } from './test-agent-session.js';
export { SessionTokens, createSessionId, isSessionId, MIN_SECRET_BYTES } from './session-token.js';
export type { IssuedToken, SessionTokensOptions, TokenCheck } from './session-token.js';
export { StaticFiles, DEFAULT_PUBLIC_DIR } from './static-files.js';
export { loadTestAgentConfig, TEST_AGENT_ENV } from './config.js';
export type { TestAgentConfig, TestAgentConfigDefaults } from './config.js';
export { createTestAgentMetrics } from './metrics.js';
export type { TestAgentMetrics } from './metrics.js';
export { TestAgentError } from './errors.js';
export type { TestAgentErrorCode } from './errors.js';
