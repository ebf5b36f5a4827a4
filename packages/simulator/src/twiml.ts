import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { getExpectedTwilioSignature } from 'twilio/lib/webhooks/webhooks.js';
import { SimulatorError, connectError } from './errors.js';

/** What the simulator takes from a voice-webhook answer: the `<Connect><Stream>` target. */
export interface ParsedTwiml {
  /** `<Stream url>`, entity-decoded; absent when the attribute is missing. */
  streamUrl: string | undefined;
  /** `<Parameter name value>` children of the stream, in document order (later names win). */
  parameters: Record<string, string>;
  /** `<Connect action>`, entity-decoded; where Twilio goes when the stream ends. */
  actionUrl: string | undefined;
}

export interface FetchTwimlOptions {
  twimlUrl: string;
  callSid: string;
  accountSid: string;
  from: string;
  to: string;
  /** When set, the POST carries `X-Twilio-Signature` over the URL and the form parameters. */
  authToken?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface TwimlResult extends ParsedTwiml {
  /** The stream URL resolved against the webhook URL (a relative `url` is allowed by TwiML). */
  streamUrl: string | undefined;
  status: number;
  body: string;
}

/**
 * The voice-webhook step of a Twilio call: POSTs the call's form parameters to `twimlUrl` like
 * Twilio does for an incoming call, then reads the `<Connect><Stream>` out of the answer.
 * Rejects with SIM_ERR_CONNECT, SIM_ERR_TIMEOUT or SIM_ERR_TWIML (non-2xx, or no stream in it).
 */
export async function fetchTwiml(options: FetchTwimlOptions): Promise<TwimlResult> {
  const { status, body } = await postCallback(options.twimlUrl, options, 'ringing');
  if (status < 200 || status > 299) {
    throw new SimulatorError(
      'SIM_ERR_TWIML',
      `voice webhook ${options.twimlUrl} answered ${status}: ${body.slice(0, 200)}`,
      { status },
    );
  }
  const parsed = parseTwiml(body);
  let streamUrl = parsed.streamUrl;
  if (streamUrl !== undefined) streamUrl = resolveStreamUrl(streamUrl, options.twimlUrl);
  const actionUrl =
    parsed.actionUrl === undefined
      ? undefined
      : resolveActionUrl(parsed.actionUrl, options.twimlUrl);
  return { streamUrl, parameters: parsed.parameters, actionUrl, status, body };
}

/**
 * POSTs a call's standard parameters to a TwiML URL as Twilio does: form-encoded, with
 * `X-Twilio-Signature` over the full URL when an auth token is given.
 */
function postCallback(
  url: string,
  options: Pick<
    FetchActionOptions,
    'callSid' | 'accountSid' | 'from' | 'to' | 'authToken' | 'timeoutMs' | 'signal'
  >,
  callStatus: string,
  label = 'voice webhook',
): ReturnType<typeof postForm> {
  const params: Record<string, string> = {
    CallSid: options.callSid,
    AccountSid: options.accountSid,
    From: options.from,
    To: options.to,
    CallStatus: callStatus,
    Direction: 'inbound',
  };
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'text/xml, application/xml',
  };
  if (options.authToken !== undefined) {
    headers['x-twilio-signature'] = getExpectedTwilioSignature(options.authToken, url, params);
  }
  const body = new URLSearchParams(params).toString();
  return postForm(url, headers, body, options.timeoutMs ?? 5000, options.signal, label);
}

