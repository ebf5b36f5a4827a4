import { Agent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import httpProxy from 'http-proxy';

// The only module that knows http-proxy, which carries plain HTTP requests (the voice webhook,
// the test-agent page and its session API). Everything around it owns the sockets; the library
// only writes the request on a socket we connected and relays the answer. WebSocket upgrades do
// not come here: the tunnel does its handshake on the raw socket (see tunnel.ts).
// http-proxy-3 has the same createProxyServer()/web() API and events: switching is this file.

/** What http-proxy reports about one plain HTTP request. */
export interface ExchangeHandler {
  proxyRequest(proxyReq: ClientRequest): void;
  proxyResponse(proxyRes: IncomingMessage): void;
  proxyError(err: Error): void;
}

/** Where a request goes: an address only, never a URL the library would re-parse. */
export interface Target {
  host: string;
  port: number;
}

/**
 * Hands http-proxy a socket that is already connected, so connect errors happen (and are retried)
 * before the library is involved. One agent per request, never kept alive: the socket is the
 * request's, and it goes when the request goes.
 */
class PreconnectedAgent extends Agent {
  #socket: Socket | undefined;

  constructor(socket: Socket) {
    // Unbounded maxSockets: with keepAlive off, Node then sends `Connection: close` on plain requests.
    super({ keepAlive: false });
    this.#socket = socket;
  }

  override createConnection(): Duplex {
    const socket = this.#socket;
    this.#socket = undefined;
    if (!socket) throw new Error('preconnected socket already used');
    return socket;
  }
}

/**
 * The one http-proxy instance of an edge, with exactly one `error` listener: http-proxy re-emits
 * every request's errors on the instance, and an instance without a listener throws them. Events
 * are routed to the request they belong to through the request object.
 */
export class HttpProxyAdapter {
  readonly #proxy = httpProxy.createProxyServer({
    // X-Forwarded-* are written by upstreamHeaders(), overwritten, never appended.
    xfwd: false,
    changeOrigin: false,
    prependPath: false,
  });
  readonly #exchanges = new WeakMap<IncomingMessage, ExchangeHandler>();

  constructor() {
    this.#proxy.on('error', (err, req, res) => {
      const handler = this.#exchanges.get(req);
      // Every request handed to the library has a handler; anything else is cut.
      if (handler) handler.proxyError(err);
      else res.destroy();
    });
    this.#proxy.on('proxyReq', (proxyReq, req) => this.#exchanges.get(req)?.proxyRequest(proxyReq));
    this.#proxy.on('proxyRes', (proxyRes, req) =>
      this.#exchanges.get(req)?.proxyResponse(proxyRes),
    );
  }

  /** Sends a plain request on `upstream` and relays the response to `res`. */
  web(
    req: IncomingMessage,
    res: ServerResponse,
    upstream: Socket,
    target: Target,
    handler: ExchangeHandler,
    body?: Buffer,
  ): void {
    this.#exchanges.set(req, handler);
    this.#proxy.web(req, res, {
      target: { host: target.host, port: target.port },
      agent: new PreconnectedAgent(upstream),
      // A body read whole beforehand (so the request can be sent again) instead of `req`.
      ...(body === undefined ? {} : { buffer: Readable.from([body]) }),
    });
  }
}
