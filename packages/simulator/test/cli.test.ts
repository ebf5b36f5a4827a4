import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeWav, mulawEncode, readWav } from '@callgate/audio';
import { describe, expect, it, onTestFinished } from 'vitest';
import { USAGE, main, parseCliArgs, parseDtmfList, synthesizeBursts, toMono } from '../src/cli.js';
import { detectSegments } from '../src/index.js';
import { loudTone, startScriptedWorker } from './scripted-worker.js';

function io() {
  let stdout = '';
  let stderr = '';
  return {
    io: {
      stdout: { write: (t: string) => (stdout += t) },
      stderr: { write: (t: string) => (stderr += t) },
    },
    out: () => stdout,
    err: () => stderr,
  };
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'callgate-sim-'));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('cli', () => {
  it('prints the usage with every flag for --help', async () => {
    const t = io();
    expect(await main(['--help'], t.io)).toBe(0);
    for (const flag of [
      '--url',
      '--wav',
      '--out',
      '--dtmf',
      '--param',
      '--provider',
      '--auth-token',
      '--signature-url',
      '--twiml-url',
      '--no-twiml',
      '--hangup-after-ms',
      '--tail-ms',
      '--json',
      '--help',
    ]) {
      expect(t.out()).toContain(flag);
    }
    expect(t.out()).toBe(USAGE);
  });

  it.each([
    [['--url', 'http://x/media-stream'], 'ws:// or wss://'],
    [[], '--url is required'],
    [['--url', 'ws://x/m', '--provider', 'sip'], '--provider'],
    [['--url', 'ws://x/m', '--dtmf', '5at100'], '--dtmf'],
    [['--url', 'ws://x/m', '--param', 'novalue'], '--param'],
    [['--url', 'ws://x/m', '--tail-ms', '-5'], '--tail-ms'],
    [['--url', 'ws://x/m', '--bogus'], 'bogus'],
  ])('rejects %j with SIM_ERR_USAGE', async (argv, text) => {
    const t = io();
    expect(await main(argv, t.io)).toBe(1);
    expect(t.err()).toContain('error SIM_ERR_USAGE');
    expect(t.err()).toContain(text);
    expect(t.err()).toContain('hint: see --help');
  });

  it('maps flags to call options', () => {
    const parsed = parseCliArgs([
      '--url',
      'ws://127.0.0.1:8080/media-stream/CA1',
      '--param',
      'a=b',
      '--param',
      'c=d=e',
      '--dtmf',
      '5@2500,#@6000',
      '--auth-token',
      'tok',
      '--signature-url',
      'wss://pub/media-stream/CA1',
      '--hangup-after-ms',
      '9000',
      '--tail-ms',
      '100',
      '--json',
      '--out',
      'r.wav',
    ]);
    expect(parsed).toEqual({
      options: {
        url: 'ws://127.0.0.1:8080/media-stream/CA1',
        provider: 'twilio',
        twimlUrl: 'http://127.0.0.1:8080/media-stream/twiml',
        customParameters: { a: 'b', c: 'd=e' },
        dtmf: [
          { digit: '5', atMs: 2500 },
          { digit: '#', atMs: 6000 },
        ],
        authToken: 'tok',
        signatureUrl: 'wss://pub/media-stream/CA1',
        hangupAfterMs: 9000,
        tailMs: 100,
      },
      wav: undefined,
      out: 'r.wav',
      json: true,
    });
    expect(parseCliArgs(['--url', 'ws://h/m', '--no-twiml'])).toMatchObject({
      options: { url: 'ws://h/m', provider: 'twilio' },
    });
    expect(parseCliArgs(['--url', 'ws://h/m', '--no-twiml'])).not.toHaveProperty(
      'options.twimlUrl',
    );
    expect(
      parseCliArgs([
        '--url',
        'ws://h/media-stream',
        '--provider',
        'sanspbx',
        '--sample-rate',
        '16000',
      ]),
    ).toMatchObject({
      options: { provider: 'sanspbx', sansPbxSampleRate: 16000 },
    });
  });

  it.each([
    ['1@0', [{ digit: '1', atMs: 0 }]],
    [
      '*@10, a@20 ,',
      [
        { digit: '*', atMs: 10 },
        { digit: 'A', atMs: 20 },
      ],
    ],
  ])('parses --dtmf %s', (list, expected) => {
    expect(parseDtmfList(list)).toEqual(expected);
  });

  it('mixes stereo to mono', () => {
    expect([...toMono(Int16Array.of(100, 300, -10, -20), 2)]).toEqual([200, -15]);
  });

  it('synthesizes two utterances when no --wav is given', () => {
    expect(detectSegments(synthesizeBursts(8000), 8000)).toHaveLength(2);
  });

  it('places a call through the voice webhook and writes what the caller heard as a WAV', async () => {
    const webhooks: string[] = [];
    const w = await startScriptedWorker({
      onRequest: (req, res, body) => {
        webhooks.push(
          `${req.method ?? ''} ${req.url ?? ''} ${new URLSearchParams(body).get('CallSid') ?? ''}`,
        );
        res.writeHead(200, { 'content-type': 'text/xml' });
        res.end(
          '<Response><Connect><Stream url="wss://public.example/media-stream"><Parameter name="callToken" value="abc"/></Stream></Connect></Response>',
        );
      },
      onConnection: (c) => {
        void c
          .waitFor((m) => m['event'] === 'start')
          .then((start) => {
            const payload = Buffer.from(mulawEncode(loudTone(100))).toString('base64');
            c.sendJson({ event: 'media', streamSid: start['streamSid'], media: { payload } });
            c.sendJson({ event: 'mark', streamSid: start['streamSid'], mark: { name: 'u1' } });
          });
      },
    });
    onTestFinished(() => w.close());
    const dir = await tempDir();
    const wav = join(dir, 'in.wav');
    const out = join(dir, 'reply.wav');
    // 16 kHz stereo input: the CLI mixes it down and resamples it to 8 kHz.
    const tone = loudTone(100, 16000);
    const stereo = new Int16Array(tone.length * 2);
    tone.forEach((s, i) => {
      stereo[i * 2] = s;
      stereo[i * 2 + 1] = s;
    });
    await writeFile(wav, encodeWav({ sampleRate: 16000, channels: 2, samples: stereo }));

    const callSid = 'CA0123456789abcdef0123456789abcdef';
    const t = io();
    const code = await main(
      [
        '--url',
        `${w.origin}/media-stream/${callSid}`,
        '--wav',
        wav,
        '--out',
        out,
        '--hangup-after-ms',
        '400',
        '--dtmf',
        '7@60',
        '--param',
        'lang=en',
      ],
      t.io,
    );
    expect(t.err()).toBe('');
    expect(code).toBe(0);
    expect(webhooks).toEqual([`POST /media-stream/twiml ${callSid}`]);
    const start = w.connections[0]!.messages.find((m) => m['event'] === 'start')!;
    expect((start['start'] as Record<string, unknown>)['customParameters']).toEqual({
      callToken: 'abc',
      lang: 'en',
    });
    expect(t.out()).toContain(`call ${callSid} (twilio)`);
    expect(t.out()).toContain('audio       frames sent 20, received 5 in 1 audio message');
    expect(t.out()).toContain('marks       received 1, acked 1 (0 on clear)');
    expect(t.out()).toContain('dtmf        sent 1');
    expect(t.out()).toMatch(/#1 ended 0\.\d\d s/);

    const heard = readWav(await readFile(out));
    expect(heard.sampleRate).toBe(8000);
    expect(heard.channels).toBe(1);
    expect(heard.samples.length).toBe(20 * 160);
    expect(heard.samples.some((s) => Math.abs(s) > 4000)).toBe(true);
  });

  it('prints the summary as JSON with --json', async () => {
    const w = await startScriptedWorker();
    onTestFinished(() => w.close());
    const t = io();
    const code = await main(
      ['--url', `${w.origin}/media-stream`, '--no-twiml', '--json', '--hangup-after-ms', '100'],
      t.io,
    );
    expect(code).toBe(0);
    const summary = JSON.parse(t.out()) as Record<string, unknown>;
    expect(summary).toMatchObject({
      provider: 'twilio',
      audioFramesSent: 5,
      closedBy: 'caller',
      replyAudioSamples: 800,
    });
    expect(summary).not.toHaveProperty('replyAudio');
    expect(summary['replies']).toHaveLength(2);
  });

  it('fails with the error code and a hint when nothing listens', async () => {
    const w = await startScriptedWorker();
    const port = w.port;
    await w.close();
    const t = io();
    expect(await main(['--url', `ws://127.0.0.1:${port}/media-stream`, '--no-twiml'], t.io)).toBe(
      1,
    );
    expect(t.err()).toMatch(/^error SIM_ERR_CONNECT: .*ECONNREFUSED/);
    expect(t.err()).toContain('is `npm start` running?');
    expect(t.out()).toBe('');
  });

  it('hints at --no-twiml when the webhook is missing', async () => {
    const w = await startScriptedWorker();
    onTestFinished(() => w.close());
    const t = io();
    expect(await main(['--url', `${w.origin}/media-stream`], t.io)).toBe(1);
    expect(t.err()).toContain('error SIM_ERR_TWIML');
    expect(t.err()).toContain('--no-twiml');
  });

  it('reports a WAV that is not 16-bit PCM', async () => {
    const dir = await tempDir();
    const bad = join(dir, 'bad.wav');
    await writeFile(bad, 'not a wav at all');
    const t = io();
    expect(await main(['--url', 'ws://127.0.0.1:9/media-stream', '--wav', bad], t.io)).toBe(1);
    expect(t.err()).toContain('AUDIO_ERR_WAV');
    expect(t.err()).toContain('16-bit PCM');
  });
});
