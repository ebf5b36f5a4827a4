export * from './spawn.js';
export * from './signals.js';
export * from './affinity.js';
