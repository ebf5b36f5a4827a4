// The test-agent page: one session at a time, talking to the worker over
// `/test-agent/<sessionId>` (protocol: docs/test-agent-protocol.md). Audio runs in two
// AudioWorklets (capture-worklet.js, playback-worklet.js); this module wires them to the socket and
// keeps the page's state, which it also mirrors into data attributes on #app for tests and tools.

const API_KEY_STORAGE = 'callgate.testAgent.apiKey';
const PROTOCOL_VERSION = 1;
const DTMF_KEYS = '0123456789*#';
// Outgoing audio is dropped rather than queued without bound when the network stalls.
const MAX_SOCKET_BUFFER_BYTES = 64 * 1024;
// Caller speech detection for the turn log (the agent has its own VAD).
const SPEECH_DBFS = -45;
const SPEECH_START_FRAMES = 3;
const SPEECH_END_FRAMES = 25;
const HANGUP_GRACE_MS = 3000;
const MAX_LOG_ENTRIES = 200;

const CLOSE_TEXT = {
  1000: 'The session ended.',
  1001: 'The worker is shutting down. Start a new session.',
  1006: 'The connection was lost.',
  1008: 'The worker closed the session: too many malformed messages.',
  1009: 'The worker closed the session: a message was too large.',
  1011: 'The agent or the worker failed. Start a new session.',
  1012: 'The worker is restarting (draining). Start a new session.',
  1013: 'The worker is overloaded or the connection is too slow. Try again shortly.',
  4008: 'Session expired: it reached its maximum duration.',
};
const HANGUP_TEXT = {
  'caller-hangup': 'You hung up.',
  'caller-pressed-hash': 'The agent hung up (you pressed #).',
  'agent-hangup': 'The agent hung up.',
  'agent-error': 'The agent failed. Start a new session.',
  'max-duration': CLOSE_TEXT[4008],
  'service-restart': CLOSE_TEXT[1012],
  'too-many-bad-messages': CLOSE_TEXT[1008],
};
const API_ERROR_TEXT = {
  TEST_AGENT_ERR_UNAUTHORIZED: 'This server needs an API key to start a session.',
  TEST_AGENT_ERR_DRAINING: 'The worker is draining (restarting). Try again in a few seconds.',
  TEST_AGENT_ERR_AT_CAPACITY: 'Every session slot is taken. Try again shortly.',
  TEST_AGENT_ERR_RATE_LIMITED: 'Too many sessions were started. Wait a moment and try again.',
  RUNTIME_ERR_DRAINING: 'The worker is draining (restarting). Try again in a few seconds.',
};
/** Problems the page reports; `words` is what the person reads. */
class PageError extends Error {
  constructor(words, code) {
    super(words);
    this.code = code;
  }
}

const $ = (id) => document.getElementById(id);
const ui = {
  app: $('app'),
  status: $('status'),
  start: $('start'),
  hangup: $('hangup'),
  elapsed: $('elapsed'),
  limit: $('limit'),
  error: $('error'),
  keyForm: $('key-form'),
  apiKey: $('api-key'),
  micLevel: $('mic-level'),
  agentLevel: $('agent-level'),
  framesSent: $('frames-sent'),
  framesReceived: $('frames-received'),
  framesPlayed: $('frames-played'),
  queuedMs: $('queued-ms'),
  keypad: $('keypad'),
  log: $('log'),
  info: $('session-info'),
};

/** The live session, or undefined. */
let current;

function setState(state, words) {
  ui.app.dataset.state = state;
  ui.status.dataset.state = state;
  ui.status.textContent = words;
  const live = state === 'connected';
  ui.start.disabled = state === 'starting' || state === 'connected' || state === 'ending';
  ui.hangup.disabled = !(state === 'starting' || state === 'connected');
  for (const button of ui.keypad.querySelectorAll('button')) button.disabled = !live;
}

function showError(words) {
  ui.error.textContent = words;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.textContent = '';
  ui.error.hidden = true;
}

function setCounter(name, element, value) {
  ui.app.dataset[name] = String(value);
  element.textContent = String(value);
}

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** dBFS of an RMS level in [0, 1]. */
function dbfs(rms) {
  return rms > 0 ? 20 * Math.log10(rms) : -100;
}

/** Meters show -60…0 dBFS, so ordinary speech fills about half. */
function meterValue(rms) {
  return Math.min(1, Math.max(0, (dbfs(rms) + 60) / 60));
}

