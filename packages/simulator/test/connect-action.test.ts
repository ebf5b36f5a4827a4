import type { IncomingMessage, ServerResponse } from 'node:http';
import { mulawEncode } from '@callgate/audio';
import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks.js';
import { describe, expect, it, onTestFinished } from 'vitest';
import { main } from '../src/cli.js';
import { simulateCall, type SimEvent } from '../src/index.js';
import {
  loudTone,
  startScriptedWorker,
  type ScriptedWorker,
  type WorkerConnection,
} from './scripted-worker.js';

const authToken = 'sim-action-token';
const callSid = 'CA0000000000000000000000000000acts';
const b64 = (pcm: Int16Array): string => Buffer.from(mulawEncode(pcm)).toString('base64');

interface ActionRequest {
  url: string;
  params: Record<string, string>;
  signature: string | undefined;
}

/**
 * A scripted worker that also answers the voice webhook and the action URL. `actionAnswers` is
 * the TwiML for each action request in turn (a function gets the worker's origin);
 * `onStream(i, conn)` plays stream i.
 */
async function actionWorker(options: {
  actionAnswers: Array<(origin: string, n: number) => string>;
  onStream: (index: number, conn: WorkerConnection) => void;
}): Promise<{ w: ScriptedWorker; actions: ActionRequest[] }> {
  const actions: ActionRequest[] = [];
  let streams = 0;
  let origin = '';
  const http = (): string => origin.replace('ws:', 'http:');
  const send = (res: ServerResponse, xml: string, status = 200): void => {
    res.writeHead(status, { 'content-type': 'text/xml' }).end(xml);
  };
  const w = await startScriptedWorker({
    onConnection: (conn) => options.onStream(streams++, conn),
    onRequest: (req: IncomingMessage, res, body) => {
      const url = new URL(req.url ?? '/', http());
      const params = Object.fromEntries(new URLSearchParams(body));
      if (url.pathname === '/media-stream/twiml') {
        send(res, streamTwiml(origin, 0));
      } else if (url.pathname === '/media-stream/action') {
        const header = req.headers['x-twilio-signature'];
        actions.push({
          url: url.toString(),
          params,
          signature: Array.isArray(header) ? header[0] : header,
        });
        const answer = options.actionAnswers[actions.length - 1];
        if (answer === undefined) send(res, 'no more answers', 500);
        else send(res, answer(origin, actions.length));
      } else {
        res.writeHead(404).end();
      }
    },
  });
  origin = w.origin;
  onTestFinished(() => w.close());
  return { w, actions };
}

/** `<Connect action><Stream>` as the media worker writes it, with state n in the action query. */
function streamTwiml(origin: string, n: number): string {
  const http = origin.replace('ws:', 'http:');
  return (
    `<?xml version="1.0" encoding="UTF-8"?><Response>` +
    `<Connect action="${http}/media-stream/action?r=${n}&amp;at=5" method="POST">` +
    `<Stream url="${origin}/media-stream/${callSid}"><Parameter name="callToken" value="t${n}"/>` +
    `</Stream></Connect></Response>`
  );
}

/** Each stream: answer `start` with 200 ms of tone; the first one is then closed with `code`. */
function closeFirstWith(code: number | 'cut') {
  return (index: number, conn: WorkerConnection): void => {
    void conn
      .waitFor((m) => m.event === 'start')
      .then((start) => {
        const streamSid = String(start.streamSid);
        for (let i = 0; i < 10; i++) {
          conn.sendJson({
            event: 'media',
            streamSid,
            media: { payload: b64(loudTone(160)) },
          });
        }
        if (index > 0) return;
        if (code === 'cut') conn.ws.terminate();
        else conn.ws.close(code, 'service restart');
      });
  };
}

async function call(w: ScriptedWorker, extra: Partial<Parameters<typeof simulateCall>[0]> = {}) {
  const events: SimEvent[] = [];
  const summary = await simulateCall({
    url: '',
    callSid,
    twimlUrl: `${w.origin.replace('ws:', 'http:')}/media-stream/twiml`,
    authToken,
    hangupAfterMs: 1500,
    onEvent: (e) => events.push(e),
    ...extra,
  });
  return { summary, events };
}

