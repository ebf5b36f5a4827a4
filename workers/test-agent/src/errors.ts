import { TestAgentCloseCode } from '@callgate/protocol';
import { CallgateError, type ErrorCatalogue } from '@callgate/runtime';

/**
 * Every error the test-agent worker logs, counts in `test_agent_errors_total{code}`, answers or
 * closes a socket with. Call sites name the code only; its status or close code comes from here.
 */
export const TEST_AGENT_ERRORS = {
  /** No session token in the upgrade (`?token=`). */
  TEST_AGENT_ERR_TOKEN_MISSING: { status: 401 },
  /** The token is not `v1.<expiry>.<signature>`. */
  TEST_AGENT_ERR_TOKEN_MALFORMED: { status: 401 },
  /** The token's expiry has passed. */
  TEST_AGENT_ERR_TOKEN_EXPIRED: { status: 401 },
  /** The signature does not match (another secret, or a token of another session). */
  TEST_AGENT_ERR_TOKEN_INVALID: { status: 401 },
  /** `POST /test-agent/sessions` without the right `Authorization: Bearer` key. */
  TEST_AGENT_ERR_UNAUTHORIZED: { status: 401 },
  /** The upgrade path is `/test-agent/<segment>` but the segment is not a well-formed session id. */
  TEST_AGENT_ERR_BAD_SESSION_ID: { status: 404 },
  /** A second socket for a session that is live (or opening). */
  TEST_AGENT_ERR_SESSION_BUSY: { status: 409 },
  /** A socket for a session that has already ended on this worker. */
  TEST_AGENT_ERR_SESSION_ENDED: { status: 410 },
  /** Too many sessions created by one client in the last minute. */
  TEST_AGENT_ERR_RATE_LIMITED: { status: 429 },
  /** Every session slot of this worker is taken. */
  TEST_AGENT_ERR_AT_CAPACITY: { status: 503 },
  /** The worker is draining and takes no new sessions. */
  TEST_AGENT_ERR_DRAINING: { status: 503 },
  /** No page, asset or API under that path (also an upgrade outside `/test-agent/<id>`). */
  TEST_AGENT_ERR_NOT_FOUND: { status: 404 },
  /** A method the path does not take. */
  TEST_AGENT_ERR_METHOD_NOT_ALLOWED: { status: 405 },
  /** A session request with a body over 1 KiB (the endpoint takes none). */
  TEST_AGENT_ERR_BODY_TOO_LARGE: { status: 413 },
  /** More malformed messages than MAX_BAD_MESSAGES. */
  TEST_AGENT_ERR_TOO_MANY_BAD_MESSAGES: { close: TestAgentCloseCode.policyViolation },
  /** Browser audio more than 5 s ahead of real time (a flood); dropped, counted as malformed. */
  TEST_AGENT_ERR_TOO_FAST: {},
  /** The session reached SESSION_MAX_DURATION_SECONDS. */
  TEST_AGENT_ERR_MAX_DURATION: { close: TestAgentCloseCode.maxDuration },
  /**
   * Closing a session's socket threw (a close code `ws` refuses, or the transport broke while the
   * session was ending): a worker bug; the socket is terminated instead.
   */
  TEST_AGENT_ERR_CLOSE_FAILED: {},
  /** TEST_AGENT_SECRET is unset: a random per-process secret is used (a warning at start). */
  TEST_AGENT_ERR_NO_SECRET: {},
  /** The public folder of the page could not be read at start. */
  TEST_AGENT_ERR_STATIC: {},
} as const satisfies ErrorCatalogue;

export type TestAgentErrorCode = keyof typeof TEST_AGENT_ERRORS;

export class TestAgentError extends CallgateError {
  declare readonly code: TestAgentErrorCode;
  constructor(code: TestAgentErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
