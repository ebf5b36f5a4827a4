import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJsonError, statusOf, traceFields, type Logger } from '@callgate/runtime';
// Only the signature check, not the whole REST client (see twiml.ts).
import { validateRequest } from 'twilio/lib/webhooks/webhooks.js';
import { signCallToken } from './call-token.js';
import { MEDIA_ERRORS, type MediaCodeWith } from './errors.js';
import type { MediaWorker } from './media-worker.js';
import {
  decideStreamAction,
  decodeStreamActionState,
  encodeStreamActionState,
} from './stream-action.js';
import {
  ACTION_PATH,
  CALL_SID_RE,
  STATUS_PATH,
  STREAM_PATH,
  TWIML_PATH,
  buildEmptyTwiml,
  buildGiveUpTwiml,
  buildStreamTwiml,
  publicOrigins,
} from './twiml.js';

type Route = 'twiml' | 'status' | 'action';

/** A webhook refused with `code`; its HTTP status comes from MEDIA_ERRORS. */
class WebhookError extends Error {
  readonly status: number;
  constructor(
    readonly code: MediaCodeWith<'status'>,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = statusOf(MEDIA_ERRORS, code);
  }
}

/**
 * Twilio's HTTP side of a call: the voice webhook that answers `<Connect action><Stream>` TwiML
 * with a per-call token, the `<Connect action>` handler that offers a new stream when one ended
 * while the call goes on, and the stream status callback. Both are form posts, bounded in size, and,
 * with TWILIO_AUTH_TOKEN, signature-checked over PUBLIC_URL + the path as received.
 */
export class TwilioWebhooks {
  readonly #worker: MediaWorker;

  constructor(worker: MediaWorker) {
    this.#worker = worker;
  }