export interface FetchActionOptions {
  /** The `<Connect action>` URL, absolute, with its query string. */
  actionUrl: string;
  callSid: string;
  accountSid: string;
  from: string;
  to: string;
  /** Default `in-progress`: the stream ended, the call did not. */
  callStatus?: string;
  authToken?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What an action request answered. */
export type ActionTwiml =
  | ({ kind: 'stream' } & ParsedTwiml)
  | {
      kind: 'end';
      /** `empty`: `<Response/>`; `hangup`: anything else without a stream (`<Say>`, `<Hangup/>`). */
      result: 'empty' | 'hangup';
      /** The verbs in document order, e.g. ['Say', 'Hangup']. */
      verbs: string[];
    };

export interface ActionResult {
  status: number;
  body: string;
  twiml: ActionTwiml;
}

/**
 * Twilio's `<Connect action>` step: POSTs the call's parameters (CallStatus `in-progress`) to the
 * action URL, signed over the full URL (query included) like Twilio, and reads what to do next.
 * URLs in a stream answer are resolved against the action URL. Rejects with SIM_ERR_CONNECT,
 * SIM_ERR_TIMEOUT or SIM_ERR_TWIML (non-2xx, or not TwiML).
 */
export async function fetchAction(options: FetchActionOptions): Promise<ActionResult> {
  const { status, body } = await postCallback(
    options.actionUrl,
    options,
    options.callStatus ?? 'in-progress',
    'action URL',
  );
  if (status < 200 || status > 299) {
    throw new SimulatorError(
      'SIM_ERR_TWIML',
      `action URL ${options.actionUrl} answered ${status}: ${body.slice(0, 200)}`,
      { status },
    );
  }
  const twiml = parseActionTwiml(body);
  if (twiml.kind === 'stream') {
    if (twiml.streamUrl !== undefined) {
      twiml.streamUrl = resolveStreamUrl(twiml.streamUrl, options.actionUrl);
    }
    if (twiml.actionUrl !== undefined) {
      twiml.actionUrl = resolveActionUrl(twiml.actionUrl, options.actionUrl);
    }
  }
  return { status, body, twiml };
}

/**
 * Reads an action answer: a new `<Connect><Stream>`, or the end of the call (an empty
 * `<Response/>`, or verbs the simulator does not run, such as `<Say>` and `<Hangup/>`).
 * Throws SIM_ERR_TWIML when the body is no `<Response>`.
 */
export function parseActionTwiml(xml: string): ActionTwiml {
  const text = xml.replace(/<!--[\s\S]*?-->/g, '');
  if (/<Connect\b/.test(text)) return { kind: 'stream', ...parseTwiml(xml) };
  if (!/<Response\b/.test(text)) {
    throw new SimulatorError('SIM_ERR_TWIML', `not TwiML: ${xml.slice(0, 200)}`);
  }
  const verbs = [...text.matchAll(/<([A-Z][A-Za-z]*)\b/g)]
    .map((m) => m[1] ?? '')
    .filter((v) => v !== 'Response');
  return { kind: 'end', result: verbs.length === 0 ? 'empty' : 'hangup', verbs };
}

const MAX_TWIML_BYTES = 64 * 1024;

/**
 * POSTs a form with node:http(s) rather than fetch: fetch refuses "bad ports" (1, 6000, 6665…)
 * that Twilio would call without complaint, and hides the socket error code.
 */
function postForm(
  target: string,
  headers: Record<string, string>,
  body: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  label = 'voice webhook',
): Promise<{ status: number; body: string }> {
  const what = `${label} ${target}`;
  return new Promise((resolve, reject) => {
    let url: URL;
    try {
      url = new URL(target);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(url.protocol);
    } catch (err) {
      reject(new SimulatorError('SIM_ERR_INVALID_OPTIONS', `bad ${what}`, { cause: err }));
      return;
    }
    if (signal?.aborted === true) {
      reject(new SimulatorError('SIM_ERR_ABORTED', `${what} aborted`));
      return;
    }
    let settled = false;
    const finish = (err: SimulatorError | undefined, result?: { status: number; body: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (err) {
        req.destroy();
        reject(err);
      } else if (result) {
        resolve(result);
      }
    };
    const onAbort = (): void => finish(new SimulatorError('SIM_ERR_ABORTED', `${what} aborted`));
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = request(url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
    });
    const timer = setTimeout(
      () =>
        finish(new SimulatorError('SIM_ERR_TIMEOUT', `${what}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => finish(connectError(what, err)));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_TWIML_BYTES) {
          finish(new SimulatorError('SIM_ERR_TWIML', `${what}: answer larger than 64 KiB`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', (err) => finish(connectError(what, err)));
      res.on('end', () =>
        finish(undefined, {
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.end(body);
  });
}

/**
 * Extracts `<Connect><Stream url>` and its `<Parameter>` children from a TwiML document. A small
 * tolerant parser (comments skipped, either quote style, entities decoded) rather than a full XML
 * one: TwiML is flat and the simulator only needs these two elements.
 * Throws SIM_ERR_TWIML when the document has no `<Connect><Stream>`.
 */
export function parseTwiml(xml: string): ParsedTwiml {
  const text = xml.replace(/<!--[\s\S]*?-->/g, '');
  const connect = /<Connect\b((?:[^>"']|"[^"]*"|'[^']*')*?)>([\s\S]*?)<\/Connect\s*>/.exec(text);
  const stream =
    connect?.[2] === undefined
      ? null
      : /<Stream\b((?:[^>"']|"[^"]*"|'[^']*')*?)(\/>|>([\s\S]*?)<\/Stream\s*>)/.exec(connect[2]);
  if (stream === null) {
    throw new SimulatorError(
      'SIM_ERR_TWIML',
      `TwiML has no <Connect><Stream>: ${xml.slice(0, 200)}`,
    );
  }
  const streamAttrs = parseAttributes(stream[1] ?? '');
  const parameters: Record<string, string> = {};
  const inner = stream[3] ?? '';
  for (const m of inner.matchAll(/<Parameter\b((?:[^>"']|"[^"]*"|'[^']*')*?)\/?>/g)) {
    const attrs = parseAttributes(m[1] ?? '');
    const name = attrs['name'];
    if (name !== undefined) parameters[name] = attrs['value'] ?? '';
  }
  const connectAttrs = parseAttributes(connect?.[1] ?? '');
  return { streamUrl: streamAttrs['url'], parameters, actionUrl: connectAttrs['action'] };
}

/** Attributes of one start tag, values entity-decoded. */
export function parseAttributes(source: string): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const m of source.matchAll(/([A-Za-z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g)) {
    const name = m[1];
    if (name !== undefined) attrs[name] = decodeEntities(m[2] ?? m[3] ?? '');
  }
  return attrs;
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
};

/** Decodes the five XML entities and numeric character references; unknown ones stay as written. */
export function decodeEntities(value: string): string {
  return value.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[A-Za-z]+);/g, (whole, ref: string) => {
    if (ref.startsWith('#x') || ref.startsWith('#X'))
      return fromCodePoint(parseInt(ref.slice(2), 16), whole);
    if (ref.startsWith('#')) return fromCodePoint(parseInt(ref.slice(1), 10), whole);
    return NAMED_ENTITIES[ref] ?? whole;
  });
}

function fromCodePoint(code: number, fallback: string): string {
  return Number.isInteger(code) && code >= 0 && code <= 0x10ffff
    ? String.fromCodePoint(code)
    : fallback;
}

/**
 * Where the CLI posts the voice webhook by default: the stream URL's origin with ws→http and
 * wss→https, path `/media-stream/twiml` (the media worker's TwiML route).
 */
export function deriveTwimlUrl(streamUrl: string): string {
  const url = new URL(streamUrl);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  else if (url.protocol === 'wss:') url.protocol = 'https:';
  url.pathname = '/media-stream/twiml';
  url.search = '';
  url.hash = '';
  return url.toString();
}

/** Resolves a relative `<Connect action>` against the URL whose answer carried it. */
export function resolveActionUrl(actionUrl: string, base: string): string {
  return new URL(actionUrl, base).toString();
}

/** Resolves a relative `<Stream url>` against the webhook URL, keeping a WebSocket scheme. */
export function resolveStreamUrl(streamUrl: string, twimlUrl: string): string {
  const url = new URL(streamUrl, twimlUrl);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  return url.toString();
}
