// @ts-check
// voice-pipeline: the skeleton of a real voice agent — streaming speech-to-text → model →
// text-to-speech — with scripted stand-ins for the three services (stand-ins.js), so it runs
// offline:
//
//   AGENT_MODULE=examples/agents/voice-pipeline/agent.js npm start
//
// What it shows:
// - partial replies: the model's tokens are spoken phrase by phrase as they stream in, each
//   phrase's audio appended to one open utterance with say(pcm, { final: false }); the caller hears
//   the start of the answer before the model has finished it;
// - marks: the utterance is closed with a final say(), which sends its mark; onPlayed(id) says the
//   caller heard all of it (that is when a real agent commits the reply to its conversation);
// - barge-in: when the caller starts talking over a reply, clear() drops the queued audio at once
//   and the model and TTS streams of that reply are aborted.
//
// Replace the stand-ins with your vendors' streaming clients; the wiring below stays the same.
import { ScriptedModel, ScriptedStt, ScriptedTts } from './stand-ins.js';

/** Phrases go to TTS at punctuation or after this many words, whichever comes first. */
const MAX_PHRASE_WORDS = 4;

/**
 * @typedef {object} Turn
 * @property {number} n
 * @property {AbortController} controller
 * @property {string | undefined} utteranceId
 * @property {number} pieces
 */

/** @returns {import('@callgate/agent').Agent} */
export default function createAgent() {
  return {
    name: 'voice-pipeline',
    // No sampleRate: STT hears and TTS speaks at the transport's rate (8000 Hz on Twilio).
    start(call) {
      const model = new ScriptedModel();
      const tts = new ScriptedTts({ sampleRate: call.sampleRate });
      /** The reply being generated or played, if any. @type {Turn | undefined} */
      let turn;
      let turns = 0;
      /** Replies the caller heard in full: where a real agent appends them to the conversation. */
      let repliesHeard = 0;

      const stt = new ScriptedStt({
        onSpeechStart() {
          if (turn === undefined && !call.isSpeaking) return;
          // Barge-in: stop talking now, and stop generating what would have come next.
          call.clear();
          if (turn) {
            turn.controller.abort();
            call.log.info('barge-in', { turn: turn.n, utteranceId: turn.utteranceId });
          }
          turn = undefined;
        },
        onPartial(text) {
          call.log.debug('partial transcript', { text });
        },
        onFinal(text) {
          call.log.info('final transcript', { text });
          respond(text);
        },
      });

      /** Streams the model's reply to `transcript` through TTS to the caller, as one utterance. */
      function respond(/** @type {string} */ transcript) {
        turn?.controller.abort();
        /** @type {Turn} */
        const t = {
          n: ++turns,
          controller: new AbortController(),
          utteranceId: undefined,
          pieces: 0,
        };
        turn = t;
        const { signal } = t.controller;

        /** Speaks one phrase: TTS audio chunks appended to the open utterance. */
        async function speak(/** @type {string} */ phrase) {
          for await (const pcm of tts.synthesize(phrase, signal)) {
            if (signal.aborted) return;
            t.utteranceId = call.say(pcm, { final: false });
            t.pieces++;
          }
        }

        (async () => {
          /** @type {string[]} */
          let phrase = [];
          for await (const token of model.reply(transcript, signal)) {
            phrase.push(token);
            if (/[.,?!:]$/.test(token) || phrase.length >= MAX_PHRASE_WORDS) {
              await speak(phrase.join(' '));
              phrase = [];
            }
          }
          if (phrase.length > 0) await speak(phrase.join(' '));
          if (signal.aborted || t.utteranceId === undefined) return;
          // Closes the utterance: its mark goes out behind the last piece.
          call.say(new Int16Array(0));
          call.log.info('reply spoken', {
            turn: t.n,
            utteranceId: t.utteranceId,
            pieces: t.pieces,
          });
        })().catch((err) => {
          call.log.error('reply failed', { turn: t.n, err: String(err) });
        });
      }

      respond(''); // the greeting

      return {
        onAudio(frame) {
          stt.write(frame);
        },
        onPlayed(utteranceId) {
          repliesHeard++;
          call.log.info('reply heard', { utteranceId, turn: turn?.n });
          if (turn?.utteranceId === utteranceId) turn = undefined;
        },
        onEnd(reason) {
          turn?.controller.abort();
          call.log.info('voice-pipeline call ended', { reason, repliesHeard });
        },
      };
    },
  };
}