  /** Answers the request if it is one of ours; false lets the StreamServer answer 404. */
  async handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    let route: Route;
    if (url.pathname === TWIML_PATH) route = 'twiml';
    else if (url.pathname === STATUS_PATH) route = 'status';
    else if (url.pathname === ACTION_PATH) route = 'action';
    else return false;
    // The proxy's X-Request-Id joins these lines with its `request` line.
    const { requestId } = traceFields(req);
    const log =
      requestId === undefined ? this.#worker.logger : this.#worker.logger.child({ requestId });
    try {
      const params = await this.#readSignedForm(req);
      if (route === 'twiml') this.#twiml(req, res, params, log);
      else if (route === 'action') this.#action(req, res, url, params, log);
      else this.#status(res, params, log);
    } catch (err) {
      if (!(err instanceof WebhookError)) throw err;
      const level = err.status === 403 ? 'warn' : 'info';
      log[level]('webhook refused', {
        code: err.code,
        status: err.status,
        route,
        message: err.message,
      });
      this.#worker.countError(err.code);
      this.#worker.metrics.webhooks.inc({ route, status: String(err.status) });
      // The rest of an oversized body is not worth reading: answer, then drop the connection.
      if (err.status === 413) res.setHeader('connection', 'close');
      sendJsonError(res, err.status, err.code, err.message, err.headers);
      if (err.status === 413) res.once('finish', () => req.destroy());
      return true;
    }
    this.#worker.metrics.webhooks.inc({ route, status: String(res.statusCode) });
    return true;
  }

  #twiml(
    req: IncomingMessage,
    res: ServerResponse,
    params: Record<string, string>,
    log: Logger,
  ): void {
    const callSid = requireCallSid(params);
    const offer = this.#streamOffer(req, callSid, 0);
    log.info('voice webhook answered', {
      callSid,
      streamHost: offer.streamHost,
      publicUrlConfigured: offer.publicUrlConfigured,
      callToken: offer.callToken,
      connectAction: offer.connectAction,
    });
    sendTwiml(res, offer.xml);
  }

  /**
   * `<Connect action>`: Twilio POSTs here when a stream ended while the call went on (our side
   * closed it with a close frame: a proxy or worker restart), or when the call ended. A call still
   * in progress gets a fresh `<Connect><Stream>` (new call token, same parameters as the voice
   * webhook), until STREAM_RECONNECT_LIMIT short-lived streams in a row; then a polite goodbye.
   * Any other CallStatus (completed, ...) gets an empty `<Response/>`.
   */
  #action(
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    params: Record<string, string>,
    log: Logger,
  ): void {
    const callSid = requireCallSid(params);
    const { config, metrics } = this.#worker;
    const decoded = decodeStreamActionState(config.callTokenSecret, callSid, url.searchParams);
    if (!decoded.ok) {
      throw new WebhookError(
        'MEDIA_ERR_BAD_ACTION_STATE',
        `action state ${decoded.reason} (r, at${config.callTokenSecret === undefined ? '' : ', sig'} in the query)`,
      );
    }
    const callStatus = (params.CallStatus ?? '').slice(0, 32);
    const nowMs = Date.now();
    const streamLastedMs = Math.max(0, nowMs - decoded.state.offeredAtMs);
    metrics.streamLifetime.observe(streamLastedMs / 1000);
    const fields = {
      callSid,
      callStatus,
      streamLastedMs,
      reconnectsBefore: decoded.state.reconnects,
      stateSigned: decoded.signed,
    };
    if (callStatus !== 'in-progress') {
      metrics.streamActions.inc({ outcome: 'completed' });
      log.info('stream action: call over', fields);
      sendTwiml(res, buildEmptyTwiml());
      return;
    }
    const decision = decideStreamAction(
      decoded.state,
      nowMs,
      config.streamReconnectLimit,
      config.streamStableMs,
    );
    if (decision.kind === 'give-up') {
      metrics.streamActions.inc({ outcome: 'give-up' });
      this.#worker.countError('MEDIA_ERR_RECONNECT_LIMIT');
      log.warn('stream action: reconnect limit reached, ending the call', {
        ...fields,
        code: 'MEDIA_ERR_RECONNECT_LIMIT',
        limit: config.streamReconnectLimit,
        stableMs: config.streamStableMs,
      });
      sendTwiml(res, buildGiveUpTwiml());
      return;
    }
    const offer = this.#streamOffer(req, callSid, decision.reconnects);
    metrics.streamActions.inc({ outcome: 'reconnect' });
    log.info('stream action: new stream offered', {
      ...fields,
      reconnect: decision.reconnects,
      previousStreamStable: decision.stable,
      streamHost: offer.streamHost,
    });
    sendTwiml(res, offer.xml);
  }

  /** `<Connect action><Stream>` for `callSid` with a fresh call token. */
  #streamOffer(
    req: IncomingMessage,
    callSid: string,
    reconnects: number,
  ): {
    xml: string;
    streamHost: string;
    publicUrlConfigured: boolean;
    callToken: boolean;
    connectAction: boolean;
  } {
    const { config } = this.#worker;
    const origins = publicOrigins(config.publicUrl, req.headers);
    if (!origins) {
      throw new WebhookError('MEDIA_ERR_BAD_WEBHOOK', 'no PUBLIC_URL and no usable Host header');
    }
    const callToken =
      config.callTokenSecret === undefined
        ? undefined
        : signCallToken({
            secret: config.callTokenSecret,
            callSid,
            ttlSeconds: config.callTokenTtlSeconds,
          });
    const actionUrl =
      config.streamReconnectLimit === 0
        ? undefined
        : `${origins.http}${ACTION_PATH}?${encodeStreamActionState(
            config.callTokenSecret,
            callSid,
            {
              reconnects,
              offeredAtMs: Date.now(),
            },
          )}`;
    const xml = buildStreamTwiml({
      streamUrl: `${origins.ws}${STREAM_PATH}/${callSid}`,
      callToken,
      statusCallbackUrl: `${origins.http}${STATUS_PATH}`,
      actionUrl,
    });
    return {
      xml,
      streamHost: origins.ws,
      publicUrlConfigured: origins.configured,
      callToken: callToken !== undefined,
      connectAction: actionUrl !== undefined,
    };
  }

  #status(res: ServerResponse, params: Record<string, string>, log: Logger): void {
    const callSid = requireCallSid(params);
    const fields: Record<string, unknown> = {
      callSid,
      streamSid: params.StreamSid?.slice(0, 64),
      streamEvent: params.StreamEvent?.slice(0, 64),
      streamName: params.StreamName?.slice(0, 128),
      timestamp: params.Timestamp?.slice(0, 64),
    };
    if (params.StreamError !== undefined) fields.streamError = params.StreamError.slice(0, 500);
    const level = params.StreamEvent === 'stream-error' ? 'warn' : 'info';
    log[level]('stream status', fields);
    res.writeHead(204, { 'cache-control': 'no-store' });
    res.end();
  }

  /** Reads a bounded form body and checks `X-Twilio-Signature` when an auth token is set. */
  async #readSignedForm(req: IncomingMessage): Promise<Record<string, string>> {
    if (req.method !== 'POST') {
      throw new WebhookError('MEDIA_ERR_METHOD_NOT_ALLOWED', `${req.method ?? ''} not allowed`, {
        Allow: 'POST',
      });
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/x-www-form-urlencoded') {
      throw new WebhookError(
        'MEDIA_ERR_NOT_A_FORM',
        'body must be application/x-www-form-urlencoded',
      );
    }
    const body = await readBody(req, this.#worker.config.maxWebhookBytes);
    const params: Record<string, string> = {};
    for (const [name, value] of new URLSearchParams(body)) params[name] = value;
    const { twilioAuthToken, publicUrl } = this.#worker.config;
    if (twilioAuthToken !== undefined && publicUrl !== undefined) {
      const header = req.headers['x-twilio-signature'];
      const signature = Array.isArray(header) ? header[0] : header;
      // Twilio signs the URL it was configured with: the public origin plus the path as sent.
      const signedUrl = `${publicUrl.origin}${req.url ?? ''}`;
      if (
        signature === undefined ||
        !validateRequest(twilioAuthToken, signature, signedUrl, params)
      ) {
        throw new WebhookError('MEDIA_ERR_BAD_SIGNATURE', 'X-Twilio-Signature missing or invalid');
      }
    }
    return params;
  }
}