function addLog(kind, words, data = {}) {
  const item = document.createElement('li');
  item.dataset.kind = kind;
  for (const [key, value] of Object.entries(data)) item.dataset[key] = String(value);
  const time = document.createElement('time');
  time.textContent = current ? clock((performance.now() - current.startedAt) / 1000) : '';
  const text = document.createElement('span');
  text.textContent = words;
  item.append(time, text);
  ui.log.append(item);
  while (ui.log.children.length > MAX_LOG_ENTRIES) ui.log.firstElementChild.remove();
  item.scrollIntoView({ block: 'nearest' });
  if (kind !== 'system' && kind !== 'error') {
    ui.app.dataset.turns = String(Number(ui.app.dataset.turns) + 1);
  }
}

// ── session API ───────────────────────────────────────────────────────────────────────────

async function createSession() {
  const headers = { accept: 'application/json' };
  const key = sessionStorage.getItem(API_KEY_STORAGE);
  if (key) headers.authorization = `Bearer ${key}`;
  let res;
  try {
    res = await fetch('sessions', { method: 'POST', headers });
  } catch {
    throw new PageError('Cannot reach the server. Check your connection and try again.');
  }
  const body = await res.json().catch(() => ({}));
  if (res.status === 201) return body;
  const code = body?.error?.code;
  if (code === 'TEST_AGENT_ERR_UNAUTHORIZED') {
    if (key) sessionStorage.removeItem(API_KEY_STORAGE);
    ui.keyForm.hidden = false;
    ui.apiKey.focus();
    throw new PageError(
      key ? 'The API key was refused. Enter it again.' : API_ERROR_TEXT[code],
      code,
    );
  }
  throw new PageError(
    API_ERROR_TEXT[code] ??
      `The server refused the session (${res.status}${code ? ` ${code}` : ''}).`,
    code,
  );
}

// ── audio ─────────────────────────────────────────────────────────────────────────────────

async function openMicrophone() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new PageError('The microphone needs a secure page: open it over HTTPS (or localhost).');
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: true,
        noiseSuppression: true,
        autoGainControl: true,
      },
    });
  } catch (err) {
    const words = {
      NotAllowedError:
        'Microphone permission denied. Allow the microphone for this site, then press Start.',
      SecurityError:
        'Microphone permission denied. Allow the microphone for this site, then press Start.',
      NotFoundError: 'No microphone was found. Connect one and press Start.',
      NotReadableError: 'The microphone is in use by another application.',
      OverconstrainedError: 'The microphone cannot record mono audio.',
    }[err?.name];
    throw new PageError(words ?? `The microphone could not be opened (${err?.message ?? err}).`);
  }
}

function buildAudioGraph(session, sessionRate) {
  const { ctx } = session;
  const source = ctx.createMediaStreamSource(session.stream);
  const capture = new AudioWorkletNode(ctx, 'capture', {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    channelCount: 1,
    channelCountMode: 'explicit',
    processorOptions: { sessionRate },
  });
  // The capture node outputs silence; connecting it keeps it in the rendering graph.
  source.connect(capture).connect(ctx.destination);
  const playback = new AudioWorkletNode(ctx, 'playback', {
    numberOfInputs: 0,
    numberOfOutputs: 1,
    outputChannelCount: [1],
    processorOptions: { sessionRate, targetMs: 60 },
  });
  playback.connect(ctx.destination);
  capture.port.onmessage = (event) => captureOnMessage(session, event.data);
  playback.port.onmessage = (event) => playbackOnMessage(session, event.data);
  session.nodes = { source, capture, playback };
}

function captureOnMessage(session, msg) {
  if (msg.type !== 'frame' || session !== current) return;
  const { ws } = session;
  if (ws.readyState === WebSocket.OPEN && ws.bufferedAmount < MAX_SOCKET_BUFFER_BYTES) {
    ws.send(msg.samples);
    session.framesSent++;
    setCounter('framesSent', ui.framesSent, session.framesSent);
  }
  ui.micLevel.value = meterValue(msg.level);
  trackSpeech(session, dbfs(msg.level) > SPEECH_DBFS);
}

/** A small VAD on the mic level, so the turn log can say when the caller spoke. */
function trackSpeech(session, voiced) {
  const s = session.speech;
  if (voiced) {
    s.voicedRun++;
    s.quietRun = 0;
    if (!s.speaking && s.voicedRun >= SPEECH_START_FRAMES) {
      s.speaking = true;
      s.startedAt = performance.now() - SPEECH_START_FRAMES * 20;
    }
  } else {
    s.quietRun++;
    s.voicedRun = 0;
    if (s.speaking && s.quietRun >= SPEECH_END_FRAMES) {
      s.speaking = false;
      const seconds = (performance.now() - s.startedAt) / 1000 - (SPEECH_END_FRAMES * 20) / 1000;
      addLog('caller', `You spoke (${seconds.toFixed(1)} s)`);
    }
  }
}

