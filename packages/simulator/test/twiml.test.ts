import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks.js';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  decodeEntities,
  deriveTwimlUrl,
  fetchTwiml,
  parseTwiml,
  resolveStreamUrl,
  simulateCall,
  urlWithoutQuery,
} from '../src/index.js';
import { startScriptedWorker } from './scripted-worker.js';

const TOKEN = 'test_auth_token_123';

describe('Twilio request signatures', () => {
  // Signatures Twilio sends for these requests (computed with twilio@6.3.1). The simulator signs
  // with `twilio` like the proxy and the media worker validate with it; these vectors catch a
  // `twilio` upgrade that would sign differently from the requests real Twilio sends.
  it.each([
    ['wss://edge.example.com/media-stream/abc', {}, 'Uy/a+D6qJXlryo4pKMzgcaeJ5qY='],
    [
      'https://edge.example.com/voice',
      { To: '+15550101', CallSid: 'CA00000000000000000000000000000001', From: '+15550100' },
      '7UJQN0go5OHC8Qdz2554DDJt0BY=',
    ],
  ])('signs %s', (url, params, expected) => {
    expect(getExpectedTwilioSignature(TOKEN, url, params)).toBe(expected);
  });

  it('signs a trailing slash differently', () => {
    expect(
      getExpectedTwilioSignature(TOKEN, 'wss://edge.example.com/media-stream/abc/', {}),
    ).not.toBe('Uy/a+D6qJXlryo4pKMzgcaeJ5qY=');
  });

  it.each([
    ['wss://h/media-stream/CA1?token=x', 'wss://h/media-stream/CA1'],
    ['wss://h/media-stream#frag', 'wss://h/media-stream'],
    ['wss://h/media-stream', 'wss://h/media-stream'],
  ])('signs %s without its query as %s', (url, expected) => {
    expect(urlWithoutQuery(url)).toBe(expected);
  });
});

describe('parseTwiml', () => {
  it.each([
    [
      'twilio@6 output with a parameter',
      '<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="wss://e.example.com/media-stream/CA1"><Parameter name="callToken" value="t0k"/></Stream></Connect></Response>',
      'wss://e.example.com/media-stream/CA1',
      { callToken: 't0k' },
      undefined,
    ],
    [
      'entities, single quotes, whitespace and comments',
      `<Response>
         <!-- <Connect><Stream url="wss://wrong"/></Connect> -->
         <Connect action="/next">
           <Stream name='s1' url = 'wss://e.example.com/media-stream?a=1&amp;b=2' >
             <Parameter name="a&lt;b" value="x &quot;y&quot; &#65;&#x42;" />
             <Parameter value='v2' name='second'></Parameter>
           </Stream>
         </Connect>
       </Response>`,
      'wss://e.example.com/media-stream?a=1&b=2',
      { 'a<b': 'x "y" AB', second: 'v2' },
      '/next',
    ],
    [
      'a self-closing stream with no parameters',
      '<Response><Say>hi</Say><Connect><Stream url="wss://e/x"/></Connect></Response>',
      'wss://e/x',
      {},
      undefined,
    ],
    [
      'a stream without url',
      '<Response><Connect><Stream></Stream></Connect></Response>',
      undefined,
      {},
      undefined,
    ],
  ])('reads %s', (_what, xml, url, parameters, actionUrl) => {
    expect(parseTwiml(xml)).toEqual({ streamUrl: url, parameters, actionUrl });
  });

  it.each([
    ['no Connect', '<Response><Start><Stream url="wss://e/x"/></Start></Response>'],
    ['an empty body', ''],
    ['a Say only', '<Response><Say>busy</Say></Response>'],
  ])('rejects %s with SIM_ERR_TWIML', (_what, xml) => {
    expect(() => parseTwiml(xml)).toThrow(expect.objectContaining({ code: 'SIM_ERR_TWIML' }));
  });

  it.each([
    ['&amp;&lt;&gt;&quot;&apos;', `&<>"'`],
    ['&#128512;', '😀'],
    ['&unknown; &#xZZ;', '&unknown; &#xZZ;'],
  ])('decodes %s', (input, expected) => {
    expect(decodeEntities(input)).toBe(expected);
  });

  it.each([
    ['ws://127.0.0.1:8080/media-stream/CA1?x=1', 'http://127.0.0.1:8080/media-stream/twiml'],
    ['wss://edge.example.com/media-stream', 'https://edge.example.com/media-stream/twiml'],
  ])('derives the webhook of %s', (url, expected) => {
    expect(deriveTwimlUrl(url)).toBe(expected);
  });

  it.each([
    ['/media-stream/CA1', 'https://e.example.com/voice', 'wss://e.example.com/media-stream/CA1'],
    ['wss://o.example.com/x', 'http://e/voice', 'wss://o.example.com/x'],
    ['/m', 'http://127.0.0.1:5/media-stream/twiml', 'ws://127.0.0.1:5/m'],
  ])('resolves stream url %s against %s', (url, base, expected) => {
    expect(resolveStreamUrl(url, base)).toBe(expected);
  });
});

