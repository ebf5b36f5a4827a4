// Only the webhook helpers: `import twilio from 'twilio'` loads the whole REST client. twilio@6 has
// no `exports` map, so this path is public.
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { validateRequest } from 'twilio/lib/webhooks/webhooks.js';
import type { SignatureMode } from './config.js';

export type SignatureVerdict = 'valid' | 'missing' | 'invalid';

export interface SignatureCheckOptions {
  authToken: string;
  /** The public origin; its host (and port, if any) is what Twilio dialled. */
  publicUrl: URL;
  mode: Exclude<SignatureMode, 'off'>;
}

/**
 * Validates `X-Twilio-Signature` on a media-stream upgrade at the proxy, so a forged stream never
 * reaches a worker (the HMAC-SHA1 of the URL with the account's auth token, base64).
 * Twilio signs the URL it dialled: `wss://<public host><path>`, without the query string (Twilio
 * drops it) and with no parameters, since an upgrade has no body. The URL is built from the
 * configured public origin, never from `Host` or `X-Forwarded-*`, which the client controls.
 */
export class SignatureCheck {
  readonly mode: Exclude<SignatureMode, 'off'>;
  readonly #authToken: string;
  /** The token as a key object, made once: a string key is converted on every HMAC. */
  readonly #key: KeyObject;
  readonly #origin: string;

  constructor(options: SignatureCheckOptions) {
    this.mode = options.mode;
    this.#authToken = options.authToken;
    this.#key = createSecretKey(Buffer.from(options.authToken, 'utf8'));
    // A plain-http origin (a local run without TLS) is dialled as ws://; production is wss://.
    const secure = options.publicUrl.protocol === 'https:' || options.publicUrl.protocol === 'wss:';
    this.#origin = `${secure ? 'wss' : 'ws'}://${options.publicUrl.host}`;
  }

  /** The URL Twilio signs for a stream on `pathname`. */
  signedUrl(pathname: string): string {
    return this.#origin + pathname;
  }

  /** `header` is the raw `X-Twilio-Signature` value (a repeated header arrives comma-joined). */
  verify(pathname: string, header: string | string[] | undefined): SignatureVerdict {
    if (typeof header !== 'string' || header.length === 0) return 'missing';
    const url = this.signedUrl(pathname);
    // Twilio signs the URL it dialled, which is this one: one HMAC, compared in constant time.
    // Only a mismatch goes to twilio.validateRequest, which also tries the URL with and without
    // a default port and in normalized forms (up to six HMACs and two URL parses): the set of
    // accepted signatures is exactly twilio's, and a valid upgrade pays for one HMAC.
    const expected = createHmac('sha1', this.#key).update(url).digest('base64');
    if (header.length === expected.length) {
      const given = Buffer.from(header, 'latin1');
      if (given.length === expected.length && timingSafeEqual(given, Buffer.from(expected))) {
        return 'valid';
      }
    }
    return validateRequest(this.#authToken, header, url, {}) ? 'valid' : 'invalid';
  }
}
