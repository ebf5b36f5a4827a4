// Microphone → 20 ms PCM16 frames at the session rate, on the audio thread.
//
// The context runs at the device rate (usually 48 kHz, sometimes 44.1 kHz); the session rate is
// announced by the worker (16 kHz by default). Each render quantum (128 samples) is converted to
// PCM16 and resampled with @callgate/audio's resampler (the one the Call uses, served by the
// worker under ./audio/), cut into whole 20 ms frames, and each frame is transferred to the main
// thread with its RMS level, which sends it as one binary WebSocket message.

import { createResampler } from './audio/halfband.js';

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const sessionRate = options.processorOptions.sessionRate;
    this.resampler = createResampler(sampleRate, sessionRate);
    this.pcm = new Int16Array(128);
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
    if (this.pcm.length !== mono.length) this.pcm = new Int16Array(mono.length);
    for (let i = 0; i < mono.length; i++) {
      const v = mono[i];
      this.pcm[i] = v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
    }
    const converted = this.resampler.process(this.pcm);
    for (let i = 0; i < converted.length; i++) {
      const s = converted[i];
      this.frame[this.filled++] = s;
      this.sumSquares += (s / 32768) * (s / 32768);
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