describe('voice-webhook step', () => {
  it('posts the signed form, follows <Stream url> and merges the parameters under explicit ones', async () => {
    const webhooks: Array<{ headers: Record<string, unknown>; body: string; url: string }> = [];
    const w = await startScriptedWorker({
      onRequest: (req, res, body) => {
        webhooks.push({ headers: req.headers, body, url: req.url ?? '' });
        const params = new URLSearchParams(body);
        const streamUrl = `ws://127.0.0.1:${w.port}/media-stream/${params.get('CallSid') ?? ''}`;
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><Response><Connect><Stream url="${streamUrl}">` +
            '<Parameter name="callToken" value="t&amp;k"/><Parameter name="lang" value="en"/>' +
            '</Stream></Connect></Response>',
        );
      },
    });
    onTestFinished(() => w.close());
    const twimlUrl = `http://127.0.0.1:${w.port}/media-stream/twiml`;
    const summary = await simulateCall({
      url: '',
      twimlUrl,
      authToken: TOKEN,
      customParameters: { lang: 'de' },
      from: '+15550199',
      hangupAfterMs: 100,
    });

    expect(webhooks).toHaveLength(1);
    const hook = webhooks[0]!;
    expect(hook.url).toBe('/media-stream/twiml');
    expect(hook.headers['content-type']).toBe('application/x-www-form-urlencoded');
    const params = Object.fromEntries(new URLSearchParams(hook.body));
    expect(params).toEqual({
      CallSid: summary.callSid,
      AccountSid: expect.stringMatching(/^AC[0-9a-f]{32}$/),
      From: '+15550199',
      To: '+15550101',
      CallStatus: 'ringing',
      Direction: 'inbound',
    });
    expect(hook.headers['x-twilio-signature']).toBe(
      getExpectedTwilioSignature(TOKEN, twimlUrl, params),
    );

    // The stream came from the TwiML; the upgrade is signed over that URL.
    const conn = w.connections[0]!;
    expect(conn.request.url).toBe(`/media-stream/${summary.callSid}`);
    expect(conn.request.headers['x-twilio-signature']).toBe(
      getExpectedTwilioSignature(
        TOKEN,
        `ws://127.0.0.1:${w.port}/media-stream/${summary.callSid}`,
        {},
      ),
    );
    const start = conn.messages.find((m) => m['event'] === 'start')!;
    expect((start['start'] as Record<string, unknown>)['customParameters']).toEqual({
      callToken: 't&k',
      lang: 'de',
    });
    expect((start['start'] as Record<string, unknown>)['accountSid']).toBe(params['AccountSid']);
    expect(summary.customParameters).toEqual({ callToken: 't&k', lang: 'de' });
  });

  it('signs the upgrade over signatureUrl (the vector above) and keeps an explicit url over the TwiML one', async () => {
    const w = await startScriptedWorker({
      onRequest: (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          '<Response><Connect><Stream url="wss://public.example.com/media-stream/x"/></Connect></Response>',
        );
      },
    });
    onTestFinished(() => w.close());
    await simulateCall({
      url: `${w.origin}/media-stream/abc?ignored=1`,
      twimlUrl: `http://127.0.0.1:${w.port}/media-stream/twiml`,
      authToken: TOKEN,
      signatureUrl: 'wss://edge.example.com/media-stream/abc',
      headers: { 'x-extra': 'yes' },
      hangupAfterMs: 40,
    });
    const conn = w.connections[0]!;
    expect(conn.request.url).toBe('/media-stream/abc?ignored=1');
    expect(conn.request.headers['x-twilio-signature']).toBe('Uy/a+D6qJXlryo4pKMzgcaeJ5qY=');
    expect(conn.request.headers['x-extra']).toBe('yes');
  });

  it('sends no signature without an auth token', async () => {
    const w = await startScriptedWorker();
    onTestFinished(() => w.close());
    await simulateCall({ url: `${w.origin}/media-stream`, hangupAfterMs: 20 });
    expect(w.connections[0]!.request.headers['x-twilio-signature']).toBeUndefined();
  });

  it.each([
    ['a 500', 500, '<Response/>'],
    ['TwiML without <Connect><Stream>', 200, '<Response><Hangup/></Response>'],
  ])('rejects %s with SIM_ERR_TWIML', async (_what, status, body) => {
    const w = await startScriptedWorker({
      onRequest: (_req, res) => {
        res.writeHead(status, { 'content-type': 'text/xml' });
        res.end(body);
      },
    });
    onTestFinished(() => w.close());
    await expect(
      fetchTwiml({
        twimlUrl: `http://127.0.0.1:${w.port}/media-stream/twiml`,
        callSid: 'CA1',
        accountSid: 'AC1',
        from: '+1',
        to: '+2',
      }),
    ).rejects.toMatchObject({ code: 'SIM_ERR_TWIML' });
    expect(w.connections).toHaveLength(0);
  });

  it('rejects an unreachable webhook with SIM_ERR_CONNECT', async () => {
    const w = await startScriptedWorker();
    const port = w.port;
    await w.close();
    await expect(
      simulateCall({
        url: `ws://127.0.0.1:${port}/media-stream`,
        twimlUrl: `http://127.0.0.1:${port}/media-stream/twiml`,
      }),
    ).rejects.toMatchObject({ code: 'SIM_ERR_CONNECT' });
  });
});

describe('voice-webhook failures', () => {
  it('rejects with SIM_ERR_TIMEOUT when the webhook never answers', async () => {
    const w = await startScriptedWorker({ onRequest: () => {} });
    onTestFinished(() => w.close());
    await expect(
      fetchTwiml({
        twimlUrl: `http://127.0.0.1:${w.port}/media-stream/twiml`,
        callSid: 'CA1',
        accountSid: 'AC1',
        from: '+1',
        to: '+2',
        timeoutMs: 200,
      }),
    ).rejects.toMatchObject({ code: 'SIM_ERR_TIMEOUT' });
  });

  it('rejects with SIM_ERR_ABORTED when the signal aborts while waiting', async () => {
    const controller = new AbortController();
    const w = await startScriptedWorker({ onRequest: () => controller.abort() });
    onTestFinished(() => w.close());
    await expect(
      fetchTwiml({
        twimlUrl: `http://127.0.0.1:${w.port}/media-stream/twiml`,
        callSid: 'CA1',
        accountSid: 'AC1',
        from: '+1',
        to: '+2',
        signal: controller.signal,
      }),
    ).rejects.toMatchObject({ code: 'SIM_ERR_ABORTED' });
  });
});
