import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WavFileWriter, encodeWav, readWav, tone } from '../src/index.js';

const dirs: string[] = [];
async function tempFile(name: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'callgate-wav-'));
  dirs.push(dir);
  return join(dir, name);
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

function chunk(id: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.write(id, 0, 'latin1');
  head.writeUInt32LE(body.length, 4);
  const pad = body.length % 2 ? Buffer.alloc(1) : Buffer.alloc(0);
  return Buffer.concat([head, body, pad]);
}

function fmt({ format = 1, channels = 1, rate = 8000, bits = 16, extra = 0 } = {}): Buffer {
  const b = Buffer.alloc(16 + extra);
  b.writeUInt16LE(format, 0);
  b.writeUInt16LE(channels, 2);
  b.writeUInt32LE(rate, 4);
  b.writeUInt32LE((rate * channels * bits) / 8, 8);
  b.writeUInt16LE((channels * bits) / 8, 12);
  b.writeUInt16LE(bits, 14);
  return b;
}

function riff(...chunks: Buffer[]): Buffer {
  const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), ...chunks]);
  const head = Buffer.alloc(8);
  head.write('RIFF', 0, 'latin1');
  head.writeUInt32LE(body.length, 4);
  return Buffer.concat([head, body]);
}

const pcmBytes = Buffer.from(Int16Array.of(1, -2, 300, -32768).buffer);

describe('encodeWav / readWav', () => {
  it.each([
    [8000, 1, Int16Array.of(1, 2, 3)],
    [48000, 2, Int16Array.of(1, -1, 2, -2)],
    [16000, 1, new Int16Array(0)],
  ])('round-trips %i Hz × %i channels', (sampleRate, channels, samples) => {
    const file = encodeWav({ sampleRate, channels, samples });
    expect(file.length).toBe(44 + samples.length * 2);
    expect(file.readUInt32LE(4)).toBe(file.length - 8);
    const back = readWav(file);
    expect(back).toEqual({ sampleRate, channels, samples });
  });

  it.each([
    [
      'a LIST chunk before fmt and an odd-sized chunk',
      riff(chunk('LIST', Buffer.from('INFOabc')), chunk('fmt ', fmt()), chunk('data', pcmBytes)),
      4,
    ],
    [
      'a fact chunk between fmt and data',
      riff(chunk('fmt ', fmt()), chunk('fact', Buffer.alloc(4)), chunk('data', pcmBytes)),
      4,
    ],
    [
      'WAVE_FORMAT_EXTENSIBLE with a PCM sub-format',
      riff(chunk('fmt ', extensible()), chunk('data', pcmBytes)),
      4,
    ],
    [
      'a data size larger than the file',
      withDataSize(riff(chunk('fmt ', fmt()), chunk('data', pcmBytes)), 0xffffffff),
      4,
    ],
    ['a wrong RIFF size', withRiffSize(riff(chunk('fmt ', fmt()), chunk('data', pcmBytes)), 3), 4],
    [
      'a trailing half sample',
      riff(chunk('fmt ', fmt()), chunk('data', Buffer.concat([pcmBytes, Buffer.from([7])]))),
      4,
    ],
    [
      'a data size smaller than what follows',
      withDataSize(riff(chunk('fmt ', fmt()), chunk('data', pcmBytes)), 4),
      2,
    ],
  ])('reads a file with %s', (_name, bytes, count) => {
    const wav = readWav(bytes);
    expect(wav.sampleRate).toBe(8000);
    expect(wav.channels).toBe(1);
    expect(Array.from(wav.samples)).toEqual([1, -2, 300, -32768].slice(0, count));
  });

  it.each([
    ['too short', Buffer.from('RIFF')],
    ['not RIFF', Buffer.concat([Buffer.from('RIFX'), Buffer.alloc(40)])],
    ['8-bit samples', riff(chunk('fmt ', fmt({ bits: 8 })), chunk('data', pcmBytes))],
    ['float samples', riff(chunk('fmt ', fmt({ format: 3, bits: 32 })), chunk('data', pcmBytes))],
    ['μ-law', riff(chunk('fmt ', fmt({ format: 7, bits: 8 })), chunk('data', pcmBytes))],
    ['no data chunk', riff(chunk('fmt ', fmt()))],
    ['no fmt chunk', riff(chunk('LIST', Buffer.alloc(4)))],
    ['data before fmt', riff(chunk('data', pcmBytes), chunk('fmt ', fmt()))],
    ['a short fmt chunk', riff(chunk('fmt ', Buffer.alloc(8)), chunk('data', pcmBytes))],
  ])('rejects %s with AUDIO_ERR_WAV', (_name, bytes) => {
    expect(() => readWav(bytes)).toThrow(expect.objectContaining({ code: 'AUDIO_ERR_WAV' }));
  });
});

function extensible(): Buffer {
  const b = fmt({ format: 0xfffe, extra: 24 });
  b.writeUInt16LE(22, 16); // cbSize
  b.writeUInt16LE(16, 18); // valid bits
  b.writeUInt32LE(4, 20); // channel mask
  b.writeUInt16LE(1, 24); // sub-format GUID starts with WAVE_FORMAT_PCM
  return b;
}

