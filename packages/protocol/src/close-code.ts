/**
 * WebSocket close codes used across callgate, named after the IANA "WebSocket Close Code Number"
 * registry (RFC 6455 §7.4). One table for every area; an area that needs its own 4xxx codes
 * spreads this table into its own (`{ ...CloseCode, replaced: 4409 }`).
 */
export const CloseCode = {
  /** The conversation ended as intended (a hangup on either side). */
  normal: 1000,
  /** The endpoint is going away for good (the worker shuts down). */
  goingAway: 1001,
  /** A message of a kind the endpoint does not accept (binary where only JSON text is spoken). */
  unsupportedData: 1003,
  /** The peer broke a rule (bad token, too many malformed messages). */
  policyViolation: 1008,
  /** A message larger than the endpoint accepts (ws sends it itself past `maxPayload`). */
  messageTooBig: 1009,
  /** The server or the agent failed. */
  internalError: 1011,
  /** The server is restarting (its drain deadline passed); reconnect. */
  serviceRestart: 1012,
  /** Overloaded, or the peer reads too slowly; try again later. */
  tryAgainLater: 1013,
} as const;

export type CloseCodeName = keyof typeof CloseCode;
export type CloseCodeValue = (typeof CloseCode)[CloseCodeName];
