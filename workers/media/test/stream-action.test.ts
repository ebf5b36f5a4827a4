import { createHmac } from 'node:crypto';
import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks.js';
import { describe, expect, it } from 'vitest';
import {
  buildEmptyTwiml,
  buildGiveUpTwiml,
  buildStreamTwiml,
  decideStreamAction,
  decodeStreamActionState,
  encodeStreamActionState,
  verifyCallToken,
  type MediaWorkerConfig,
} from '../src/index.js';
import { httpRequest, startWorker, waitForLog, type WorkerHarness } from './helpers.js';

const authToken = 'test_auth_token_123';
const publicUrl = 'https://edge.example.com';
const secret = 'action-test-secret-0123456789';
const callSid = 'CA00000000000000000000000000000007';
const form = 'application/x-www-form-urlencoded';

function actionParams(callStatus: string): Record<string, string> {
  return {
    AccountSid: 'AC00000000000000000000000000000000',
    CallSid: callSid,
    CallStatus: callStatus,
    From: '+15550100',
    To: '+15550101',
    Direction: 'inbound',
  };
}

/** The `?r=&at=&sig=` query the TwiML would carry, for a stream offered `agoMs` ago. */
function stateQuery(reconnects: number, agoMs: number, signed = true): string {
  return encodeStreamActionState(signed ? secret : undefined, callSid, {
    reconnects,
    offeredAtMs: Date.now() - agoMs,
  });
}

function unescapeXml(value: string): string {
  return value.replace(/&amp;/g, '&').replace(/&quot;/g, '"');
}

function connectAction(xml: string): URL | undefined {
  const m = /<Connect action="([^"]+)" method="POST">/.exec(xml);
  return m?.[1] === undefined ? undefined : new URL(unescapeXml(m[1]));
}

async function postAction(
  h: WorkerHarness,
  query: string,
  params: Record<string, string>,
  sign: 'twilio' | 'none' | 'wrong' = 'twilio',
) {
  const path = `/media-stream/action?${query}`;
  const headers: Record<string, string> = { 'content-type': form };
  if (sign === 'twilio') {
    headers['x-twilio-signature'] = getExpectedTwilioSignature(
      authToken,
      `${publicUrl}${path}`,
      params,
    );
  } else if (sign === 'wrong') {
    headers['x-twilio-signature'] = 'AAAAAAAAAAAAAAAAAAAAAAAAAAA=';
  }
  return httpRequest(`${h.url}${path}`, {
    method: 'POST',
    headers,
    body: new URLSearchParams(params).toString(),
  });
}

const SIGNED: Partial<MediaWorkerConfig> = {
  twilioAuthToken: authToken,
  publicUrl: new URL(publicUrl),
  callTokenSecret: secret,
  streamReconnectLimit: 3,
  streamStableMs: 30_000,
};

describe('stream action state', () => {
  it('signs exactly "callgate-stream-action|v1|<CallSid>|<r>|<at>" (workers of other versions agree)', () => {
    const query = new URLSearchParams(
      encodeStreamActionState(secret, callSid, { reconnects: 2, offeredAtMs: 1_700_000_000_123 }),
    );
    const expected = createHmac('sha256', secret)
      .update(`callgate-stream-action|v1|${callSid}|2|1700000000123`, 'utf8')
      .digest('base64url');
    expect(query.get('sig')).toBe(expected);
  });

  it('round-trips, signed and unsigned', () => {
    const q = new URLSearchParams(encodeStreamActionState(secret, callSid, s(2, 1234)));
    expect(decodeStreamActionState(secret, callSid, q)).toEqual({
      ok: true,
      state: s(2, 1234),
      signed: true,
    });
    const plain = new URLSearchParams(encodeStreamActionState(undefined, callSid, s(0, 99)));
    expect(plain.has('sig')).toBe(false);
    expect(decodeStreamActionState(undefined, callSid, plain)).toEqual({
      ok: true,
      state: s(0, 99),
      signed: false,
    });
  });

  it.each([
    { name: 'no state', query: '', reason: 'missing' },
    { name: 'a negative count', query: 'r=-1&at=5', reason: 'malformed' },
    { name: 'a non-numeric time', query: 'r=0&at=now', reason: 'malformed' },
    { name: 'no MAC while a secret is set', query: 'r=0&at=5', reason: 'unsigned' },
    {
      name: 'a count reset by hand',
      query: encodeStreamActionState(secret, callSid, s(3, 5)).replace('r=3', 'r=0'),
      reason: 'bad-signature',
    },
    {
      name: 'a time moved by hand',
      query: encodeStreamActionState(secret, callSid, s(3, 5)).replace('at=5', 'at=6'),
      reason: 'bad-signature',
    },
    {
      name: "another call's state",
      query: encodeStreamActionState(secret, 'CAother', s(0, 5)),
      reason: 'bad-signature',
    },
    {
      name: 'a MAC made with another secret',
      query: encodeStreamActionState('another-secret-0123456789', callSid, s(0, 5)),
      reason: 'bad-signature',
    },
  ])('refuses $name ($reason)', ({ query, reason }) => {
    expect(decodeStreamActionState(secret, callSid, new URLSearchParams(query))).toEqual({
      ok: false,
      reason,
    });
  });

  it.each([
    { state: s(0, 0), now: 1000, limit: 3, expected: { kind: 'reconnect', reconnects: 1 } },
    { state: s(2, 0), now: 1000, limit: 3, expected: { kind: 'reconnect', reconnects: 3 } },
    { state: s(3, 0), now: 1000, limit: 3, expected: { kind: 'give-up', reconnects: 3 } },
    // A stream that lived STREAM_STABLE_MS resets the count.
    { state: s(3, 0), now: 30_000, limit: 3, expected: { kind: 'reconnect', reconnects: 1 } },
    { state: s(0, 0), now: 1000, limit: 0, expected: { kind: 'give-up', reconnects: 0 } },
    // A clock behind the offering worker's: lifetime 0, never negative.
    { state: s(1, 5000), now: 1000, limit: 3, expected: { kind: 'reconnect', reconnects: 2 } },
  ])('decides $expected.kind for r=$state.reconnects after $now ms', (c) => {
    expect(decideStreamAction(c.state, c.now, c.limit, 30_000)).toMatchObject(c.expected);
  });
});

