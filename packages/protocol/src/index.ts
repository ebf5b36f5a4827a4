export * from './errors.js';
export * from './close-code.js';
export * from './base64.js';
export { MAX_MESSAGE_BYTES, messageText, parseJsonText, type RawMessage } from './fields.js';
export * from './twilio.js';
export * from './sanspbx.js';
export * from './detect.js';
export * from './test-agent.js';
