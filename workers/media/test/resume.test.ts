import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readWav } from '@callgate/audio';
import { decodeBase64Strict } from '@callgate/protocol';
import { RESUME_HEADER, signResumeVouch } from '@callgate/runtime';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { signCallToken } from '../src/index.js';
import {
  BASE_CONFIG,
  TONE_FRAME,
  TestClient,
  httpRequest,
  newSids,
  scriptAgent,
  startWorker,
  twilio,
  waitForLog,
  type WorkerHarness,
} from './helpers.js';

const SECRET = 'a-test-secret-of-32-characters!!';
type Sids = { callSid: string; streamSid: string };

/** The headers the proxy adds when it moves a call: its tunnel id and a vouch for the path. */
function resumeHeaders(
  path: string,
  options: {
    secret?: string | undefined;
    attempt?: number;
    issuedAtMs?: number;
    tunnelId?: string;
    vouchTunnelId?: string;
  } = {},
): Record<string, string> {
  const tunnelId = options.tunnelId ?? randomUUID();
  const vouch = signResumeVouch({
    secret: 'secret' in options ? options.secret : SECRET,
    issuedAtMs: options.issuedAtMs ?? Date.now(),
    attempt: options.attempt ?? 1,
    path,
    tunnelId: options.vouchTunnelId ?? tunnelId,
  });
  return { 'X-Tunnel-Id': tunnelId, [RESUME_HEADER]: vouch };
}

/** A call token whose open-by time passed an hour ago (valid signature, this CallSid). */
const expiredToken = (callSid: string): string =>
  signCallToken({ secret: SECRET, callSid, ttlSeconds: 60, nowMs: Date.now() - 3_600_000 });

/** A resumed stream as the proxy replays it: the upgrade with a vouch, `connected`, `start`. */
async function resumeCall(
  h: WorkerHarness,
  sids: Sids,
  headers: Record<string, string>,
  customParameters: Record<string, string> = { callToken: expiredToken(sids.callSid) },
): Promise<TestClient> {
  const client = await TestClient.connect(`${h.wsUrl}/media-stream/${sids.callSid}`, headers);
  client.send(twilio.connected());
  client.send(twilio.start(sids, customParameters));
  return client;
}