function playbackOnMessage(session, msg) {
  if (session !== current) return;
  if (msg.type === 'played') {
    send(session, { type: 'mark', name: msg.name });
    session.marksPlayed++;
    ui.app.dataset.marksPlayed = String(session.marksPlayed);
  } else if (msg.type === 'stats') {
    setCounter('framesPlayed', ui.framesPlayed, msg.framesPlayed);
    ui.queuedMs.textContent = String(msg.queuedMs);
    ui.app.dataset.underruns = String(msg.underruns);
    ui.agentLevel.value = meterValue(msg.level);
  }
}

// ── socket ────────────────────────────────────────────────────────────────────────────────

function send(session, msg) {
  if (session.ws.readyState === WebSocket.OPEN) session.ws.send(JSON.stringify(msg));
}

function socketOnMessage(session, event) {
  if (session !== current) return;
  if (typeof event.data !== 'string') {
    if (!session.nodes) return;
    session.framesReceived++;
    setCounter('framesReceived', ui.framesReceived, session.framesReceived);
    session.nodes.playback.port.postMessage({ type: 'frame', samples: event.data }, [event.data]);
    return;
  }
  let msg;
  try {
    msg = JSON.parse(event.data);
  } catch {
    addLog('error', 'The worker sent a message that is not JSON.');
    return;
  }
  switch (msg.type) {
    case 'hello':
      onHello(session, msg);
      return;
    case 'mark':
      session.nodes?.playback.port.postMessage({ type: 'mark', name: msg.name });
      return;
    case 'clear':
      session.nodes?.playback.port.postMessage({ type: 'clear' });
      addLog('barge-in', 'Barge-in: you spoke over the agent, and its reply was cut off');
      return;
    case 'event':
      if (msg.event === 'say') {
        const seconds = (msg.durationMs / 1000).toFixed(1);
        if (msg.tone) {
          addLog('agent', `Agent replied with the tone of key ${msg.tone} (${seconds} s)`, {
            tone: msg.tone,
            utterance: msg.utteranceId,
          });
        } else {
          addLog('agent', `Agent replied (${seconds} s)`, { utterance: msg.utteranceId });
        }
      } else if (msg.event === 'dtmf') {
        addLog('dtmf', `You pressed ${msg.digit}; the agent received it`, { digit: msg.digit });
      }
      return;
    case 'hangup':
      session.hangupReason = msg.reason;
      return;
    case 'error':
      addLog('error', `Worker error ${msg.code}: ${msg.message}`, { code: msg.code });
      return;
    default:
      addLog('error', `Unknown message from the worker: ${String(msg.type)}`);
  }
}

function onHello(session, hello) {
  if (hello.protocol !== PROTOCOL_VERSION || hello.encoding !== 'pcm16le' || hello.channels !== 1) {
    endSession(session, 'The worker speaks another protocol version. Reload the page.', true);
    return;
  }
  session.startedAt = performance.now();
  session.maxDurationSeconds = hello.maxDurationSeconds;
  buildAudioGraph(session, hello.sampleRate);
  ui.limit.textContent = clock(hello.maxDurationSeconds);
  ui.info.textContent =
    `Session ${hello.sessionId} · agent ${hello.agent} · ` +
    `${hello.sampleRate / 1000} kHz PCM16 mono · context ${session.ctx.sampleRate / 1000} kHz`;
  ui.app.dataset.sessionId = hello.sessionId;
  ui.app.dataset.sampleRate = String(hello.sampleRate);
  session.timer = setInterval(() => {
    ui.elapsed.textContent = clock((performance.now() - session.startedAt) / 1000);
  }, 250);
  setState('connected', `Connected to ${hello.agent}`);
  addLog('system', `Connected. Say something; the ${hello.agent} agent answers.`);
}

function socketOnClose(session, event) {
  if (session !== current) return;
  ui.app.dataset.closeCode = String(event.code);
  const normal = event.code === 1000 || session.hangupReason === 'caller-hangup';
  let words;
  if (!session.startedAt) {
    words =
      'Could not open the session: the link was refused (expired or already used) or the worker ' +
      'is unavailable. Press Start to try again.';
  } else {
    words =
      HANGUP_TEXT[session.hangupReason] ?? CLOSE_TEXT[event.code] ?? `Closed (${event.code}).`;
  }
  endSession(session, words, !normal);
}

// ── start / end ───────────────────────────────────────────────────────────────────────────

