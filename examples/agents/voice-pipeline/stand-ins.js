// @ts-check
// Scripted stand-ins for the three services of a voice agent, so the pipeline in agent.js runs
// offline and in tests. Each has the shape of a streaming vendor client; replace it with yours and
// keep agent.js as it is:
//
//   ScriptedStt    speech-to-text: takes 20 ms frames, reports speech start, partial and final
//                  transcripts (a real one: a streaming recognition WebSocket with interim results)
//   ScriptedModel  the model: streams the reply as tokens (a real one: a chat completion stream)
//   ScriptedTts    text-to-speech: streams audio per word (a real one: a streaming TTS request)
//
// None of them understands anything: the "recognizer" hears energy, the "model" follows a script
// and the "voice" is two formant-like tones per word.

const FRAME_MS = 20;

/** Level of a frame in dBFS (0 = full scale). */
function levelDbfs(/** @type {Int16Array} */ frame) {
  let sum = 0;
  for (const s of frame) sum += s * s;
  return sum === 0 ? -100 : 10 * Math.log10(sum / frame.length / 32768 ** 2);
}

/** Waits `ms`, or less when `signal` aborts (then resolves too: callers check `signal.aborted`). */
function sleep(/** @type {number} */ ms, /** @type {AbortSignal} */ signal) {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve(undefined);
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve(undefined);
    }
  });
}

/**
 * @typedef {object} SttEvents
 * @property {() => void} onSpeechStart  the caller started talking (barge-in if the agent talks)
 * @property {(text: string) => void} onPartial  an interim transcript; may still change
 * @property {(text: string) => void} onFinal  the caller finished a sentence
 */

/**
 * Speech-to-text that "recognizes" by energy and duration: a sentence is voiced audio followed by
 * `endSilenceMs` of quiet, and its words are the next line of `script`, revealed one per
 * `msPerWord` of speech as partial transcripts.
 */
export class ScriptedStt {
  #events;
  #script;
  #line = 0;
  #voicedMs = 0;
  #quietMs = 0;
  #talking = false;
  #revealed = 0;
  #thresholdDbfs;
  #endSilenceMs;
  #msPerWord;

