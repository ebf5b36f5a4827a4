/**
 * The URL Twilio signs for a stream upgrade (`X-Twilio-Signature`): the URL without its query
 * string or fragment. A WebSocket upgrade has no body, so the signature covers just this URL.
 */
export function urlWithoutQuery(url: string): string {
  const cut = url.search(/[?#]/);
  return cut === -1 ? url : url.slice(0, cut);
}
