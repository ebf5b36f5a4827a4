// Microphone → 20 ms PCM16 frames at the session rate, on the audio thread.
//
// The context runs at the device rate (usually 48 kHz, sometimes 44.1 kHz); the session rate is
// announced by the worker (16 kHz by default). Each render quantum (128 samples) is resampled with
// the shared windowed-sinc Resampler, cut into whole 20 ms frames, and each frame is transferred to
// the main thread with its RMS level, which sends it as one binary WebSocket message.

import { Resampler } from './resampler.js';

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const sessionRate = options.processorOptions.sessionRate;
    this.resampler = new Resampler(sampleRate, sessionRate);
    this.frameSamples = Math.round((sessionRate * 20) / 1000);
    this.frame = new Int16Array(this.frameSamples);
    this.filled = 0;
    this.sumSquares = 0;
    this.stopped = false;
    this.port.onmessage = (event) => {
      if (event.data && event.data.type === 'stop') this.stopped = true;
    };
  }

  process(inputs) {
    if (this.stopped) return false;
    const channels = inputs[0];
    // No input connected yet (or the track ended): nothing to send this quantum.
    if (!channels || channels.length === 0) return true;
    let mono = channels[0];
    if (channels.length > 1) {
      mono = new Float32Array(channels[0].length);
      for (const channel of channels) {
        for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / channels.length;
      }
    }
    const converted = this.resampler.process(mono);
    for (let i = 0; i < converted.length; i++) {
      const v = converted[i];
      const s = v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
      this.frame[this.filled++] = s;
      this.sumSquares += v * v;
      if (this.filled === this.frameSamples) {
        const level = Math.sqrt(this.sumSquares / this.frameSamples);
        this.port.postMessage({ type: 'frame', samples: this.frame.buffer, level }, [
          this.frame.buffer,
        ]);
        this.frame = new Int16Array(this.frameSamples);
        this.filled = 0;
        this.sumSquares = 0;
      }
    }
    return true;
  }
}

registerProcessor('capture', CaptureProcessor);
