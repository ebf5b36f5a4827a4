import { CallgateError } from '@callgate/runtime';

export type TestAgentErrorCode =
  /** No session token in the upgrade (`?token=`): 401. */
  | 'TEST_AGENT_ERR_TOKEN_MISSING'
  /** The token is not `v1.<expiry>.<signature>`: 401. */
  | 'TEST_AGENT_ERR_TOKEN_MALFORMED'
  /** The token's expiry has passed: 401. */
  | 'TEST_AGENT_ERR_TOKEN_EXPIRED'
  /** The signature does not match (another secret, or a token of another session): 401. */
  | 'TEST_AGENT_ERR_TOKEN_INVALID'
  /** `POST /test-agent/sessions` without the right `Authorization: Bearer` key: 401. */
  | 'TEST_AGENT_ERR_UNAUTHORIZED'
  /** The upgrade path is not `/test-agent/<sessionId>` with a well-formed id: 404. */
  | 'TEST_AGENT_ERR_BAD_SESSION_ID'
  /** A second socket for a session that is live: 409. */
  | 'TEST_AGENT_ERR_SESSION_BUSY'
  /** A socket for a session that has already ended on this worker: 410. */
  | 'TEST_AGENT_ERR_SESSION_ENDED'
  /** Too many sessions created in the last minute: 429. */
  | 'TEST_AGENT_ERR_RATE_LIMITED'
  /** Every session slot of this worker is taken: 503. */
  | 'TEST_AGENT_ERR_AT_CAPACITY'
  /** The worker is draining and takes no new sessions: 503. */
  | 'TEST_AGENT_ERR_DRAINING'
  /** No page, asset or API under that path: 404. */
  | 'TEST_AGENT_ERR_NOT_FOUND'
  /** A method the path does not take: 405. */
  | 'TEST_AGENT_ERR_METHOD_NOT_ALLOWED'
  /** A request body on an endpoint that takes none, or too large: 413. */
  | 'TEST_AGENT_ERR_BODY_TOO_LARGE'
  /** More malformed messages than the limit: closed with 1008. */
  | 'TEST_AGENT_ERR_TOO_MANY_BAD_MESSAGES'
  /** Browser audio more than 5 s ahead of real time (a flood); dropped, counted as malformed. */
  | 'TEST_AGENT_ERR_TOO_FAST'
  /** The session reached SESSION_MAX_DURATION_SECONDS: closed with 4008. */
  | 'TEST_AGENT_ERR_MAX_DURATION'
  /**
   * Closing a session's socket threw (a close code `ws` refuses, or the transport broke while the
   * session was ending): a worker bug; the socket is terminated instead.
   */
  | 'TEST_AGENT_ERR_CLOSE_FAILED'
  /** TEST_AGENT_SECRET is unset: a random per-process secret is used (a warning at start). */
  | 'TEST_AGENT_ERR_NO_SECRET'
  /** The public folder of the page could not be read at start. */
  | 'TEST_AGENT_ERR_STATIC';

/** Every error the test-agent worker logs, counts in `test_agent_errors_total{code}`, or answers. */
export class TestAgentError extends CallgateError {
  declare readonly code: TestAgentErrorCode;
  constructor(code: TestAgentErrorCode, message: string, options?: ErrorOptions) {
    super(code, message, options);
  }
}
