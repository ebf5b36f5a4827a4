import { describe, expect, it } from 'vitest';
import { upstreamHeaders } from '../src/upstream-headers.js';

const info = {
  clientAddress: '203.0.113.9',
  proto: 'wss',
  host: 'edge.example.com',
  requestId: 'r1',
  tunnelId: 'r1',
};

describe('upstreamHeaders', () => {
  it('overwrites X-Forwarded-* and drops Forwarded and X-Real-IP', () => {
    const out = upstreamHeaders(
      {
        host: 'edge.example.com',
        'x-forwarded-for': '6.6.6.6',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'evil.example',
        'x-forwarded-port': '1',
        'x-forwarded-prefix': '/x',
        forwarded: 'for=6.6.6.6',
        'x-real-ip': '6.6.6.6',
        'x-request-id': 'spoofed',
        'x-tunnel-id': 'spoofed',
      },
      info,
      true,
    );
    expect(out).toEqual({
      host: 'edge.example.com',
      'x-forwarded-for': '203.0.113.9',
      'x-forwarded-proto': 'wss',
      'x-forwarded-host': 'edge.example.com',
      'x-request-id': 'r1',
      'x-tunnel-id': 'r1',
      connection: 'Upgrade',
      upgrade: 'websocket',
    });
  });

  it.each([
    ['keep-alive'],
    ['te'],
    ['trailer'],
    ['proxy-authorization'],
    ['proxy-connection'],
    ['x-secret'],
    ['x-forwarded-for'],
  ])('removes %s when hop-by-hop or nominated by Connection', (name) => {
    const out = upstreamHeaders(
      { host: 'h', connection: 'Upgrade, X-Secret, X-Forwarded-For', [name]: 'v', 'x-secret': 's' },
      { ...info, clientAddress: '1.2.3.4' },
      true,
    );
    if (name === 'x-forwarded-for') expect(out[name]).toBe('1.2.3.4');
    else expect(out[name]).toBeUndefined();
    expect(out.connection).toBe('Upgrade');
  });

  it('keeps end-to-end fields even when Connection names them', () => {
    const out = upstreamHeaders(
      {
        host: 'h',
        connection: 'Upgrade, Host, Sec-WebSocket-Key, Sec-WebSocket-Protocol',
        'sec-websocket-key': 'k',
        'sec-websocket-version': '13',
        'sec-websocket-protocol': 'audio.twilio.com',
        'x-twilio-signature': 'sig',
      },
      info,
      true,
    );
    expect(out).toMatchObject({
      host: 'h',
      'sec-websocket-key': 'k',
      'sec-websocket-version': '13',
      'sec-websocket-protocol': 'audio.twilio.com',
      'x-twilio-signature': 'sig',
    });
  });

  it('keeps body framing on plain requests, drops Upgrade there, and adds no tunnel id', () => {
    const out = upstreamHeaders(
      { host: 'h', 'content-length': '3', upgrade: 'websocket', connection: 'keep-alive' },
      { clientAddress: '1.2.3.4', proto: 'https', host: 'h', requestId: 'r2' },
      false,
    );
    expect(out).toEqual({
      host: 'h',
      'content-length': '3',
      'x-forwarded-for': '1.2.3.4',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'h',
      'x-request-id': 'r2',
    });
  });
});
