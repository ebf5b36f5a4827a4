import type { IncomingMessage } from 'node:http';

/** The proxy's ids of one request, for joining a worker's log lines with the proxy's. */
export interface TraceFields {
  /** `X-Request-Id`: one routing decision of the proxy (a webhook, an upgrade). */
  requestId?: string;
  /** `X-Tunnel-Id`: one proxied WebSocket (the proxy's `tunnel closed` line has the same id). */
  tunnelId?: string;
}

// The proxy sends UUIDs. Anything else comes from a client that reached the worker directly: not
// worth a log field, and a header value must not be able to forge one.
const TRACE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * The `requestId` and `tunnelId` the proxy put on a request (`X-Request-Id`, `X-Tunnel-Id`), as
 * log fields; a missing or odd-looking header gives no field.
 */
export function traceFields(req: Pick<IncomingMessage, 'headers'>): TraceFields {
  const fields: TraceFields = {};
  const requestId = req.headers['x-request-id'];
  const tunnelId = req.headers['x-tunnel-id'];
  if (typeof requestId === 'string' && TRACE_ID.test(requestId)) fields.requestId = requestId;
  if (typeof tunnelId === 'string' && TRACE_ID.test(tunnelId)) fields.tunnelId = tunnelId;
  return fields;
}
