import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { callSidsFor, entryPoints, spawnProcess, type SpawnedProcess } from '../helpers/index.js';

// A media worker that dies mid-call behind a proxy without call continuity (CALL_CONTINUITY=false,
// a plain relay): its callers' sockets close at once, every call on the other worker goes on
// undisturbed, and new calls go to the survivor. With continuity on (the default) those calls
// move to the survivor instead: call-continuity.e2e.test.ts.

const spawned: SpawnedProcess[] = [];
let workers: SpawnedProcess[];
let proxy: SpawnedProcess;

beforeAll(async () => {
  workers = await Promise.all(
    ['media-a', 'media-b'].map((name) =>
      spawnProcess(name, entryPoints.media, {
        env: { LOG_LEVEL: 'info', WORKER_ID: name, AGENT: 'echo' },
      }),
    ),
  );
  spawned.push(...workers);
  proxy = await spawnProcess('proxy', entryPoints.proxy, {
    env: {
      LOG_LEVEL: 'info',
      ADMIN_PORT: '0',
      MEDIA_BACKENDS: workers.map((w) => `127.0.0.1:${w.port}`).join(','),
      CALL_CONTINUITY: 'false',
    },
  });
  spawned.push(proxy);
});

afterAll(async () => {
  await Promise.all(spawned.map((p) => p.kill()));
});

const FRAME = Buffer.alloc(160, 0x55).toString('base64'); // 20 ms of a non-silent μ-law pattern

interface Call {
  ws: WebSocket;
  callSid: string;
  mediaIn: () => number;
  closed: Promise<number>;
  sendFrames(n: number): void;
}

/** A minimal Twilio caller: connected, start, then media frames on demand; counts media back. */
async function openCall(callSid: string): Promise<Call> {
  const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/media-stream/${callSid}`, {
    perMessageDeflate: false,
  });
  ws.on('error', () => {});
  let media = 0;
  ws.on('message', (data: Buffer) => {
    if ((JSON.parse(data.toString()) as { event: string }).event === 'media') media++;
  });
  const closed = once(ws, 'close').then(([code]) => code as number);
  await once(ws, 'open');
  const streamSid = `MZ${callSid.slice(2).padEnd(32, '0')}`;
  let seq = 0;
  let chunk = 0;
  ws.send(JSON.stringify({ event: 'connected', protocol: 'Call', version: '1.0.0' }));
  ws.send(
    JSON.stringify({
      event: 'start',
      sequenceNumber: String(++seq),
      streamSid,
      start: {
        accountSid: 'AC00000000000000000000000000000000',
        streamSid,
        callSid,
        tracks: ['inbound'],
        customParameters: {},
        mediaFormat: { encoding: 'audio/x-mulaw', sampleRate: 8000, channels: 1 },
      },
    }),
  );
  return {
    ws,
    callSid,
    mediaIn: () => media,
    closed,
    sendFrames(n) {
      for (let i = 0; i < n; i++) {
        chunk++;
        ws.send(
          JSON.stringify({
            event: 'media',
            sequenceNumber: String(++seq),
            streamSid,
            media: {
              track: 'inbound',
              chunk: String(chunk),
              timestamp: String(chunk * 20),
              payload: FRAME,
            },
          }),
        );
      }
    },
  };
}

/** Sends frames until the echo agent has answered with `atLeast` media messages. */
async function expectEchoes(call: Call, atLeast: number): Promise<void> {
  const target = call.mediaIn() + atLeast;
  for (let i = 0; i < 200 && call.mediaIn() < target; i++) {
    call.sendFrames(1);
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (call.mediaIn() < target) await once(call.ws, 'message');
  }
  expect(call.mediaIn()).toBeGreaterThanOrEqual(target);
}

function startedLine(callSid: string) {
  return (l: { msg?: string; callSid?: unknown }) =>
    l.msg === 'call started' && l.callSid === callSid;
}

async function waitForOwner(callSid: string): Promise<void> {
  await Promise.any(workers.map((w) => w.waitForLog(startedLine(callSid), 10_000)));
}

function ownerOf(callSid: string): SpawnedProcess {
  const owner = workers.find((w) => w.logs.some(startedLine(callSid)));
  if (!owner) throw new Error(`no worker logged ${callSid}`);
  return owner;
}

describe('a media worker dies mid-call', () => {
  it('drops only its own calls, at once; the other worker keeps its calls and takes new ones', async () => {
    // Two calls hashed to each worker (the proxy pins a CallSid by rendezvous hash).
    const ids = workers.map((w) => `127.0.0.1:${w.port}`);
    const sids = ids.flatMap((id, i) => callSidsFor(id, ids, 2, `c${i}`));
    const calls = await Promise.all(sids.map(openCall));
    for (const call of calls) await expectEchoes(call, 5);
    // Log lines travel through a pipe; wait until each call's worker has said so.
    await Promise.all(calls.map((c) => waitForOwner(c.callSid)));
    const victim = ownerOf(calls[0]!.callSid);
    const survivor = workers.find((w) => w !== victim)!;
    const victimCalls = calls.filter((c) => ownerOf(c.callSid) === victim);
    const survivorCalls = calls.filter((c) => ownerOf(c.callSid) === survivor);
    expect(victimCalls.length).toBe(2);
    expect(survivorCalls.length).toBe(2);

    victim.signal('SIGKILL');
    await victim.exited;

    // The proxy closes the dead worker's client sockets (the client sees an abnormal close).
    for (const call of victimCalls) expect(await call.closed).toBe(1006);
    // Every call on the survivor goes on.
    for (const call of survivorCalls) {
      expect(call.ws.readyState).toBe(WebSocket.OPEN);
      await expectEchoes(call, 5);
    }
    // New calls land on the survivor, invisibly to the caller (the dead backend refuses TCP).
    // Even CallSids that hashed to the dead worker: it is no longer a candidate.
    const victimId = ids[workers.indexOf(victim)]!;
    const fresh = await Promise.all(callSidsFor(victimId, ids, 2, 'f').map(openCall));
    for (const call of fresh) {
      await expectEchoes(call, 3);
      await waitForOwner(call.callSid);
      expect(ownerOf(call.callSid)).toBe(survivor);
    }
    for (const call of [...survivorCalls, ...fresh]) call.ws.close();
    await Promise.all([...survivorCalls, ...fresh].map((c) => c.closed));
  });
});
