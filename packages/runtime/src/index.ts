export * from './errors.js';
export * from './logger.js';
export * from './config.js';
export * from './service.js';
export * from './metrics.js';
export * from './run-main.js';
export * from './stream-server.js';
export * from './trace.js';
