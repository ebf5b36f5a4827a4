import { open, type FileHandle } from 'node:fs/promises';
import { AudioError } from './errors.js';
import { pcm16FromBytes, pcm16ToBytes } from './pcm.js';

export interface WavAudio {
  sampleRate: number;
  channels: number;
  /** Interleaved PCM16 samples (`channels` per sample frame). */
  samples: Int16Array;
}

const HEADER_BYTES = 44;
const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

function fourcc(bytes: Uint8Array, offset: number): string {
  return String.fromCharCode(
    bytes[offset]!,
    bytes[offset + 1]!,
    bytes[offset + 2]!,
    bytes[offset + 3]!,
  );
}

/**
 * Parses a PCM16 WAV file. Tolerant where real files are sloppy: the RIFF size is ignored, unknown
 * chunks (LIST, fact, …) are skipped, a data size larger than the file (streaming writers, files cut
 * short by a crash) is clamped to what is there, and a trailing half sample frame is dropped.
 * Anything that is not 16-bit integer PCM is rejected with `AUDIO_ERR_WAV`.
 */
export function readWav(bytes: Uint8Array): WavAudio {
  const fail = (why: string): never => {
    throw new AudioError('AUDIO_ERR_WAV', `not a usable WAV file: ${why}`);
  };
  if (bytes.byteLength < 12) fail('shorter than a RIFF header');
  if (fourcc(bytes, 0) !== 'RIFF' || fourcc(bytes, 8) !== 'WAVE') fail('missing RIFF/WAVE magic');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let format: { sampleRate: number; channels: number } | undefined;
  let offset = 12;
  while (offset + 8 <= bytes.byteLength) {
    const id = fourcc(bytes, offset);
    const size = view.getUint32(offset + 4, true);
    const body = offset + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > bytes.byteLength) fail('fmt chunk too short');
      let audioFormat = view.getUint16(body, true);
      const channels = view.getUint16(body + 2, true);
      const sampleRate = view.getUint32(body + 4, true);
      const bitsPerSample = view.getUint16(body + 14, true);
      if (audioFormat === WAVE_FORMAT_EXTENSIBLE && size >= 40 && body + 26 <= bytes.byteLength) {
        audioFormat = view.getUint16(body + 24, true); // first two bytes of the sub-format GUID
      }
      if (audioFormat !== WAVE_FORMAT_PCM) fail(`audio format ${audioFormat} is not integer PCM`);
      if (bitsPerSample !== 16) fail(`${bitsPerSample}-bit samples (only 16-bit is supported)`);
      if (channels < 1) fail('zero channels');
      if (sampleRate < 1) fail('zero sample rate');
      format = { sampleRate, channels };
    } else if (id === 'data') {
      if (!format) fail('data chunk before fmt chunk');
      const f = format!;
      const available = Math.min(size, bytes.byteLength - body);
      const frameBytes = 2 * f.channels;
      const usable = available - (available % frameBytes);
      const copy = bytes.slice(body, body + usable); // own, aligned memory
      return { sampleRate: f.sampleRate, channels: f.channels, samples: pcm16FromBytes(copy) };
    }
    offset = body + size + (size % 2); // chunks are padded to an even length
  }
  return fail(format ? 'no data chunk' : 'no fmt chunk');
}

