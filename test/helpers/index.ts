export * from './spawn.js';
export * from './signals.js';
export * from './tcp-forwarder.js';
export * from './affinity.js';
export * from './chromium.js';
