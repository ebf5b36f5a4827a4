import { resample } from '@callgate/audio';
import type { BaseCaller, CallerOptions, NextStream, StreamEndInfo } from './base-caller.js';
import { callSidFromUrl, randomSid } from './base-caller.js';
import { SimulatorError } from './errors.js';
import { SansPbxCaller } from './sanspbx-caller.js';
import { detectSegments } from './summary.js';
import { fetchAction, fetchTwiml } from './twiml.js';
import { TwilioCaller } from './twilio-caller.js';
import type { CallSummary, SimulateCallOptions } from './types.js';

const DEFAULT_TAIL_MS = 3000;

/**
 * Places one simulated call and resolves with its summary once the socket is closed: the caller
 * hung up (`hangupAfterMs`, default audio length + `tailMs`; or `signal` aborted) or the server
 * closed it. With `twimlUrl` (Twilio only) the voice webhook runs first, like Twilio.
 * Rejects with a SimulatorError before the call is up: SIM_ERR_CONNECT, SIM_ERR_HANDSHAKE (with
 * `status`), SIM_ERR_TIMEOUT, SIM_ERR_TWIML, SIM_ERR_ABORTED, SIM_ERR_INVALID_OPTIONS.
 */
export async function simulateCall(options: SimulateCallOptions): Promise<CallSummary> {
  const provider = options.provider ?? 'twilio';
  if (provider !== 'twilio' && provider !== 'sanspbx') {
    throw new SimulatorError('SIM_ERR_INVALID_OPTIONS', `unknown provider ${String(provider)}`);
  }
  const audioRate = options.audioSampleRate ?? 8000;
  const lineRate = provider === 'sanspbx' ? (options.sansPbxSampleRate ?? 8000) : 8000;
  for (const [name, rate] of [
    ['audioSampleRate', audioRate],
    ['sansPbxSampleRate', lineRate],
  ] as const) {
    if (!Number.isInteger(rate) || rate < 8000 || rate % 50 !== 0) {
      throw new SimulatorError(
        'SIM_ERR_INVALID_OPTIONS',
        `${name} must be an integer ≥ 8000 with whole 20 ms frames, got ${rate}`,
      );
    }
  }
  for (const d of options.dtmf ?? []) {
    if (!/^[0-9A-D*#]$/.test(d.digit) || !(d.atMs >= 0)) {
      throw new SimulatorError(
        'SIM_ERR_INVALID_OPTIONS',
        `bad DTMF entry ${JSON.stringify(d)} (digit 0-9, A-D, * or #; atMs ≥ 0)`,
      );
    }
  }

  // Twilio: one CallSid for the webhook, the stream and the summary. SansPBX: its own callId form.
  const callSid =
    options.callSid ??
    (provider === 'twilio' ? (callSidFromUrl(options.url) ?? randomSid('CA')) : undefined);
  const accountSid = options.accountSid ?? randomSid('AC');
  let url = options.url;
  let customParameters = { ...options.customParameters };
  let actionUrl: string | undefined;
  if (provider === 'twilio' && typeof options.twimlUrl === 'string') {
    const twiml = await fetchTwiml({
      twimlUrl: options.twimlUrl,
      callSid: callSid ?? randomSid('CA'),
      accountSid,
      from: options.from ?? '+15550100',
      to: options.to ?? '+15550101',
      ...(options.authToken === undefined ? {} : { authToken: options.authToken }),
      ...(options.connectTimeoutMs === undefined ? {} : { timeoutMs: options.connectTimeoutMs }),
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    customParameters = { ...twiml.parameters, ...options.customParameters };
    actionUrl = twiml.actionUrl;
    // An explicit URL wins: the TwiML names the public host, the test talks to loopback.
    if (url === '' && twiml.streamUrl !== undefined) url = twiml.streamUrl;
  }
  if (url === '') {
    throw new SimulatorError(
      options.twimlUrl === undefined || options.twimlUrl === false
        ? 'SIM_ERR_INVALID_OPTIONS'
        : 'SIM_ERR_TWIML',
      'no stream URL: give `url` or a voice webhook whose TwiML has <Stream url>',
    );
  }

  // Twilio's `<Connect action>` loop: on a server close frame, ask the action URL what next.
  const action = {
    requests: 0,
    result: null as 'stream' | 'empty' | 'hangup' | 'error' | null,
  };
  const from = options.from ?? '+15550100';
  const to = options.to ?? '+15550101';
  const onStreamEnded = async (info: StreamEndInfo): Promise<NextStream | undefined> => {
    if (actionUrl === undefined) return undefined;
    action.requests++;
    let answer;
    try {
      answer = await fetchAction({
        actionUrl,
        callSid: caller.callSid,
        accountSid,
        from,
        to,
        ...(options.authToken === undefined ? {} : { authToken: options.authToken }),
        ...(options.connectTimeoutMs === undefined ? {} : { timeoutMs: options.connectTimeoutMs }),
        signal: info.signal,
      });
    } catch (err) {
      action.result = 'error';
      throw err;
    }
    const twiml = answer.twiml;
    if (twiml.kind === 'end' || twiml.streamUrl === undefined) {
      action.result = twiml.kind === 'end' ? twiml.result : 'error';
      return undefined;
    }
    action.result = 'stream';
    // The next action URL is the one this answer names (its state moves on); none: the call
    // ends with the next stream.
    actionUrl = twiml.actionUrl;
    return { url: twiml.streamUrl, customParameters: { ...twiml.parameters } };
  };
  const followAction =
    provider === 'twilio' && options.followAction !== false && actionUrl !== undefined;

  const input = options.audio ?? new Int16Array(0);
  const segments = options.segments ?? detectSegments(input, audioRate);
  const line = audioRate === lineRate ? input : resample(input, audioRate, lineRate);
  const callerOptions: CallerOptions = {
    url,
    ...(callSid === undefined ? {} : { callSid }),
    accountSid,
    customParameters,
    segments,
    ...(followAction ? { onStreamEnded } : {}),
    ...pick(options, [
      'maxReconnects',
      'authToken',
      'signatureUrl',
      'headers',
      'connectTimeoutMs',
      'signal',
      'onEvent',
    ]),
  };
  const caller: BaseCaller =
    provider === 'sanspbx'
      ? new SansPbxCaller({ ...callerOptions, sampleRate: lineRate })
      : new TwilioCaller(callerOptions);
  caller.say(line);
  let lastDtmfMs = 0;
  for (const d of options.dtmf ?? []) {
    caller.sendDtmf(d.digit, d.atMs);
    lastDtmfMs = Math.max(lastDtmfMs, d.atMs);
  }
  const audioMs = (input.length * 1000) / audioRate;
  caller.hangupAt(
    options.hangupAfterMs ?? Math.max(audioMs, lastDtmfMs) + (options.tailMs ?? DEFAULT_TAIL_MS),
  );
  await caller.connect();
  await caller.ended;
  return { ...caller.summary(), actionRequests: action.requests, actionResult: action.result };
}

function pick<T extends object, K extends keyof T>(
  obj: T,
  keys: readonly K[],
): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (obj[k] !== undefined) out[k] = obj[k];
  return out;
}
