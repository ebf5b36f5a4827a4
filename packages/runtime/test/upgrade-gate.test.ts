import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { handshakeProblem } from '../src/upgrade-gate.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const GOOD: IncomingHttpHeaders = {
  upgrade: 'websocket',
  'sec-websocket-key': KEY,
  'sec-websocket-version': '13',
};

describe('handshakeProblem', () => {
  it.each([
    { name: 'a valid handshake', method: 'GET', headers: GOOD, problem: undefined },
    {
      name: 'Upgrade in any case',
      method: 'GET',
      headers: { ...GOOD, upgrade: 'WebSocket' },
      problem: undefined,
    },
    {
      name: 'version 8',
      method: 'GET',
      headers: { ...GOOD, 'sec-websocket-version': '8' },
      problem: undefined,
    },
    {
      name: 'POST',
      method: 'POST',
      headers: GOOD,
      problem: 'WebSocket upgrades use GET, got POST',
    },
    {
      name: 'no method',
      method: undefined,
      headers: GOOD,
      problem: 'WebSocket upgrades use GET, got none',
    },
    {
      name: 'Upgrade: h2c',
      method: 'GET',
      headers: { ...GOOD, upgrade: 'h2c' },
      problem: 'Upgrade must be websocket',
    },
    {
      name: 'no key',
      method: 'GET',
      headers: { ...GOOD, 'sec-websocket-key': undefined },
      problem: 'missing or invalid Sec-WebSocket-Key',
    },
    {
      name: 'a short key',
      method: 'GET',
      headers: { ...GOOD, 'sec-websocket-key': 'c2hvcnQ=' },
      problem: 'missing or invalid Sec-WebSocket-Key',
    },
    {
      name: 'version 12',
      method: 'GET',
      headers: { ...GOOD, 'sec-websocket-version': '12' },
      problem: 'missing or invalid Sec-WebSocket-Version',
    },
  ])('$name', ({ method, headers, problem }) => {
    expect(handshakeProblem({ method, headers })).toBe(problem);
  });
});
