export * from './edge.js';
export * from './scripted-backend.js';
export * from './sockets.js';
