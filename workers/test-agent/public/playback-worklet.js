// The agent's voice: PCM16 frames at the session rate → the speakers, on the audio thread.
//
// Frames arrive from the main thread as the worker sends them (paced at 20 ms) and are resampled
// to the context rate with @callgate/audio's resampler (served by the worker under ./audio/) into
// a ring buffer. A small jitter buffer holds playback until `targetMs`
// is queued, or until the utterance's mark has arrived (a short utterance must not wait for audio
// that will never come). A mark is acknowledged once the playhead has passed every sample queued
// before it: that is what "played" means to the agent. `clear` empties the queue and drops
// pending marks at once (barge-in).

import { createResampler } from './audio/halfband.js';

const STATS_EVERY_QUANTA = 16; // ~40 ms at 48 kHz

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { sessionRate, targetMs = 60, maxQueueMs = 30_000 } = options.processorOptions;
    this.resampler = createResampler(sessionRate, sampleRate);
    this.targetSamples = Math.round((sampleRate * targetMs) / 1000);
    this.ring = new Float32Array(Math.round((sampleRate * maxQueueMs) / 1000));
    this.samplesPerFrame = (sampleRate * 20) / 1000;
    // Absolute sample positions: written so far, played so far.
    this.writePos = 0;
    this.readPos = 0;
    this.marks = []; // { name, position }
    this.buffering = true;
    this.samplesPlayed = 0;
    this.underruns = 0;
    this.dropped = 0;
    this.quanta = 0;
    this.sumSquares = 0;
    this.levelSamples = 0;
    this.stopped = false;
    this.port.onmessage = (event) => this.onMessage(event.data);
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'frame': {
        this.write(this.resampler.process(new Int16Array(msg.samples)));
        return;
      }
      case 'mark':
        // The utterance is complete: push the resampler's tail out so the mark sits after it.
        this.write(this.resampler.flush());
        this.marks.push({ name: msg.name, position: this.writePos });
        return;
      case 'clear':
        this.readPos = this.writePos;
        this.marks = [];
        this.resampler.reset();
        this.buffering = true;
        return;
      case 'stop':
        this.stopped = true;
        return;
    }
  }

  /** Queues PCM16 samples at the context rate as floats. */
  write(samples) {
    const size = this.ring.length;
    const room = size - (this.writePos - this.readPos);
    const n = Math.min(samples.length, room);
    this.dropped += samples.length - n;
    for (let i = 0; i < n; i++) this.ring[(this.writePos + i) % size] = samples[i] / 32768;
    this.writePos += n;
  }

  process(_inputs, outputs) {
    if (this.stopped) return false;
    const out = outputs[0][0];
    const queued = this.writePos - this.readPos;
    if (this.buffering) {
      const utteranceComplete = this.marks.length > 0 && queued > 0;
      if (queued >= this.targetSamples || utteranceComplete) this.buffering = false;
    }
    let played = 0;
    if (!this.buffering) {
      const size = this.ring.length;
      played = Math.min(out.length, queued);
      for (let i = 0; i < played; i++) {
        const v = this.ring[(this.readPos + i) % size];
        out[i] = v;
        this.sumSquares += v * v;
      }
      this.readPos += played;
      this.samplesPlayed += played;
      if (played < out.length) {
        // Ran dry: an underrun only if the utterance was still going (no mark waiting).
        if (this.marks.length === 0) this.underruns++;
        this.buffering = true;
      }
    }
    for (let i = played; i < out.length; i++) out[i] = 0;
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.levelSamples += out.length;

    while (this.marks.length > 0 && this.marks[0].position <= this.readPos) {
      this.port.postMessage({ type: 'played', name: this.marks.shift().name });
    }
    if (++this.quanta % STATS_EVERY_QUANTA === 0) {
      this.port.postMessage({
        type: 'stats',
        framesPlayed: Math.floor(this.samplesPlayed / this.samplesPerFrame),
        queuedMs: Math.round(((this.writePos - this.readPos) * 1000) / sampleRate),
        underruns: this.underruns,
        dropped: this.dropped,
        level: Math.sqrt(this.sumSquares / this.levelSamples),
      });
      this.sumSquares = 0;
      this.levelSamples = 0;
    }
    return true;
  }
}

registerProcessor('playback', PlaybackProcessor);
