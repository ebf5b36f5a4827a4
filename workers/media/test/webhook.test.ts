import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks.js';
import { describe, expect, it } from 'vitest';
import { verifyCallToken } from '../src/index.js';
import { httpRequest, startWorker, waitForLog, type WorkerHarness } from './helpers.js';

const authToken = 'test_auth_token_123';
const publicUrl = 'https://edge.example.com';
const secret = 'webhook-test-secret-0123456789';
const callSid = 'CA00000000000000000000000000000001';
const voiceParams = { CallSid: callSid, From: '+15550100', To: '+15550101' };
const form = 'application/x-www-form-urlencoded';

function post(
  h: WorkerHarness,
  path: string,
  params: Record<string, string>,
  headers: Record<string, string> = {},
) {
  return httpRequest(`${h.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': form, ...headers },
    body: new URLSearchParams(params).toString(),
  });
}

function signed(path: string, params: Record<string, string>): Record<string, string> {
  return {
    'x-twilio-signature': getExpectedTwilioSignature(authToken, `${publicUrl}${path}`, params),
  };
}

async function signedWorker(): Promise<WorkerHarness> {
  return startWorker({
    twilioAuthToken: authToken,
    publicUrl: new URL(publicUrl),
    callTokenSecret: secret,
    callTokenTtlSeconds: 600,
  });
}

describe('Twilio webhooks', () => {
  it('signs as Twilio does: fixed signatures for a fixed token, URL and form (HMAC-SHA1 over the URL and the sorted parameters)', () => {
    expect(
      getExpectedTwilioSignature(authToken, 'https://edge.example.com/voice', voiceParams),
    ).toBe('7UJQN0go5OHC8Qdz2554DDJt0BY=');
    expect(
      getExpectedTwilioSignature(authToken, 'wss://edge.example.com/media-stream/abc', {}),
    ).toBe('Uy/a+D6qJXlryo4pKMzgcaeJ5qY=');
  });

  describe('POST /media-stream/twiml', () => {
    it('answers a signed webhook with <Connect><Stream> to the call and a valid call token', async () => {
      const h = await signedWorker();
      const res = await post(
        h,
        '/media-stream/twiml',
        voiceParams,
        signed('/media-stream/twiml', voiceParams),
      );
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe('text/xml; charset=utf-8');
      expect(res.body).toContain(`<Stream url="wss://edge.example.com/media-stream/${callSid}"`);
      expect(res.body).toContain('statusCallback="https://edge.example.com/media-stream/status"');
      const token = /<Parameter name="callToken" value="([^"]+)"\/>/.exec(res.body)?.[1];
      expect(verifyCallToken({ secret, callSid, token })).toMatchObject({ ok: true });
      expect(await h.metric('media_webhooks_total', { route: 'twiml', status: '200' })).toBe(1);
    });

    it.each([
      { name: 'no signature', headers: {} as Record<string, string> },
      {
        name: 'a wrong signature',
        headers: { 'x-twilio-signature': 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=' },
      },
      {
        name: 'a signature over other params',
        headers: signed('/media-stream/twiml', { ...voiceParams, To: '+1' }),
      },
      {
        name: 'a signature over another URL',
        headers: signed('/media-stream/twiml/', voiceParams),
      },
    ])('refuses $name with 403', async ({ headers }) => {
      const h = await signedWorker();
      const res = await post(h, '/media-stream/twiml', voiceParams, headers);
      expect(res.status).toBe(403);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: 'MEDIA_ERR_BAD_SIGNATURE' } });
      expect(await h.metric('media_errors_total', { code: 'MEDIA_ERR_BAD_SIGNATURE' })).toBe(1);
      await waitForLog(h, (l) => l.code === 'MEDIA_ERR_BAD_SIGNATURE');
    });

    it('signs over the path with its query string as received', async () => {
      const h = await signedWorker();
      const path = '/media-stream/twiml?tenant=a%20b';
      const res = await post(h, path, voiceParams, signed(path, voiceParams));
      expect(res.status).toBe(200);
    });

    it.each([
      { name: 'no CallSid', params: { From: '+1' }, status: 400, code: 'MEDIA_ERR_BAD_WEBHOOK' },
      {
        name: 'a CallSid that is no path segment',
        params: { CallSid: 'CA/../x' },
        status: 400,
        code: 'MEDIA_ERR_BAD_WEBHOOK',
      },
    ])('answers $name with $status', async ({ params, status, code }) => {
      const h = await startWorker();
      const res = await post(h, '/media-stream/twiml', params, { host: 'edge.example.com' });
      expect(res.status).toBe(status);
      expect(JSON.parse(res.body)).toMatchObject({ error: { code } });
    });

    it('answers a body over the limit with 413', async () => {
      const h = await startWorker({ maxWebhookBytes: 1024 });
      const res = await post(h, '/media-stream/twiml', { ...voiceParams, Pad: 'x'.repeat(5000) });
      expect(res.status).toBe(413);
      expect(await h.metric('media_errors_total', { code: 'MEDIA_ERR_BODY_TOO_LARGE' })).toBe(1);
    });

    it('answers a streamed (chunked) body over the limit with 413', async () => {
      const h = await startWorker({ maxWebhookBytes: 1024 });
      const res = await httpRequest(`${h.url}/media-stream/twiml`, {
        method: 'POST',
        headers: { 'content-type': form, 'transfer-encoding': 'chunked' },
        body: `CallSid=${callSid}&Pad=${'x'.repeat(5000)}`,
      });
      expect(res.status).toBe(413);
    });

    it('answers GET with 405 and JSON with 415', async () => {
      const h = await startWorker();
      const get = await httpRequest(`${h.url}/media-stream/twiml`);
      expect(get.status).toBe(405);
      expect(get.headers.allow).toBe('POST');
      const json = await httpRequest(`${h.url}/media-stream/twiml`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(voiceParams),
      });
      expect(json.status).toBe(415);
    });

    it('builds the stream URL from the Host header (wss) without PUBLIC_URL, and no token without a secret', async () => {
      const h = await startWorker();
      const res = await post(h, '/media-stream/twiml', voiceParams, {
        'x-forwarded-host': 'abc.ngrok.app',
      });
      expect(res.status).toBe(200);
      expect(res.body).toContain(`<Stream url="wss://abc.ngrok.app/media-stream/${callSid}"`);
      expect(res.body).not.toContain('callToken');
    });
  });

  describe('POST /media-stream/status', () => {
    const status = {
      AccountSid: 'AC00000000000000000000000000000000',
      CallSid: callSid,
      StreamSid: 'MZ00000000000000000000000000000001',
      StreamName: 'MZ00000000000000000000000000000001',
      StreamEvent: 'stream-error',
      StreamError: 'broken pipe',
      Timestamp: '2026-01-01T00:00:00Z',
    };

    it('logs a signed status callback with the call and stream and answers 204', async () => {
      const h = await signedWorker();
      const res = await post(
        h,
        '/media-stream/status',
        status,
        signed('/media-stream/status', status),
      );
      expect(res.status).toBe(204);
      const line = await waitForLog(h, (l) => l.msg === 'stream status');
      expect(line).toMatchObject({
        level: 'warn',
        callSid,
        streamSid: status.StreamSid,
        streamEvent: 'stream-error',
        streamError: 'broken pipe',
      });
    });

    it('refuses an unsigned status callback with 403', async () => {
      const h = await signedWorker();
      const res = await post(h, '/media-stream/status', status);
      expect(res.status).toBe(403);
      expect(h.logs.some((l) => l.msg === 'stream status')).toBe(false);
    });
  });

  it('answers other paths with 404', async () => {
    const h = await startWorker();
    expect((await httpRequest(`${h.url}/media-stream/other`, { method: 'POST' })).status).toBe(404);
    expect((await httpRequest(`${h.url}/healthz`)).status).toBe(200);
  });
});
