export * from './errors.js';
export * from './logger.js';
export * from './config.js';
export * from './service.js';
export * from './metrics.js';
export * from './run-main.js';
export * from './stream-server.js';
export type {
  StreamServerOptions,
  StreamSession,
  UpgradeVerdict,
} from './stream-server-options.js';
export { writeHttpError } from './write-http-error.js';
export { sendJsonError } from './http-endpoints.js';
export * from './trace.js';
export * from './resume-vouch.js';
export * from './signed-token.js';
