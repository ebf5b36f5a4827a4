import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { answerProbe } from '../src/index.js';
import { httpGet, parseRawResponse, rawExchange } from './helpers.js';

let server: ReturnType<typeof createServer> | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  if (server?.listening) await new Promise((resolve) => server!.close(resolve));
  server = undefined;
});

async function serve(answer: (res: ServerResponse) => void): Promise<string> {
  server = createServer((_req, res) => answer(res));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('answerProbe', () => {
  it.each([
    ['healthz', true, 200, '{"status":"ok"}'],
    ['healthz', false, 200, '{"status":"ok"}'],
    ['readyz', true, 200, '{"status":"ready"}'],
    ['readyz', false, 503, '{"status":"draining"}'],
  ] as const)('%s with ready=%s answers %i %s', async (probe, ready, status, body) => {
    const url = await serve((res) => answerProbe(res, probe, ready));
    const reply = await httpGet(url);
    expect(reply).toMatchObject({ status, body });
    expect(reply.headers['content-type']).toBe('application/json');
    expect(reply.headers['cache-control']).toBe('no-store');
  });

  it('answers HEAD without a body, and with closeConnection ends a keep-alive connection', async () => {
    const url = await serve((res) => answerProbe(res, 'readyz', false, true));
    // HTTP/1.1 keeps the connection open unless the answer says Connection: close; rawExchange
    // returns only once the server has closed it.
    const reply = parseRawResponse(
      await rawExchange(url, 'HEAD /readyz HTTP/1.1\r\nHost: worker.test\r\n\r\n'),
    );
    expect(reply).toMatchObject({ status: 503, body: '' });
    expect(reply.headers['connection']).toBe('close');
    expect(reply.headers['content-length']).toBe(String('{"status":"draining"}'.length));
  });
});
