import { describe, expect, it } from 'vitest';
import {
  TestClient,
  httpRequest,
  newSids,
  startWorker,
  twilio,
  waitForLog,
  type WorkerHarness,
} from './helpers.js';

// Worker lines must join with the proxy's: the proxy sends X-Tunnel-Id on every upgrade and
// X-Request-Id on every request, and logs the same ids on its `upgrade`, `tunnel closed` and
// `request` lines.

const TUNNEL_ID = '5c0ffee0-aaaa-4bbb-8ccc-123456789abc';
const REQUEST_ID = '0d15ea5e-1111-4222-8333-444455556666';

async function tunnelledCall(
  h: WorkerHarness,
  headers: Record<string, string>,
): Promise<{ client: TestClient; callSid: string }> {
  const sids = newSids();
  const client = await TestClient.connect(`${h.wsUrl}/media-stream/${sids.callSid}`, headers);
  client.send(twilio.connected());
  client.send(twilio.start(sids));
  await waitForLog(h, (l) => l.msg === 'call started' && l.callSid === sids.callSid);
  client.send(twilio.stop(sids));
  await client.closed;
  await waitForLog(h, (l) => l.msg === 'call ended' && l.callSid === sids.callSid);
  return { client, callSid: sids.callSid };
}

describe('media worker log fields', () => {
  it('puts the tunnelId of the upgrade on every line of the session', async () => {
    const h = await startWorker();
    const { callSid } = await tunnelledCall(h, { 'X-Tunnel-Id': TUNNEL_ID });
    const lines = h.logs.filter((l) => l.callSid === callSid);
    expect(lines.map((l) => l.msg)).toEqual(['call started', 'call ended']);
    for (const line of lines) expect(line.tunnelId).toBe(TUNNEL_ID);
  });

  it('logs no tunnelId for a header that is not an id (a client bypassing the proxy)', async () => {
    const h = await startWorker();
    const { callSid } = await tunnelledCall(h, { 'X-Tunnel-Id': 'x" injected="1' });
    const started = h.logs.find((l) => l.msg === 'call started' && l.callSid === callSid);
    expect(started).toBeDefined();
    expect(started).not.toHaveProperty('tunnelId');
  });

  it('puts the tunnelId on a refused upgrade', async () => {
    const h = await startWorker();
    await expect(
      TestClient.connect(`${h.wsUrl}/media-stream/${'C'.repeat(65)}`, {
        'X-Tunnel-Id': TUNNEL_ID,
      }),
    ).rejects.toThrow('upgrade refused with 404');
    expect(h.logs.find((l) => l.msg === 'upgrade refused')).toMatchObject({
      code: 'MEDIA_ERR_NO_ROUTE',
      tunnelId: TUNNEL_ID,
    });
  });

  it('puts the requestId on webhook lines', async () => {
    const h = await startWorker();
    const callSid = newSids().callSid;
    const post = (path: string, contentType: string) =>
      httpRequest(`${h.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': contentType, 'x-request-id': REQUEST_ID },
        body: new URLSearchParams({ CallSid: callSid, StreamEvent: 'stream-started' }).toString(),
      });
    expect((await post('/media-stream/twiml', 'application/x-www-form-urlencoded')).status).toBe(
      200,
    );
    expect((await post('/media-stream/status', 'application/x-www-form-urlencoded')).status).toBe(
      204,
    );
    expect((await post('/media-stream/twiml', 'text/plain')).status).toBe(415);
    for (const msg of ['voice webhook answered', 'stream status', 'webhook refused']) {
      expect(h.logs.find((l) => l.msg === msg)).toMatchObject({ requestId: REQUEST_ID });
    }
  });

  it('warns with its own code when CALL_TOKEN_SECRET is unset', async () => {
    const h = await startWorker({ callTokenSecret: undefined });
    const warning = h.logs.find((l) => l.msg.startsWith('CALL_TOKEN_SECRET is not set'));
    expect(warning).toMatchObject({ level: 'warn', code: 'MEDIA_ERR_NO_CALL_TOKEN_SECRET' });
  });
});
