import { describe, expect, it } from 'vitest';
import { CloseCode } from '../src/index.js';

describe('CloseCode', () => {
  it('holds the IANA registry codes callgate uses, by their registry names', () => {
    expect(CloseCode).toEqual({
      normal: 1000,
      goingAway: 1001,
      unsupportedData: 1003,
      policyViolation: 1008,
      messageTooBig: 1009,
      internalError: 1011,
      serviceRestart: 1012,
      tryAgainLater: 1013,
    });
  });
});
