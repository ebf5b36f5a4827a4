export * from './errors.js';
export * from './logger.js';
export * from './config.js';
export * from './service.js';
export * from './metrics.js';