function withDataSize(file: Buffer, size: number): Buffer {
  const copy = Buffer.from(file);
  copy.writeUInt32LE(size, copy.indexOf('data', 12, 'latin1') + 4);
  return copy;
}

function withRiffSize(file: Buffer, size: number): Buffer {
  const copy = Buffer.from(file);
  copy.writeUInt32LE(size, 4);
  return copy;
}

describe('WavFileWriter', () => {
  it('writes a file readWav reads back, in write order', async () => {
    const path = await tempFile('out.wav');
    const writer = await WavFileWriter.open(path, {
      sampleRate: 16000,
      channels: 2,
      flushBytes: 64,
    });
    const expected: number[] = [];
    for (let i = 0; i < 50; i++) {
      const frame = Int16Array.from({ length: 20 }, (_, j) => i * 100 + j);
      writer.write(frame);
      expected.push(...frame);
    }
    expect(writer.dataBytes).toBe(expected.length * 2);
    await writer.close();
    await writer.close(); // idempotent
    const wav = readWav(await readFile(path));
    expect(wav.sampleRate).toBe(16000);
    expect(wav.channels).toBe(2);
    expect(Array.from(wav.samples)).toEqual(expected);
  });

  it('leaves a valid WAV on disk after the periodic flush when close() never comes', async () => {
    const path = await tempFile('crash.wav');
    const flushed: number[] = [];
    let onFlushed!: () => void;
    const firstFlush = new Promise<void>((resolve) => (onFlushed = resolve));
    const writer = await WavFileWriter.open(path, {
      sampleRate: 8000,
      channels: 1,
      flushIntervalMs: 10,
      onFlush: ({ dataBytes }) => {
        flushed.push(dataBytes);
        onFlushed();
      },
    });
    const audio = tone([440], 100, 8000, 0.5);
    writer.write(audio);
    // Simulated kill: the process would die here; only the timer's flush has run.
    await firstFlush;
    const bytes = await readFile(path);
    const wav = readWav(bytes);
    expect(Array.from(wav.samples)).toEqual(Array.from(audio));
    expect(bytes.readUInt32LE(40)).toBeLessThanOrEqual(bytes.length - 44);
    expect(bytes.readUInt32LE(4)).toBeLessThanOrEqual(bytes.length - 8);
    expect(flushed).toEqual([audio.length * 2]);
    await writer.close();
  });

  it('a file caught between a data write and its header patch is still valid', async () => {
    // What a kill between the two steps of a flush leaves: header from the previous flush, more data.
    const path = await tempFile('torn.wav');
    const writer = await WavFileWriter.open(path, {
      sampleRate: 8000,
      channels: 1,
      flushIntervalMs: 0,
    });
    writer.write(Int16Array.of(1, 2, 3));
    await writer.sync();
    const header = (await readFile(path)).subarray(0, 44);
    writer.write(Int16Array.of(4, 5));
    await writer.close();
    const full = await readFile(path);
    await writeFile(path, Buffer.concat([header, full.subarray(44)]));
    expect(Array.from(readWav(await readFile(path)).samples)).toEqual([1, 2, 3]);
    expect(Array.from(readWav(full).samples)).toEqual([1, 2, 3, 4, 5]);
  });

  it('an empty recording is a valid 44-byte WAV', async () => {
    const path = await tempFile('empty.wav');
    const writer = await WavFileWriter.open(path, { sampleRate: 8000, channels: 1 });
    await writer.close();
    expect((await stat(path)).size).toBe(44);
    expect(readWav(await readFile(path)).samples.length).toBe(0);
  });

  it('copies written samples so the caller may reuse its buffer', async () => {
    const path = await tempFile('reuse.wav');
    const writer = await WavFileWriter.open(path, { sampleRate: 8000, channels: 1 });
    const frame = Int16Array.of(1, 2);
    writer.write(frame);
    frame.fill(9);
    writer.write(frame);
    await writer.close();
    expect(Array.from(readWav(await readFile(path)).samples)).toEqual([1, 2, 9, 9]);
  });

  it.each([
    ['after close', 'AUDIO_ERR_CLOSED', Int16Array.of(1, 2), true],
    ['a partial sample frame', 'AUDIO_ERR_ARGUMENT', Int16Array.of(1, 2, 3), false],
  ])('rejects a write %s', async (_name, code, samples, closeFirst) => {
    const path = await tempFile('bad.wav');
    const writer = await WavFileWriter.open(path, { sampleRate: 8000, channels: 2 });
    if (closeFirst) await writer.close();
    expect(() => writer.write(samples)).toThrow(expect.objectContaining({ code }));
    await writer.close();
  });

  it.each([
    [{ sampleRate: 0, channels: 1 }, 'AUDIO_ERR_ARGUMENT'],
    [{ sampleRate: 8000, channels: 0 }, 'AUDIO_ERR_ARGUMENT'],
  ])('rejects options %j', async (options, code) => {
    const path = await tempFile('opts.wav');
    await expect(WavFileWriter.open(path, options)).rejects.toMatchObject({ code });
  });

  it('reports an unwritable path as AUDIO_ERR_IO', async () => {
    const path = await tempFile('missing-dir/x.wav');
    await expect(WavFileWriter.open(path, { sampleRate: 8000, channels: 1 })).rejects.toMatchObject(
      {
        code: 'AUDIO_ERR_IO',
      },
    );
  });
});