function header(sampleRate: number, channels: number, dataBytes: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVE', 8, 'latin1');
  h.write('fmt ', 12, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(WAVE_FORMAT_PCM, 20);
  h.writeUInt16LE(channels, 22);
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * channels * 2, 28);
  h.writeUInt16LE(channels * 2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

function checkFormat(sampleRate: number, channels: number): void {
  if (!Number.isInteger(sampleRate) || sampleRate < 1) {
    throw new AudioError('AUDIO_ERR_ARGUMENT', `invalid sample rate ${sampleRate}`);
  }
  if (!Number.isInteger(channels) || channels < 1 || channels > 16) {
    throw new AudioError('AUDIO_ERR_ARGUMENT', `invalid channel count ${channels}`);
  }
}

/** Builds a complete 44-byte-header PCM16 WAV file. */
export function encodeWav(audio: WavAudio): Buffer {
  checkFormat(audio.sampleRate, audio.channels);
  if (audio.samples.length % audio.channels !== 0) {
    throw new AudioError('AUDIO_ERR_ARGUMENT', 'sample count is not a multiple of channels');
  }
  const data = pcm16ToBytes(audio.samples);
  return Buffer.concat([header(audio.sampleRate, audio.channels, data.length), data]);
}

export interface WavFileWriterOptions {
  sampleRate: number;
  channels: number;
  /** Periodic flush interval; 0 disables the timer (flush on size, `sync()` and `close()` only). */
  flushIntervalMs?: number;
  /** Buffered bytes that trigger a flush without waiting for the timer. */
  flushBytes?: number;
  /** Called after each flush, once the header on disk covers `dataBytes`. */
  onFlush?: (info: { dataBytes: number }) => void;
}

const MAX_DATA_BYTES = 0xffffffff - 36;

/**
 * Appends PCM16 to a WAV file while recording. `write()` only buffers; flushes run one at a time in
 * order (timer, size threshold, `sync()`, `close()`). Each flush writes the data first and patches the
 * RIFF and data sizes after, so whenever the process dies the header never claims more than is on
 * disk and the file stays a valid WAV (at most the last unflushed interval is lost).
 *
 * A failed disk write is kept and re-thrown by the next `write()`, `sync()` or `close()`.
 */
export class WavFileWriter {
  readonly path: string;
  readonly sampleRate: number;
  readonly channels: number;
  readonly #file: FileHandle;
  readonly #flushBytes: number;
  readonly #onFlush: ((info: { dataBytes: number }) => void) | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #dataBytes = 0; // on disk
  #acceptedBytes = 0; // on disk + pending
  #chain: Promise<void> = Promise.resolve();
  #error: Error | undefined;
  #closing: Promise<void> | undefined;

  private constructor(path: string, file: FileHandle, options: WavFileWriterOptions) {
    this.path = path;
    this.#file = file;
    this.sampleRate = options.sampleRate;
    this.channels = options.channels;
    this.#flushBytes = options.flushBytes ?? 64 * 1024;
    this.#onFlush = options.onFlush;
    const interval = options.flushIntervalMs ?? 1000;
    if (interval > 0) {
      this.#timer = setInterval(() => void this.#flush().catch(() => {}), interval);
      this.#timer.unref();
    }
  }

  /** Creates (truncates) the file and writes an empty-data header. */
  static async open(path: string, options: WavFileWriterOptions): Promise<WavFileWriter> {
    checkFormat(options.sampleRate, options.channels);
    let file: FileHandle;
    try {
      file = await open(path, 'w');
    } catch (err) {
      throw new AudioError('AUDIO_ERR_IO', `cannot open ${path}`, { cause: err });
    }
    try {
      await file.write(header(options.sampleRate, options.channels, 0), 0, HEADER_BYTES, 0);
    } catch (err) {
      await file.close().catch(() => {});
      throw new AudioError('AUDIO_ERR_IO', `cannot write ${path}`, { cause: err });
    }
    return new WavFileWriter(path, file, options);
  }

  /** Bytes of sample data accepted so far (flushed or not). */
  get dataBytes(): number {
    return this.#acceptedBytes;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Buffers interleaved samples (copied; the caller may reuse its array). */
  write(interleaved: Int16Array): void {
    if (this.#closing) throw new AudioError('AUDIO_ERR_CLOSED', `${this.path} is closed`);
    if (this.#error) throw this.#error;
    if (interleaved.length % this.channels !== 0) {
      throw new AudioError('AUDIO_ERR_ARGUMENT', 'sample count is not a multiple of channels');
    }
    if (interleaved.length === 0) return;
    const bytes = pcm16ToBytes(interleaved);
    if (this.#acceptedBytes + bytes.length > MAX_DATA_BYTES) {
      throw new AudioError('AUDIO_ERR_ARGUMENT', 'WAV data would exceed 4 GiB');
    }
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    this.#acceptedBytes += bytes.length;
    if (this.#pendingBytes >= this.#flushBytes) void this.#flush().catch(() => {});
  }

  /** Flushes everything written so far, patches the header and fsyncs. */
  async sync(): Promise<void> {
    await this.#flush();
    const synced = this.#chain.then(() => this.#file.datasync());
    this.#chain = synced.catch(() => {});
    try {
      await synced;
    } catch (err) {
      throw new AudioError('AUDIO_ERR_IO', `cannot sync ${this.path}`, { cause: err });
    }
  }

  /** Flushes, patches the header and closes the file. Idempotent: returns the same promise. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#timer) clearInterval(this.#timer);
      try {
        await this.#flush();
      } finally {
        await this.#file.close();
      }
    })();
    return this.#closing;
  }

  #flush(): Promise<void> {
    const chunks = this.#pending;
    const length = this.#pendingBytes;
    this.#pending = [];
    this.#pendingBytes = 0;
    const run = async (): Promise<void> => {
      if (this.#error) throw this.#error;
      if (length === 0) return;
      try {
        const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length);
        await this.#file.write(data, 0, length, HEADER_BYTES + this.#dataBytes);
        this.#dataBytes += length;
        // Sizes only after the data they describe is written: never ahead of the disk.
        const sizes = Buffer.alloc(4);
        sizes.writeUInt32LE(36 + this.#dataBytes, 0);
        await this.#file.write(sizes, 0, 4, 4);
        sizes.writeUInt32LE(this.#dataBytes, 0);
        await this.#file.write(sizes, 0, 4, 40);
      } catch (err) {
        this.#error = new AudioError('AUDIO_ERR_IO', `cannot write ${this.path}`, { cause: err });
        throw this.#error;
      }
      this.#onFlush?.({ dataBytes: this.#dataBytes });
    };
    const next = this.#chain.then(run);
    this.#chain = next.catch(() => {});
    return next;
  }
}