async function waitForMetric(
  h: WorkerHarness,
  name: string,
  labels: Record<string, string>,
  value: number,
): Promise<void> {
  await vi.waitFor(async () => expect(await h.metric(name, labels)).toBe(value), {
    timeout: 5000,
    interval: 10,
  });
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'callgate-resume-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('a call the proxy moves to this worker (X-Callgate-Resume)', () => {
  it('accepts a valid vouch with an expired call token; the agent knows it is a resumption', async () => {
    const script = scriptAgent();
    const h = await startWorker({ callTokenSecret: SECRET }, script.agent);
    const sids = newSids();
    const path = `/media-stream/${sids.callSid}`;
    const client = await resumeCall(h, sids, resumeHeaders(path, { attempt: 2 }));
    await vi.waitFor(() => expect(script.calls).toHaveLength(1));
    expect(script.calls[0]!.info).toMatchObject({
      callId: sids.callSid,
      streamId: sids.streamSid,
      resumed: { attempt: 2 },
      customParameters: {}, // the token is still hidden
    });
    const started = await waitForLog(h, (l) => l.msg === 'call started');
    expect(started).toMatchObject({
      callSid: sids.callSid,
      resumeAttempt: 2,
      resumed: { attempt: 2, signed: true },
    });
    expect(await h.metric('media_calls_resumed_total', { provider: 'twilio' })).toBe(1);
    expect(client.ws.readyState).toBe(client.ws.OPEN);
  });

  it('still refuses the same expired token without a vouch (1008)', async () => {
    const script = scriptAgent();
    const h = await startWorker({ callTokenSecret: SECRET }, script.agent);
    const sids = newSids();
    const client = await resumeCall(h, sids, {});
    expect(await client.closed).toEqual({ code: 1008, reason: 'MEDIA_ERR_BAD_CALL_TOKEN' });
    expect(script.events).toEqual([]);
    expect(await h.metric('media_calls_resumed_total', { provider: 'twilio' })).toBe(0);
  });

  it.each([
    {
      name: 'a token for another call',
      token: () => signCallToken({ secret: SECRET, callSid: 'CAother', ttlSeconds: 60 }),
    },
    {
      name: 'a forged token',
      token: (callSid: string) =>
        signCallToken({ secret: 'not-the-secret', callSid, ttlSeconds: 60, nowMs: 0 }),
    },
    { name: 'no token', token: () => undefined },
  ])('refuses $name on a vouched stream (1008)', async (c) => {
    const script = scriptAgent();
    const h = await startWorker({ callTokenSecret: SECRET }, script.agent);
    const sids = newSids();
    const token = c.token(sids.callSid);
    const client = await resumeCall(
      h,
      sids,
      resumeHeaders(`/media-stream/${sids.callSid}`),
      token === undefined ? {} : { callToken: token },
    );
    expect(await client.closed).toEqual({ code: 1008, reason: 'MEDIA_ERR_BAD_CALL_TOKEN' });
    expect(script.events).toEqual([]);
  });

  const refusals: Array<{
    name: string;
    reason: string;
    headers: (path: string) => Record<string, string>;
  }> = [
    {
      name: 'signed with another secret',
      reason: 'bad-signature',
      headers: (path) => resumeHeaders(path, { secret: 'not-the-secret' }),
    },
    {
      name: 'for another tunnel',
      reason: 'bad-signature',
      headers: (path) => resumeHeaders(path, { vouchTunnelId: 'another-tunnel' }),
    },
    {
      name: 'for another path',
      reason: 'bad-signature',
      headers: () => resumeHeaders('/media-stream/CA0000000000000000000000000000ffff'),
    },
    {
      name: 'stale (issued 60 s ago)',
      reason: 'stale',
      headers: (path) => resumeHeaders(path, { issuedAtMs: Date.now() - 60_000 }),
    },
    {
      name: 'unsigned while CALL_TOKEN_SECRET is set',
      reason: 'unsigned',
      headers: (path) => resumeHeaders(path, { secret: undefined }),
    },
    {
      name: 'malformed',
      reason: 'malformed',
      headers: () => ({ 'X-Tunnel-Id': randomUUID(), [RESUME_HEADER]: 'yes please' }),
    },
  ];

  it.each(refusals)('refuses a vouch $name with 403 MEDIA_ERR_BAD_RESUME_VOUCH', async (c) => {
    const script = scriptAgent();
    const h = await startWorker({ callTokenSecret: SECRET }, script.agent);
    const sids = newSids();
    const path = `/media-stream/${sids.callSid}`;
    const reply = await httpRequest(`${h.url}${path}`, {
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        'Sec-WebSocket-Version': '13',
        ...c.headers(path),
      },
    });
    expect(reply.status).toBe(403);
    expect(JSON.parse(reply.body)).toEqual({
      error: { code: 'MEDIA_ERR_BAD_RESUME_VOUCH', message: `resume vouch ${c.reason}` },
    });
    expect(await h.metric('media_errors_total', { code: 'MEDIA_ERR_BAD_RESUME_VOUCH' })).toBe(1);
    expect(await h.metric('media_resume_refused_total', { reason: c.reason })).toBe(1);
    const line = await waitForLog(h, (l) => l.msg === 'resume vouch refused');
    expect(line).toMatchObject({
      level: 'warn',
      code: 'MEDIA_ERR_BAD_RESUME_VOUCH',
      reason: c.reason,
      callSid: sids.callSid,
    });
    expect(script.events).toEqual([]);
  });

  it('refuses a bad vouch through a real WebSocket client too', async () => {
    const h = await startWorker({ callTokenSecret: SECRET });
    const sids = newSids();
    const path = `/media-stream/${sids.callSid}`;
    await expect(
      TestClient.connect(`${h.wsUrl}${path}`, resumeHeaders(path, { secret: 'forged' })),
    ).rejects.toThrow('upgrade refused with 403');
  });

  it('without CALL_TOKEN_SECRET accepts an unsigned vouch (nothing to check it with)', async () => {
    const script = scriptAgent();
    const h = await startWorker({}, script.agent);
    const sids = newSids();
    const path = `/media-stream/${sids.callSid}`;
    await resumeCall(h, sids, resumeHeaders(path, { secret: undefined, attempt: 3 }), {});
    await vi.waitFor(() => expect(script.calls).toHaveLength(1));
    expect(script.calls[0]!.info.resumed).toEqual({ attempt: 3 });
    const started = await waitForLog(h, (l) => l.msg === 'call started');
    expect(started.resumed).toEqual({ attempt: 3, signed: false });
  });

  it('runs a stream starting at sequence 5000 with foreign mark echoes normally', async () => {
    const script = scriptAgent();
    const h = await startWorker({ callTokenSecret: SECRET }, script.agent);
    const sids = newSids();
    const client = await resumeCall(h, sids, resumeHeaders(`/media-stream/${sids.callSid}`));
    // Live media continues from where the call is: sequence 5000 on, with a jump.
    const chunks = [4999, 5000, 5001, 5002, 5300, 5301];
    for (const chunk of chunks) client.send(twilio.media(sids.streamSid, chunk, TONE_FRAME));
    // Echoes of marks the previous worker sent.
    client.send(twilio.mark(sids.streamSid, 'u-from-the-old-worker-1'));
    client.send(twilio.mark(sids.streamSid, 'u-from-the-old-worker-2'));
    await vi.waitFor(() => expect(script.frames.get(sids.callSid)).toBeGreaterThanOrEqual(6));
    await waitForMetric(h, 'media_resumed_marks_ignored_total', { provider: 'twilio' }, 2);

    client.send(twilio.dtmf(sids.streamSid, '1'));
    const mark = await client.next((m) => m.event === 'mark');
    const media = client.messages.filter((m) => m.event === 'media');
    expect(media).toHaveLength(5);
    for (const m of media) {
      expect(Object.keys(m).sort()).toEqual(['event', 'media', 'streamSid']);
      expect(m.streamSid).toBe(sids.streamSid);
      const payload = (m.media as { payload: string }).payload;
      expect(decodeBase64Strict(payload).byteLength).toBe(160);
    }
    expect(mark.streamSid).toBe(sids.streamSid);
    // Its own marks still count as played.
    client.send(twilio.mark(sids.streamSid, (mark.mark as { name: string }).name));
    await waitForMetric(h, 'media_marks_acked_total', { provider: 'twilio', outcome: 'played' }, 1);

    expect(client.ws.readyState).toBe(client.ws.OPEN);
    expect(await h.metric('media_resumed_marks_ignored_total', { provider: 'twilio' })).toBe(2);
    // Quietly: no warning per foreign echo, no bad message, no error counted.
    expect(h.logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    expect(await h.metric('media_errors_total', { code: 'AGENT_ERR_UNKNOWN_MARK' })).toBe(0);

    client.send(twilio.stop(sids));
    expect(await client.closed).toEqual({ code: 1000, reason: 'stop received' });
    const ended = await waitForLog(h, (l) => l.msg === 'call ended');
    expect(ended).toMatchObject({ reason: 'caller-hangup', stats: { foreignMarksIgnored: 2 } });
  });

  it('does not count foreign mark echoes as bad messages on a resumed call (any number of them)', async () => {
    const h = await startWorker({ callTokenSecret: SECRET });
    const sids = newSids();
    const client = await resumeCall(h, sids, resumeHeaders(`/media-stream/${sids.callSid}`));
    // More than MAX_BAD_MESSAGES (3 here): on a fresh call this many would close it with 1008.
    const n = BASE_CONFIG.maxBadMessages + 3;
    for (let i = 0; i < n; i++) client.send(twilio.mark(sids.streamSid, `u-old-${i}`));
    await waitForMetric(h, 'media_resumed_marks_ignored_total', { provider: 'twilio' }, n);
    expect(client.ws.readyState).toBe(client.ws.OPEN);
    expect(await h.metric('media_errors_total', { code: 'MEDIA_ERR_UNKNOWN_MARK' })).toBe(0);
    client.send(twilio.stop(sids));
    expect(await client.closed).toEqual({ code: 1000, reason: 'stop received' });
  });

  it('times a moved call by its own marks only: echoes of old ones neither shed it nor hide a stuck reader', async () => {
    const script = scriptAgent();
    const h = await startWorker(
      { callTokenSecret: SECRET, stuckReaderMs: 400, noMediaTimeoutMs: 1000 },
      script.agent,
    );
    const sids = newSids();
    const client = await resumeCall(h, sids, resumeHeaders(`/media-stream/${sids.callSid}`));
    // Live media from sequence 5000 on, as after a move.
    let chunk = 5000;
    const feed = setInterval(() => {
      if (client.ws.readyState === client.ws.OPEN)
        client.send(twilio.media(sids.streamSid, chunk++, TONE_FRAME));
    }, 20);
    onTestFinished(() => clearInterval(feed));
    // The old worker's marks are never echoed to this one; late echoes of some do arrive.
    client.send(twilio.mark(sids.streamSid, 'u-from-the-old-worker-1'));
    // This worker's own mark, echoed promptly: well past STUCK_READER_MS the call is fine.
    client.send(twilio.dtmf(sids.streamSid, '1'));
    const own = await client.next((m) => m.event === 'mark');
    client.send(twilio.mark(sids.streamSid, (own.mark as { name: string }).name));
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(client.ws.readyState).toBe(client.ws.OPEN);
    expect(await h.metric('media_sessions_shed_total')).toBe(0);
    // An own mark left unechoed still sheds a moved call.
    client.send(twilio.dtmf(sids.streamSid, '1'));
    const closed = await client.closed;
    expect(closed.code).toBe(1013);
    const ended = await waitForLog(h, (l) => l.msg === 'call ended' && l.callSid === sids.callSid);
    expect(ended).toMatchObject({ reason: 'slow-reader' });
  });

  it('warns about an unknown mark on a call that was not moved, as before', async () => {
    const h = await startWorker();
    const sids = newSids();
    const client = await TestClient.connect(`${h.wsUrl}/media-stream/${sids.callSid}`);
    client.send(twilio.connected());
    client.send(twilio.start(sids));
    await waitForLog(h, (l) => l.msg === 'call started');
    client.send(twilio.mark(sids.streamSid, 'never-sent'));
    await waitForLog(h, (l) => l.msg === 'unknown mark ignored');
    expect(await h.metric('media_resumed_marks_ignored_total', { provider: 'twilio' })).toBe(0);
  });
});