describe('action TwiML', () => {
  it('puts <Connect action method=POST> around the stream, escaping the query', () => {
    const xml = buildStreamTwiml({
      streamUrl: 'wss://e.example/media-stream/CA1',
      callToken: 't',
      actionUrl: 'https://e.example/media-stream/action?r=0&at=5',
    });
    expect(xml).toContain(
      '<Connect action="https://e.example/media-stream/action?r=0&amp;at=5" method="POST">' +
        '<Stream url="wss://e.example/media-stream/CA1"><Parameter name="callToken" value="t"/>',
    );
    expect(buildStreamTwiml({ streamUrl: 'wss://e.example/x' })).toContain('<Connect><Stream');
  });

  it('ends a call with an empty response, or with an apology and a hang-up', () => {
    expect(buildEmptyTwiml()).toBe('<?xml version="1.0" encoding="UTF-8"?><Response/>');
    expect(buildGiveUpTwiml('Bye.')).toBe(
      '<?xml version="1.0" encoding="UTF-8"?><Response><Say>Bye.</Say><Hangup/></Response>',
    );
  });
});

describe('POST /media-stream/action', () => {
  it('the voice webhook offers <Connect action> with fresh state, and not with STREAM_RECONNECT_LIMIT=0', async () => {
    const h = await startWorker(SIGNED);
    const params = actionParams('ringing');
    const res = await httpRequest(`${h.url}/media-stream/twiml`, {
      method: 'POST',
      headers: {
        'content-type': form,
        'x-twilio-signature': getExpectedTwilioSignature(
          authToken,
          `${publicUrl}/media-stream/twiml`,
          params,
        ),
      },
      body: new URLSearchParams(params).toString(),
    });
    expect(res.status).toBe(200);
    const action = connectAction(res.body);
    expect(action?.origin + (action?.pathname ?? '')).toBe(`${publicUrl}/media-stream/action`);
    const decoded = decodeStreamActionState(secret, callSid, action!.searchParams);
    expect(decoded).toMatchObject({ ok: true, state: { reconnects: 0 } });
    expect(decoded.ok && Math.abs(decoded.state.offeredAtMs - Date.now())).toBeLessThan(5000);

    const off = await startWorker({ streamReconnectLimit: 0 });
    const plain = await httpRequest(`${off.url}/media-stream/twiml`, {
      method: 'POST',
      headers: { 'content-type': form, host: 'edge.example.com' },
      body: new URLSearchParams(params).toString(),
    });
    expect(plain.body).toContain('<Connect><Stream');
  });

  it.each([
    {
      name: 'an in-progress call after a short stream',
      config: SIGNED,
      query: () => stateQuery(0, 2000),
      status: 'in-progress',
      sign: 'twilio' as const,
      http: 200,
      outcome: 'reconnect',
      nextReconnects: 1,
    },
    {
      name: 'an in-progress call after a long stream (count reset)',
      config: SIGNED,
      query: () => stateQuery(3, 60_000),
      status: 'in-progress',
      sign: 'twilio' as const,
      http: 200,
      outcome: 'reconnect',
      nextReconnects: 1,
    },
    {
      name: 'a completed call',
      config: SIGNED,
      query: () => stateQuery(0, 2000),
      status: 'completed',
      sign: 'twilio' as const,
      http: 200,
      outcome: 'completed',
    },
    {
      name: 'a call past STREAM_RECONNECT_LIMIT',
      config: SIGNED,
      query: () => stateQuery(3, 2000),
      status: 'in-progress',
      sign: 'twilio' as const,
      http: 200,
      outcome: 'give-up',
      code: 'MEDIA_ERR_RECONNECT_LIMIT',
    },
    {
      name: 'a tampered query (count reset, MAC kept)',
      config: { callTokenSecret: secret },
      query: () => stateQuery(3, 2000).replace('r=3', 'r=0'),
      status: 'in-progress',
      sign: 'none' as const,
      http: 403,
      code: 'MEDIA_ERR_BAD_ACTION_STATE',
    },
    {
      name: 'an unsigned state while CALL_TOKEN_SECRET is set',
      config: { callTokenSecret: secret },
      query: () => stateQuery(0, 2000, false),
      status: 'in-progress',
      sign: 'none' as const,
      http: 403,
      code: 'MEDIA_ERR_BAD_ACTION_STATE',
    },
    {
      name: 'a bad X-Twilio-Signature',
      config: SIGNED,
      query: () => stateQuery(0, 2000),
      status: 'in-progress',
      sign: 'wrong' as const,
      http: 403,
      code: 'MEDIA_ERR_BAD_SIGNATURE',
    },
    {
      name: 'no CallStatus (treated as over)',
      config: SIGNED,
      query: () => stateQuery(0, 2000),
      status: '',
      sign: 'twilio' as const,
      http: 200,
      outcome: 'completed',
    },
  ])('answers $name', async (c) => {
    const h = await startWorker({ ...c.config, host: '127.0.0.1' });
    const params = actionParams(c.status);
    if (c.status === '') delete params.CallStatus;
    const res = await postAction(h, c.query(), params, c.sign);
    expect(res.status).toBe(c.http);
    if (c.http !== 200) {
      expect(JSON.parse(res.body)).toMatchObject({ error: { code: c.code } });
      expect(await h.metric('media_errors_total', { code: c.code! })).toBe(1);
      expect(await h.metric('media_webhooks_total', { route: 'action', status: '403' })).toBe(1);
      await waitForLog(h, (l) => l.msg === 'webhook refused' && l.code === c.code);
      return;
    }
    expect(res.headers['content-type']).toBe('text/xml; charset=utf-8');
    expect(await h.metric('media_stream_actions_total', { outcome: c.outcome! })).toBe(1);
    expect(await h.metric('media_webhooks_total', { route: 'action', status: '200' })).toBe(1);
    if (c.outcome === 'completed') {
      expect(res.body).toBe(buildEmptyTwiml());
      await waitForLog(h, (l) => l.msg === 'stream action: call over' && l.callSid === callSid);
    } else if (c.outcome === 'give-up') {
      expect(res.body).toContain('<Say>');
      expect(res.body).toContain('<Hangup/>');
      expect(res.body).not.toContain('<Stream');
      expect(await h.metric('media_errors_total', { code: c.code! })).toBe(1);
      const line = await waitForLog(h, (l) => l.code === 'MEDIA_ERR_RECONNECT_LIMIT');
      expect(line).toMatchObject({ level: 'warn', callSid, limit: 3, reconnectsBefore: 3 });
    } else {
      // A fresh stream: same URL, status callback and a new valid token, plus the next state.
      expect(res.body).toContain(`<Stream url="wss://edge.example.com/media-stream/${callSid}"`);
      expect(res.body).toContain('statusCallback="https://edge.example.com/media-stream/status"');
      const token = /<Parameter name="callToken" value="([^"]+)"\/>/.exec(res.body)?.[1];
      expect(verifyCallToken({ secret, callSid, token })).toMatchObject({ ok: true });
      const next = decodeStreamActionState(secret, callSid, connectAction(res.body)!.searchParams);
      expect(next).toMatchObject({ ok: true, state: { reconnects: c.nextReconnects } });
      const line = await waitForLog(h, (l) => l.msg === 'stream action: new stream offered');
      expect(line).toMatchObject({ callSid, reconnect: c.nextReconnects });
      expect(line.streamLastedMs).toBeGreaterThanOrEqual(2000);
    }
  });

  it('without any secret trusts the plain state (development)', async () => {
    const h = await startWorker();
    const res = await postAction(h, stateQuery(0, 10, false), actionParams('in-progress'), 'none');
    expect(res.status).toBe(200);
    const next = connectAction(res.body);
    expect(next?.searchParams.get('r')).toBe('1');
    expect(next?.searchParams.has('sig')).toBe(false);
  });
});

function s(reconnects: number, offeredAtMs: number) {
  return { reconnects, offeredAtMs };
}
