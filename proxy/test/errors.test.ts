import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, answerStatus, hasRetryAfter, outcomeOf } from '../src/errors.js';
import { rawErrorResponse } from '../src/responses.js';

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const configSource = readFileSync(new URL('../src/config.ts', import.meta.url), 'utf8');

/** Rows of the README's error table: code → status cell. */
function documentedCodes(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const m of readme.matchAll(/^\| `(PROXY_ERR_[A-Z_]+)`\s*\| ([^|]+) \|/gm))
    rows.set(m[1]!, m[2]!.trim());
  return rows;
}

describe('error catalogue', () => {
  it.each(ERROR_CODES)('documents %s with its status in proxy/README.md', (code) => {
    const status = answerStatus(code);
    expect(documentedCodes().get(code)).toBe(status === undefined ? '—' : String(status));
  });

  it('documents no code that does not exist', () => {
    expect([...documentedCodes().keys()].sort()).toEqual([...ERROR_CODES].sort());
  });

  it.each(ERROR_CODES.filter((c) => answerStatus(c) !== undefined))(
    'answers %s as a complete response',
    (code) => {
      const text = rawErrorResponse(code, 'req-1');
      const [head, body] = text.split('\r\n\r\n') as [string, string];
      expect(head).toMatch(new RegExp(`^HTTP/1\\.1 ${answerStatus(code)} `));
      expect(head).toContain('Connection: close');
      expect(head).toContain(`Content-Length: ${Buffer.byteLength(body)}`);
      expect(head.includes('Retry-After: 5')).toBe(hasRetryAfter(code));
      expect(body).toContain(code);
    },
  );

  it('derives metric outcomes from codes', () => {
    expect(outcomeOf('PROXY_ERR_NO_BACKEND')).toBe('no_backend');
  });
});

describe('configuration', () => {
  const names = [
    ...configSource.matchAll(
      /\b(?:string|optionalString|int|port|bool|oneOf|list|optionalUrl|backendList)\(\s*(?:r,\s*)?'([A-Z][A-Z0-9_]*)'/g,
    ),
  ].map((m) => m[1]!);

  it('reads the variables the README documents', () => {
    expect(names.length).toBeGreaterThan(20);
  });

  it.each([...new Set(names)])('documents %s in proxy/README.md', (name) => {
    expect(readme).toMatch(new RegExp(`^\\| \`${name}\` \\|`, 'm'));
  });
});