async function start() {
  if (current) return;
  clearError();
  ui.keyForm.hidden = true;
  setState('starting', 'Starting…');
  const session = {
    ctx: undefined,
    stream: undefined,
    ws: undefined,
    nodes: undefined,
    startedAt: 0,
    framesSent: 0,
    framesReceived: 0,
    marksPlayed: 0,
    hangupReason: undefined,
    speech: { speaking: false, voicedRun: 0, quietRun: 0, startedAt: 0 },
  };
  current = session;
  for (const [name, el] of [
    ['framesSent', ui.framesSent],
    ['framesReceived', ui.framesReceived],
    ['framesPlayed', ui.framesPlayed],
  ]) {
    setCounter(name, el, 0);
  }
  ui.app.dataset.marksPlayed = '0';
  try {
    // Created inside the click, so the browser lets it play.
    session.ctx = new AudioContext({ latencyHint: 'interactive' });
    session.stream = await openMicrophone();
    // Hang up while the browser asked for the microphone: release what arrived late.
    if (session !== current) return releaseAudio(session);
    const created = await createSession();
    await Promise.all([
      session.ctx.audioWorklet.addModule('capture-worklet.js'),
      session.ctx.audioWorklet.addModule('playback-worklet.js'),
    ]);
    await session.ctx.resume();
    if (session !== current) return releaseAudio(session);
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}${created.wsUrl}`);
    ws.binaryType = 'arraybuffer';
    session.ws = ws;
    ws.onmessage = (event) => socketOnMessage(session, event);
    ws.onclose = (event) => socketOnClose(session, event);
    setState('starting', 'Connecting…');
  } catch (err) {
    endSession(
      session,
      err instanceof PageError ? err.message : `Could not start: ${err?.message ?? err}`,
      true,
    );
  }
}

function hangUp() {
  const session = current;
  if (!session) return;
  if (session.ws?.readyState === WebSocket.OPEN) {
    send(session, { type: 'hangup' });
    setState('ending', 'Hanging up…');
    // The worker closes the socket; if it does not, close it ourselves.
    session.hangupTimer = setTimeout(
      () => session.ws.close(1000, 'caller hung up'),
      HANGUP_GRACE_MS,
    );
  } else {
    endSession(session, 'You hung up.', false);
  }
}

/** Releases the mic, the audio graph and the socket; shows why the session ended. */
function endSession(session, words, isError) {
  if (session !== current) return;
  if (session.startedAt) addLog('system', words);
  current = undefined;
  clearInterval(session.timer);
  clearTimeout(session.hangupTimer);
  if (session.ws && session.ws.readyState <= WebSocket.OPEN) session.ws.close(1000, 'page closed');
  releaseAudio(session);
  ui.micLevel.value = 0;
  ui.agentLevel.value = 0;
  if (isError) {
    showError(words);
    setState('error', 'Ended with an error');
  } else {
    setState('ended', words);
  }
}

/** Stops the microphone and the audio graph; safe to call twice. */
function releaseAudio(session) {
  if (session.nodes) {
    session.nodes.capture.port.postMessage({ type: 'stop' });
    session.nodes.playback.port.postMessage({ type: 'stop' });
    session.nodes.source.disconnect();
    session.nodes.capture.disconnect();
    session.nodes.playback.disconnect();
    session.nodes = undefined;
  }
  for (const track of session.stream?.getTracks() ?? []) track.stop();
  if (session.ctx && session.ctx.state !== 'closed')
    void session.ctx.close().catch(() => undefined);
}

function sendDtmf(digit) {
  if (!current || ui.app.dataset.state !== 'connected') return;
  send(current, { type: 'dtmf', digit });
}

// ── wiring ────────────────────────────────────────────────────────────────────────────────

ui.start.addEventListener('click', () => void start());
ui.hangup.addEventListener('click', hangUp);
ui.keypad.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-digit]');
  if (button) sendDtmf(button.dataset.digit);
});
document.addEventListener('keydown', (event) => {
  if (event.repeat || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.target instanceof HTMLInputElement) return;
  if (!DTMF_KEYS.includes(event.key) || ui.app.dataset.state !== 'connected') return;
  event.preventDefault();
  const button = ui.keypad.querySelector(`button[data-digit="${event.key}"]`);
  button.classList.add('pressed');
  setTimeout(() => button.classList.remove('pressed'), 150);
  sendDtmf(event.key);
});
ui.keyForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const key = ui.apiKey.value.trim();
  if (!key) return;
  sessionStorage.setItem(API_KEY_STORAGE, key);
  ui.apiKey.value = '';
  void start();
});
window.addEventListener('pagehide', () => {
  if (current?.ws?.readyState === WebSocket.OPEN) send(current, { type: 'hangup' });
});
setState('idle', 'Ready');
