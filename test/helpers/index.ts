export * from './spawn.js';