function sendTwiml(res: ServerResponse, xml: string): void {
  res.writeHead(200, {
    'content-type': 'text/xml; charset=utf-8',
    'content-length': Buffer.byteLength(xml),
    'cache-control': 'no-store',
  });
  res.end(xml);
}

function requireCallSid(params: Record<string, string>): string {
  const callSid = params.CallSid;
  if (callSid === undefined || !CALL_SID_RE.test(callSid)) {
    throw new WebhookError('MEDIA_ERR_BAD_WEBHOOK', 'CallSid missing or invalid');
  }
  return callSid;
}

// An oversized body is read and dropped up to this much (or this long) before the 413 goes out:
// answering while the peer still writes ends in a TCP reset that can destroy the answer on its way
// (a proxy then sees ECONNRESET and answers 502 instead of relaying the 413).
const DISCARD_BYTES = 1 << 20;
const DISCARD_MS = 2000;

/** Reads and drops the rest of `req` (bounded), then settles with the 413. */
function discardThenReject(
  req: IncomingMessage,
  maxBytes: number,
  already: number,
  reject: (err: WebhookError) => void,
): void {
  let size = already;
  let settled = false;
  const done = (): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    req.off('data', onData);
    req.off('end', done);
    req.on('error', () => undefined);
    req.resume(); // keep the socket flowing so the 413 can be written
    reject(new WebhookError('MEDIA_ERR_BODY_TOO_LARGE', `body over ${maxBytes} bytes`));
  };
  const onData = (chunk: Buffer): void => {
    size += chunk.length;
    if (size > maxBytes + DISCARD_BYTES) done();
  };
  const timer = setTimeout(done, DISCARD_MS);
  if (req.readableEnded) {
    done();
    return;
  }
  req.on('data', onData);
  req.once('end', done);
  req.once('error', done);
}

function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    return new Promise<string>((_resolve, reject) => {
      if (declared > maxBytes + DISCARD_BYTES) discardThenReject(req, maxBytes, Infinity, reject);
      else discardThenReject(req, maxBytes, 0, reject);
    });
  }
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        discardThenReject(req, maxBytes, size, reject);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, size).toString('utf8'));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(new WebhookError('MEDIA_ERR_BAD_WEBHOOK', `request body aborted: ${err.message}`));
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      // A late reset must not become an unhandled 'error' event.
      req.on('error', () => undefined);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
