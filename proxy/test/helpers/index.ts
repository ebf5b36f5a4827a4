export * from './proxy.js';
export * from './scripted-backend.js';
export * from './sockets.js';