describe('<Connect action> (Twilio after a server close frame)', () => {
  it('on a 1012 requests the signed action URL and continues on a new stream with a new streamSid', async () => {
    const { w, actions } = await actionWorker({
      actionAnswers: [(origin, n) => streamTwiml(origin, n)],
      onStream: closeFirstWith(1012),
    });
    const { summary, events } = await call(w);

    expect(actions).toHaveLength(1);
    const action = actions[0]!;
    expect(action.url).toBe(`${w.origin.replace('ws:', 'http:')}/media-stream/action?r=0&at=5`);
    expect(action.params).toMatchObject({ CallSid: callSid, CallStatus: 'in-progress' });
    expect(action.signature).toBe(getExpectedTwilioSignature(authToken, action.url, action.params));

    expect(w.connections).toHaveLength(2);
    const [first, second] = w.connections;
    const start1 = await first!.waitFor((m) => m.event === 'start');
    const start2 = await second!.waitFor((m) => m.event === 'start');
    expect(start2.streamSid).not.toBe(start1.streamSid);
    expect(start2).toMatchObject({
      sequenceNumber: '1',
      start: { callSid, customParameters: { callToken: 't1' } },
    });
    expect((start1.start as { customParameters: unknown }).customParameters).toEqual({
      callToken: 't0',
    });
    expect(second!.raw[0]).toContain('"event":"connected"');
    // The new stream's media counts from its own start.
    const media2 = await second!.waitFor((m) => m.event === 'media');
    expect(media2).toMatchObject({
      streamSid: start2.streamSid,
      sequenceNumber: '2',
      media: { chunk: '1', timestamp: '0' },
    });
    // Nothing of the new stream went to the old one and vice versa.
    expect(
      second!.messages.every((m) => m.event === 'connected' || m.streamSid === start2.streamSid),
    ).toBe(true);

    expect(summary).toMatchObject({
      reconnects: 1,
      actionRequests: 1,
      actionResult: 'stream',
      streamSids: [start1.streamSid, start2.streamSid],
      streamSid: start2.streamSid,
      closedBy: 'caller',
      customParameters: { callToken: 't1' },
    });
    expect(summary.reconnectGapsMs[0]).toBeLessThan(1000);
    expect(summary.protocolErrors).toEqual([]);
    const kinds = events.map((e) => e.type).filter((t) => t !== 'media' && t !== 'reply-start');
    expect(kinds).toEqual(['open', 'stream-end', 'open', 'reconnect', 'close']);
    expect(events.find((e) => e.type === 'stream-end')).toMatchObject({
      code: 1012,
      reason: 'service restart',
      streamSid: start1.streamSid,
    });
  });

  it.each([
    {
      name: 'an empty <Response/>',
      answer: '<?xml version="1.0" encoding="UTF-8"?><Response/>',
      result: 'empty',
    },
    {
      name: '<Say> then <Hangup/>',
      answer: '<Response><Say>Sorry.</Say><Hangup/></Response>',
      result: 'hangup',
    },
  ])('ends the call on $name', async ({ answer, result }) => {
    const { w, actions } = await actionWorker({
      actionAnswers: [() => answer],
      onStream: closeFirstWith(1012),
    });
    const { summary } = await call(w, { hangupAfterMs: 10_000 });
    expect(actions).toHaveLength(1);
    expect(w.connections).toHaveLength(1);
    expect(summary).toMatchObject({
      reconnects: 0,
      actionRequests: 1,
      actionResult: result,
      closedBy: 'server',
      closeCode: 1012,
    });
    expect(summary.durationMs).toBeLessThan(5000);
  });

  it('does not request the action URL when the connection is cut without a close frame', async () => {
    const { w, actions } = await actionWorker({
      actionAnswers: [(origin, n) => streamTwiml(origin, n)],
      onStream: closeFirstWith('cut'),
    });
    const { summary, events } = await call(w, { hangupAfterMs: 10_000 });
    expect(actions).toHaveLength(0);
    expect(summary).toMatchObject({ closeCode: 1006, closedBy: 'server', actionRequests: 0 });
    expect(events.some((e) => e.type === 'stream-end')).toBe(false);
  });

  it('with followAction false ends on the close frame like a plain stream', async () => {
    const { w, actions } = await actionWorker({
      actionAnswers: [(origin, n) => streamTwiml(origin, n)],
      onStream: closeFirstWith(1012),
    });
    const { summary } = await call(w, { hangupAfterMs: 10_000, followAction: false });
    expect(actions).toHaveLength(0);
    expect(summary).toMatchObject({ closeCode: 1012, reconnects: 0, actionResult: null });
  });

  it('ends the call when the action URL fails, and records why', async () => {
    const { w, actions } = await actionWorker({
      actionAnswers: [],
      onStream: closeFirstWith(1012),
    });
    const { summary } = await call(w, { hangupAfterMs: 10_000 });
    expect(actions).toHaveLength(1);
    expect(summary).toMatchObject({ actionResult: 'error', closeCode: 1012, closedBy: 'server' });
    expect(summary.protocolErrors).toEqual([
      expect.objectContaining({ code: 'SIM_ERR_TWIML', message: expect.stringContaining('500') }),
    ]);
  });

  it('stops after maxReconnects even when the server offers streams forever', async () => {
    const forever = (origin: string, n: number): string => streamTwiml(origin, n);
    const { w, actions } = await actionWorker({
      actionAnswers: Array.from({ length: 10 }, () => forever),
      // Every stream is closed with 1011 as soon as it starts.
      onStream: (_i, conn) => {
        void conn.waitFor((m) => m.event === 'start').then(() => conn.ws.close(1011, 'broken'));
      },
    });
    const { summary } = await call(w, { hangupAfterMs: 10_000, maxReconnects: 2 });
    expect(summary).toMatchObject({ reconnects: 2, closeCode: 1011, closedBy: 'server' });
    expect(summary.closeReason).toContain('gave up after 2');
    expect(actions).toHaveLength(3);
    expect(w.connections).toHaveLength(3);
  });

  it('the CLI follows the action and prints the reconnect', async () => {
    const { w } = await actionWorker({
      actionAnswers: [(origin, n) => streamTwiml(origin, n)],
      onStream: closeFirstWith(1012),
    });
    let out = '';
    let err = '';
    const code = await main(
      [
        '--url',
        `${w.origin}/media-stream/${callSid}`,
        '--hangup-after-ms',
        '1500',
        '--auth-token',
        authToken,
      ],
      {
        stdout: { write: (t: string) => (out += t) },
        stderr: { write: (t: string) => (err += t) },
      },
    );
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toMatch(/reconnects {2}1 \(action requests 1, last answer stream; gaps \d+ ms\)/);
    expect(w.connections).toHaveLength(2);
  });
});
