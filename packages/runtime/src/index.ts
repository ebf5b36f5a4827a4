export * from './errors.js';
export * from './logger.js';
export * from './config.js';
export * from './env-schema.js';
export * from './service.js';
export * from './metrics.js';
export * from './run-main.js';
export * from './stream-server.js';
export { closeOrTerminate } from './close-or-terminate.js';
export {
  answerProbe,
  REFUSAL_LINGER_MS,
  RETRY_AFTER_SECONDS,
  sendJsonError,
  writeHttpError,
  errorBody,
  httpErrorResponse,
} from './http-answers.js';
export {
  checkHost,
  checkWebSocketHandshake,
  headerTokens,
  type HandshakeRequest,
  type HandshakeResult,
} from './handshake.js';
export * from './trace.js';
export * from './resume-vouch.js';
export * from './signed-token.js';