  /**
   * @param {SttEvents & { script?: string[], thresholdDbfs?: number, endSilenceMs?: number,
   *   msPerWord?: number }} options
   */
  constructor(options) {
    this.#events = options;
    this.#script = options.script ?? [
      'hello who am I talking to',
      'what can you do for me',
      'tell me something short',
    ];
    this.#thresholdDbfs = options.thresholdDbfs ?? -40;
    this.#endSilenceMs = options.endSilenceMs ?? 500;
    this.#msPerWord = options.msPerWord ?? 150;
  }

  /** One 20 ms frame of caller audio. */
  write(/** @type {Int16Array} */ frame) {
    if (levelDbfs(frame) > this.#thresholdDbfs) {
      this.#voicedMs += FRAME_MS;
      this.#quietMs = 0;
      // 60 ms of voice in a row is speech, not a click.
      if (!this.#talking && this.#voicedMs >= 60) {
        this.#talking = true;
        this.#events.onSpeechStart();
      }
      const words = this.#words();
      const due = Math.min(words.length, Math.floor(this.#voicedMs / this.#msPerWord));
      if (this.#talking && due > this.#revealed) {
        this.#revealed = due;
        this.#events.onPartial(words.slice(0, due).join(' '));
      }
      return;
    }
    this.#quietMs += FRAME_MS;
    if (!this.#talking) {
      this.#voicedMs = 0;
      return;
    }
    if (this.#quietMs < this.#endSilenceMs) return;
    this.#events.onFinal(this.#words().join(' '));
    this.#line++;
    this.#talking = false;
    this.#voicedMs = 0;
    this.#revealed = 0;
  }

  #words() {
    return (this.#script[this.#line % this.#script.length] ?? '').split(' ');
  }
}

/** A model that streams a scripted reply, one word per `tokenDelayMs`. */
export class ScriptedModel {
  #tokenDelayMs;

  constructor(/** @type {{ tokenDelayMs?: number }} */ options = {}) {
    this.#tokenDelayMs = options.tokenDelayMs ?? 20;
  }

  /**
   * The reply to `transcript` (`''` for the greeting), token by token; stops when `signal` aborts.
   * @param {string} transcript
   * @param {AbortSignal} signal
   * @returns {AsyncGenerator<string>}
   */
  async *reply(transcript, signal) {
    for (const token of replyText(transcript).split(' ')) {
      await sleep(this.#tokenDelayMs, signal);
      if (signal.aborted) return;
      yield token;
    }
  }
}

function replyText(/** @type {string} */ transcript) {
  if (transcript === '') return 'Hello. Say something.';
  if (transcript.includes('who')) {
    return 'I am a scripted model, reading the same reply every time. I can talk for quite a while if you let me, so feel free to interrupt.';
  }
  if (transcript.includes('what')) return 'I hear you, I think, and I answer. That is all.';
  return `You said: ${transcript}.`;
}

/** Formant pairs (F1, F2) of a few vowels, in Hz. */
const VOWELS = /** @type {Record<string, [number, number]>} */ ({
  a: [730, 1090],
  e: [530, 1840],
  i: [270, 2290],
  o: [570, 840],
  u: [300, 870],
  y: [270, 2290],
});

/**
 * Text-to-speech with a voice made of tones: each word is a 110 Hz buzz through its vowels'
 * formants, 70 ms per letter, then a short pause; one audio chunk per word, streamed.
 */
export class ScriptedTts {
  #rate;
  #chunkDelayMs;

  constructor(/** @type {{ sampleRate: number, chunkDelayMs?: number }} */ options) {
    this.#rate = options.sampleRate;
    this.#chunkDelayMs = options.chunkDelayMs ?? 10;
  }

  /**
   * PCM16 mono at `sampleRate`, one chunk per word of `text`; stops when `signal` aborts.
   * @param {string} text
   * @param {AbortSignal} signal
   * @returns {AsyncGenerator<Int16Array>}
   */
  async *synthesize(text, signal) {
    for (const word of text.split(/\s+/).filter(Boolean)) {
      await sleep(this.#chunkDelayMs, signal);
      if (signal.aborted) return;
      yield this.#renderWord(word.toLowerCase());
    }
  }

  #renderWord(/** @type {string} */ word) {
    const rate = this.#rate;
    const letters = word.replace(/[^a-z]/g, '') || 'a';
    const vowels = [...letters].filter((c) => c in VOWELS);
    const formants = (vowels.length > 0 ? vowels : ['a']).map((v) => VOWELS[v] ?? [730, 1090]);
    const voiced = Math.round((Math.min(letters.length, 8) * 70 * rate) / 1000);
    const pause = Math.round(((/[.,?!:]$/.test(word) ? 250 : 60) * rate) / 1000);
    const out = new Int16Array(voiced + pause);
    const fade = Math.round(rate / 100);
    for (let i = 0; i < voiced; i++) {
      const t = i / rate;
      const [f1, f2] = formants[Math.floor((i / voiced) * formants.length)] ?? [730, 1090];
      // Clamp the formants under Nyquist for low rates.
      const nyq = rate / 2 - 200;
      const buzz = (0.5 + 0.5 * Math.cos(2 * Math.PI * 110 * t)) ** 2;
      const tone =
        0.6 * Math.sin(2 * Math.PI * Math.min(f1, nyq) * t) +
        0.4 * Math.sin(2 * Math.PI * Math.min(f2, nyq) * t);
      const edge = Math.min(1, i / fade, (voiced - 1 - i) / fade);
      out[i] = Math.round(tone * buzz * edge * 0.35 * 32767);
    }
    return out;
  }
}
