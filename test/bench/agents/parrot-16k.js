// The parrot at 16 kHz: what an agent with a 16 kHz model (ASR/TTS) costs a media worker, which
// then resamples every frame 8k → 16k inbound and 16k → 8k outbound. For the media benchmark:
//   AGENT_MODULE=test/bench/agents/parrot-16k.js node workers/media/dist/main.js
import { createParrotAgent } from '@callgate/agent';

export default function createAgent() {
  const parrot = createParrotAgent();
  return { name: 'parrot-16k', sampleRate: 16000, start: (call) => parrot.start(call) };
}
