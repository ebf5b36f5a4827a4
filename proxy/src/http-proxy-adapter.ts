import { Agent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { Readable, type Duplex } from 'node:stream';
import httpProxy from 'http-proxy';

// The only module that knows http-proxy. Everything around it owns the sockets; the library only
// writes the request on a socket we connected, relays the answer and pipes the bytes.
// http-proxy-3 has the same createProxyServer()/ws()/web() API and events: switching is this file.

/** What http-proxy reports about one tunnel, found through the request it was given. */
export interface TunnelHandler {
  proxyRequest(proxyReq: ClientRequest): void;
  /**
   * A non-101 answer arrived, before any listener: true takes it back (the handler will retry
   * on another backend), so http-proxy never relays it and this request is abandoned.
   */
  retryAnswer(res: IncomingMessage): boolean;
  /** The 101 went out and both pipes are set up. */
  piped(): void;
  proxyError(err: Error): void;
}

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
 * tunnel's, and it goes when the tunnel goes.
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
 * http-proxy writes a non-101 answer to the client from its own 'response' listener, so a busy
 * worker's 503 would reach the caller even when another worker could take the call. This sits in
 * front of every listener of one upstream request: when the handler takes the answer back, that
 * 'response' reaches no listener, and neither do the request's later 'error' or 'upgrade' (http-
 * proxy would end the client socket on an error of the abandoned request). Everything else
 * ('close', 'socket', ...) passes through.
 */
function interceptRetry(proxyReq: ClientRequest, handler: TunnelHandler): void {
  const emit = proxyReq.emit.bind(proxyReq) as (
    event: string | symbol,
    ...args: unknown[]
  ) => boolean;
  let abandoned = false;
  const intercepted = (event: string | symbol, ...args: unknown[]): boolean => {
    if (!abandoned && event === 'response') {
      abandoned = handler.retryAnswer(args[0] as IncomingMessage);
    }
    if (abandoned && (event === 'response' || event === 'error' || event === 'upgrade')) {
      return true;
    }
    return emit(event, ...args);
  };
  proxyReq.emit = intercepted as ClientRequest['emit'];
}

/**
 * The one http-proxy instance of an edge, with exactly one `error` listener (guard 1). Events are
 * routed to the tunnel or request they belong to through the request object.
 */
export class HttpProxyAdapter {
  readonly #proxy = httpProxy.createProxyServer({
    // Guard 10: X-Forwarded-* are written by upstreamHeaders(), overwritten, never appended.
    xfwd: false,
    changeOrigin: false,
    prependPath: false,
  });
  readonly #tunnels = new WeakMap<IncomingMessage, TunnelHandler>();
  readonly #tunnelsByUpstream = new WeakMap<Socket, TunnelHandler>();
  readonly #exchanges = new WeakMap<IncomingMessage, ExchangeHandler>();

  constructor() {
    this.#proxy.on('error', (err, req, res) => {
      const handler = this.#tunnels.get(req) ?? this.#exchanges.get(req);
      // Every request handed to the library has a handler; anything else is cut. On the WebSocket
      // path `res` is the client socket, so never writeHead() here.
      if (handler) handler.proxyError(err);
      else res.destroy();
    });
    this.#proxy.on('proxyReqWs', (proxyReq, req) => {
      const handler = this.#tunnels.get(req);
      if (!handler) return;
      interceptRetry(proxyReq, handler);
      handler.proxyRequest(proxyReq);
    });
    this.#proxy.on('open', (upstream) => this.#tunnelsByUpstream.get(upstream)?.piped());
    this.#proxy.on('proxyReq', (proxyReq, req) => this.#exchanges.get(req)?.proxyRequest(proxyReq));
    this.#proxy.on('proxyRes', (proxyRes, req) =>
      this.#exchanges.get(req)?.proxyResponse(proxyRes),
    );
  }

  /** Sends the upgrade on `upstream` and, on a 101, pipes `client` ⇄ `upstream`. */
  ws(
    req: IncomingMessage,
    client: Socket,
    head: Buffer,
    upstream: Socket,
    target: Target,
    handler: TunnelHandler,
  ): void {
    this.#tunnels.set(req, handler);
    this.#tunnelsByUpstream.set(upstream, handler);
    this.#proxy.ws(req, client, head, {
      target: { host: target.host, port: target.port },
      agent: new PreconnectedAgent(upstream),
    });
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
