// hello-agent: a complete callgate agent in plain JavaScript, with no dependencies.
//
//   AGENT_MODULE=examples/agents/hello-agent.js npm run start:media
//
// It plays a short chime when the call starts, answers each key the caller presses with that many
// beeps (0 = ten, * and # a two-note "bip-bop"), and beeps once whenever the caller stops talking.
// If the caller talks over it, it stops at once (barge-in).

const FRAME_MS = 20;

/** A sine beep with 5 ms fades, so it does not click. */
function beep(freqHz, durationMs, rate, amplitude = 0.3) {
  const n = Math.round((durationMs * rate) / 1000);
  const fade = Math.round(rate / 200);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    const edge = Math.min(1, i / fade, (n - 1 - i) / fade);
    out[i] = Math.round(Math.sin((2 * Math.PI * freqHz * i) / rate) * amplitude * edge * 32767);
  }
  return out;
}

function pause(durationMs, rate) {
  return new Int16Array(Math.round((durationMs * rate) / 1000));
}

function join(parts) {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Level of a frame in dBFS (0 = full scale). */
function levelDbfs(frame) {
  let sum = 0;
  for (const s of frame) sum += s * s;
  return sum === 0 ? -100 : 10 * Math.log10(sum / frame.length / 32768 ** 2);
}

export default function createAgent() {
  return {
    name: 'hello',
    // No sampleRate: the agent hears and speaks at the transport's rate (8000 Hz on Twilio).
    start(call) {
      const rate = call.sampleRate;
      call.log.info('hello-agent answering', { callId: call.info.callId });
      call.say(join([beep(523, 120, rate), beep(659, 120, rate), beep(784, 160, rate)]));

      let voicedMs = 0;
      let quietMs = 0;
      return {
        onAudio(frame) {
          if (levelDbfs(frame) > -40) {
            voicedMs += FRAME_MS;
            quietMs = 0;
            // The caller talks over us: stop talking.
            if (voicedMs === 100 && call.isSpeaking) call.clear();
            return;
          }
          quietMs += FRAME_MS;
          if (quietMs < 600) return;
          if (voicedMs >= 200) call.say(beep(1000, 150, rate));
          voicedMs = 0;
          quietMs = 0;
        },
        onDtmf(digit) {
          const count = digit === '0' ? 10 : Number(digit);
          if (Number.isInteger(count) && count > 0) {
            const beeps = [];
            for (let i = 0; i < count; i++) beeps.push(beep(880, 80, rate), pause(70, rate));
            call.say(join(beeps));
          } else {
            call.say(join([beep(440, 100, rate), beep(330, 140, rate)]));
          }
        },
        onPlayed(utteranceId) {
          call.log.debug('hello-agent was heard', { utteranceId });
        },
        onEnd(reason) {
          call.log.info('hello-agent call ended', { reason });
        },
      };
    },
  };
}
