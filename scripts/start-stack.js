#!/usr/bin/env node
// `npm start`: the whole stack on loopback with the built-in agent — one proxy on PORT (8080),
// MEDIA_WORKERS media workers (2) and one test-agent worker — as separate processes, like production.
// Every variable a process reads can be set in the environment and reaches it unchanged; this script
// only fills in the internal ports, the backend lists and per-run secrets the workers must share.
import { randomBytes } from 'node:crypto';
import concurrently from 'concurrently';

const env = process.env;
const int = (name, fallback) => {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`callgate: ${name} must be a whole number, got "${raw}"`);
    process.exit(2);
  }
  return n;
};

const mediaWorkers = int('MEDIA_WORKERS', 2);
const mediaBasePort = int('MEDIA_BASE_PORT', 8101);
const testAgentPort = int('TEST_AGENT_PORT', 8201);
if (mediaWorkers < 1) {
  console.error('callgate: MEDIA_WORKERS must be at least 1');
  process.exit(2);
}

// Workers that share a secret can verify each other's tokens: the worker that serves the TwiML is
// rarely the one that receives the stream. The proxy gets it too: it signs the resume vouch of a
// call it moves to another worker. A fresh secret per run is right for local use.
const callTokenSecret = env.CALL_TOKEN_SECRET || randomBytes(32).toString('hex');
const testAgentSecret = env.TEST_AGENT_SECRET || randomBytes(32).toString('hex');

// The accept grace keeps a draining worker taking calls until the proxy's next health probe has
// seen it drain. `npm start` stops the whole stack at once, so the grace would only delay Ctrl-C.
const acceptGraceMs = env.ACCEPT_GRACE_MS || '0';

const mediaPorts = Array.from({ length: mediaWorkers }, (_, i) => mediaBasePort + i);
const commands = [
  {
    name: 'proxy',
    // A 1 MiB young generation halves the proxy's memory per tunnel (see test/bench/README.md).
    command: 'node --max-semi-space-size=1 proxy/dist/main.js',
    env: {
      MEDIA_BACKENDS: env.MEDIA_BACKENDS || mediaPorts.map((p) => `127.0.0.1:${p}`).join(','),
      TEST_AGENT_BACKENDS: env.TEST_AGENT_BACKENDS || `127.0.0.1:${testAgentPort}`,
      CALL_TOKEN_SECRET: callTokenSecret,
    },
  },
  ...mediaPorts.map((port, i) => ({
    name: `media-${i + 1}`,
    command: 'node --max-semi-space-size=1 workers/media/dist/main.js',
    env: {
      HOST: '127.0.0.1',
      PORT: String(port),
      WORKER_ID: `media-${i + 1}`,
      CALL_TOKEN_SECRET: callTokenSecret,
      ACCEPT_GRACE_MS: acceptGraceMs,
    },
  })),
  {
    name: 'test-agent',
    command: 'node workers/test-agent/dist/main.js',
    env: {
      HOST: '127.0.0.1',
      PORT: String(testAgentPort),
      WORKER_ID: 'test-agent-1',
      TEST_AGENT_SECRET: testAgentSecret,
      ACCEPT_GRACE_MS: acceptGraceMs,
    },
  },
];

const publicPort = env.PORT || '8080';
console.log(
  `callgate: proxy on http://localhost:${publicPort} (admin http://127.0.0.1:${env.ADMIN_PORT || '9090'}/metrics)\n` +
    `  media workers: ${mediaPorts.map((p) => `127.0.0.1:${p}`).join(', ')}; test agent: 127.0.0.1:${testAgentPort}\n` +
    `  try: open http://localhost:${publicPort}/test-agent/  or  npm run sim -- --url ws://localhost:${publicPort}/media-stream/CAtest`,
);

const { result, commands: running } = concurrently(commands, {
  prefix: 'name',
  killSignal: 'SIGTERM',
});
// The proxy or the test-agent worker gone means the stack is broken: stop the others (they drain
// on SIGTERM). A media worker gone is what the stack is built to survive: the proxy moves its live
// calls to the other workers, so the rest goes on until no media worker is left.
let mediaLeft = mediaWorkers;
let stopping = false;
const stopAll = (why) => {
  if (stopping) return;
  stopping = true;
  console.log(`callgate: ${why}; stopping the stack`);
  for (const c of running) c.kill('SIGTERM');
};
for (const c of running) {
  c.close.subscribe(() => {
    if (!c.name.startsWith('media-')) stopAll(`${c.name} exited`);
    else if (--mediaLeft === 0) stopAll('no media worker left');
    else if (!stopping) {
      console.log(`callgate: ${c.name} exited; its calls move to the other media workers`);
    }
  });
}
result.then(
  () => process.exit(0),
  () => process.exit(1),
);
