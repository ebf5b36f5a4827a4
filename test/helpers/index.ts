export * from './spawn.js';
export * from './signals.js';
