import { createHmac } from 'node:crypto';

/**
 * Twilio's request signature (`X-Twilio-Signature`): base64 HMAC-SHA1 keyed with the auth token over
 * the full URL followed by every parameter name and value, names sorted (twilio-media-streams.md
 * §2.1). A WebSocket upgrade has no body, so its data is just the URL. Written here because
 * `twilio` is not a dependency of this package; the doc's test vectors pin it to twilio@6.3.1.
 */
export function computeTwilioSignature(
  authToken: string,
  url: string,
  params: Readonly<Record<string, string>> = {},
): string {
  let data = url;
  for (const name of Object.keys(params).sort()) data += name + params[name];
  return createHmac('sha1', authToken).update(data, 'utf8').digest('base64');
}

/** The URL Twilio signs for a stream upgrade: the URL without its query string or fragment. */
export function urlWithoutQuery(url: string): string {
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}
