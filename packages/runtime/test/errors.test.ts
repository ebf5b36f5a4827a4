import { describe, expect, it } from 'vitest';
import { RUNTIME_ERRORS, closeOf, statusOf, type ErrorCatalogue } from '../src/index.js';

const CATALOGUE = {
  AREA_ERR_BUSY: { status: 503 },
  AREA_ERR_SLOW: { close: 1013 },
  AREA_ERR_BOTH: { status: 500, close: 1011 },
  AREA_ERR_QUIET: {},
} as const satisfies ErrorCatalogue;

describe('statusOf and closeOf', () => {
  it('read the status and close code of a code from its catalogue', () => {
    expect(statusOf(CATALOGUE, 'AREA_ERR_BUSY')).toBe(503);
    expect(statusOf(CATALOGUE, 'AREA_ERR_BOTH')).toBe(500);
    expect(closeOf(CATALOGUE, 'AREA_ERR_SLOW')).toBe(1013);
    expect(closeOf(CATALOGUE, 'AREA_ERR_BOTH')).toBe(1011);
    expect(statusOf(RUNTIME_ERRORS, 'RUNTIME_ERR_DRAINING')).toBe(503);
    expect(closeOf(RUNTIME_ERRORS, 'RUNTIME_ERR_SLOW_READER')).toBe(1013);
  });

  it('accept only codes whose entry has one (checked by the compiler, never run)', () => {
    const misuses = (): void => {
      // @ts-expect-error AREA_ERR_SLOW is answered with a close code, not an HTTP status.
      statusOf(CATALOGUE, 'AREA_ERR_SLOW');
      // @ts-expect-error AREA_ERR_QUIET is logged only.
      closeOf(CATALOGUE, 'AREA_ERR_QUIET');
      // @ts-expect-error not a code of the catalogue.
      statusOf(CATALOGUE, 'AREA_ERR_NONE');
    };
    expect(misuses).toBeTypeOf('function');
  });
});