describe('a call moved at the drain deadline, recorded on two workers', () => {
  it('closes with 1012 and nothing else, and both segments are found by the CallSid', async () => {
    const dir = await tempDir();
    const first = await startWorker({ callTokenSecret: SECRET, recordingsDir: dir });
    const second = await startWorker({ callTokenSecret: SECRET, recordingsDir: dir });
    const sids = newSids();
    const path = `/media-stream/${sids.callSid}`;
    const tunnelId = randomUUID();
    const token = signCallToken({ secret: SECRET, callSid: sids.callSid, ttlSeconds: 60 });

    // Segment 1: the call as it started, mid-utterance at the first worker's drain deadline.
    const a = await TestClient.connect(`${first.wsUrl}${path}`, { 'X-Tunnel-Id': tunnelId });
    a.send(twilio.connected());
    a.send(twilio.start(sids, { callToken: token }));
    for (let i = 1; i <= 10; i++) a.send(twilio.media(sids.streamSid, i, TONE_FRAME));
    a.send(twilio.dtmf(sids.streamSid, '2')); // a 2 s reply
    await a.next((m) => m.event === 'media' && a.count('media') >= 10);
    await first.worker.destroy(); // the drain deadline: resolves once recordings are written
    expect(await a.closed).toEqual({ code: 1012, reason: 'service restart' });
    // Nothing but the reply's audio went out before the close: no clear, no mark, no stop.
    expect(new Set(a.messages.map((m) => m.event))).toEqual(new Set(['media']));
    expect(
      await first.metric('media_calls_finished_total', {
        provider: 'twilio',
        reason: 'service-restart',
      }),
    ).toBe(1);

    // Segment 2: the proxy replays the upgrade and `start` on the second worker.
    const b = await resumeCall(second, sids, resumeHeaders(path, { tunnelId }), {
      callToken: token,
    });
    for (let i = 0; i < 10; i++) b.send(twilio.media(sids.streamSid, 5000 + i, TONE_FRAME));
    b.send(twilio.dtmf(sids.streamSid, '1'));
    await b.next((m) => m.event === 'mark');
    b.send(twilio.stop(sids));
    await b.closed;
    await second.worker.close();

    const files = (await readdir(dir)).filter((f) => f.startsWith(`${sids.callSid}-`)).sort();
    expect(files).toHaveLength(4);
    const sidecars = await Promise.all(
      files
        .filter((f) => f.endsWith('.json'))
        .map(async (f) => JSON.parse(await readFile(join(dir, f), 'utf8')) as Summary),
    );
    sidecars.sort((x, y) => x.segment.startedAt.localeCompare(y.segment.startedAt));
    const [one, two] = sidecars as [Summary, Summary];
    expect(one).toMatchObject({
      callSid: sids.callSid,
      streamSid: sids.streamSid,
      reason: 'service-restart',
      closeCode: 1012,
      segment: { resumed: false },
    });
    expect(two).toMatchObject({
      callSid: sids.callSid,
      streamSid: sids.streamSid,
      reason: 'caller-hangup',
      segment: { resumed: true, attempt: 1, tunnelId, vouchSigned: true },
    });
    // The resumed stream's media.timestamp (100 s in) is this file's time 0.
    expect(two.segment.callerTimestampOffsetMs).toBeGreaterThan(90_000);
    expect(two.recording.wav).toMatch(/-r1-\d{8}T\d{9}Z\.wav$/);
    for (const s of sidecars) {
      const wav = readWav(await readFile(s.recording.wav));
      expect(wav).toMatchObject({ sampleRate: 8000, channels: 2 });
      // Caller tone in every segment (200 ms each), at the start of the resumed one.
      let voiced = 0;
      for (let i = 0; i < wav.samples.length; i += 2) if (wav.samples[i] !== 0) voiced++;
      expect(voiced).toBeGreaterThan(1500);
    }
  });
});

interface Summary {
  callSid: string;
  reason: string;
  segment: { startedAt: string; resumed: boolean; callerTimestampOffsetMs?: number };
  recording: { wav: string };
}
