import { once } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  StreamServer,
  createRegistry,
  type Registry,
  type StreamServerOptions,
  type StreamSession,
  type UpgradeVerdict,
} from '../src/index.js';
import {
  captureLogger,
  connectWs,
  httpGet,
  nextClose,
  nextMessage,
  parseRawResponse,
  rawConnect,
  rawExchange,
  upgradeRequest,
  type CapturedLine,
} from './helpers.js';

interface Ctx {
  path: string;
  query: string;
}

interface OpenedSession {
  ws: WebSocket;
  req: IncomingMessage;
  context: Ctx;
  session: StreamSession;
}

interface Harness {
  server: StreamServer<Ctx>;
  registry: Registry;
  lines: CapturedLine[];
  opened: OpenedSession[];
  /** Resolves with the next session the server opens. */
  nextSession(): Promise<OpenedSession>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

type Overrides = Partial<StreamServerOptions<Ctx>> & {
  /** Replace the echo session's close() (e.g. a session that ignores close). */
  sessionClose?: (ws: WebSocket, code: number, reason: string) => void;
};

const acceptAll = (_req: IncomingMessage, url: URL): UpgradeVerdict<Ctx> => ({
  accept: true,
  context: { path: url.pathname, query: url.search },
});

/** Starts a StreamServer on 127.0.0.1:0 whose sessions echo every message through send(). */
async function startServer(overrides: Overrides = {}): Promise<Harness> {
  const { sessionClose, ...options } = overrides;
  const { logger, lines } = captureLogger();
  const registry = createRegistry();
  const opened: OpenedSession[] = [];
  const waiters: ((s: OpenedSession) => void)[] = [];
  let counter = 0;
  const server: StreamServer<Ctx> = new StreamServer<Ctx>({
    name: 'media',
    host: '127.0.0.1',
    port: 0,
    logger,
    registry,
    maxSessions: 10,
    routeUpgrade: acceptAll,
    openSession(ws, req, context) {
      ws.on('message', (data, isBinary) => {
        server.send(ws, data as Buffer, { binary: isBinary });
      });
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      const session: StreamSession = {
        id: `s${++counter}`,
        close: (code, reason) =>
          sessionClose ? sessionClose(ws, code, reason) : ws.close(code, reason),
        closed,
      };
      const entry = { ws, req, context, session };
      opened.push(entry);
      waiters.shift()?.(entry);
      return session;
    },
    ...options,
  });
  onTestFinished(async () => {
    await server.destroy();
  });
  await server.start();
  return {
    server,
    registry,
    lines,
    opened,
    nextSession: () => new Promise((resolve) => waiters.push(resolve)),
    async metric(name, labels = {}) {
      const metric = registry.getSingleMetric(name);
      if (!metric) throw new Error(`no metric ${name}`);
      const { values } = await metric.get();
      const hit = values.find((v) =>
        Object.entries(labels).every(
          ([k, val]) => (v.labels as Record<string, unknown>)[k] === val,
        ),
      );
      return hit?.value ?? 0;
    },
  };
}

function wsUrl(server: StreamServer<Ctx>, path: string): string {
  return server.url.replace(/^http/, 'ws') + path;
}

/** Asserts that no TCP connection is left on the server (event-driven close may lag a tick). */
async function expectNoConnections(server: StreamServer<Ctx>): Promise<void> {
  await vi.waitFor(async () => {
    const n = await new Promise<number>((resolve, reject) =>
      server.httpServer.getConnections((err, count) => (err ? reject(err) : resolve(count))),
    );
    expect(n).toBe(0);
  });
}

describe('StreamServer', () => {
  describe('#start', () => {
    it('listens on port 0 with exactly one upgrade listener', async () => {
      const { server } = await startServer();
      expect(server.httpServer.listenerCount('upgrade')).toBe(1);
      expect(server.address().port).toBeGreaterThan(0);
      expect(server.url).toBe(`http://127.0.0.1:${server.address().port}`);
    });

    it('throws RUNTIME_ERR_NOT_STARTED from address() before start', () => {
      const server = new StreamServer<Ctx>({
        name: 'media',
        host: '127.0.0.1',
        port: 0,
        logger: captureLogger().logger,
        registry: createRegistry(),
        maxSessions: 1,
        routeUpgrade: acceptAll,
        openSession: () => {
          throw new Error('unused');
        },
      });
      expect(() => server.address()).toThrow(
        expect.objectContaining({ code: 'RUNTIME_ERR_NOT_STARTED' }),
      );
      expect(() => server.url).toThrow(
        expect.objectContaining({ code: 'RUNTIME_ERR_NOT_STARTED' }),
      );
    });

    it('rejects with RUNTIME_ERR_LISTEN when the port is taken', async () => {
      const { server: first } = await startServer();
      const second = new StreamServer<Ctx>({
        name: 'media',
        host: '127.0.0.1',
        port: first.address().port,
        logger: captureLogger().logger,
        registry: createRegistry(),
        maxSessions: 1,
        routeUpgrade: acceptAll,
        openSession: () => {
          throw new Error('unused');
        },
      });
      onTestFinished(() => second.destroy());
      await expect(second.start()).rejects.toMatchObject({ code: 'RUNTIME_ERR_LISTEN' });
    });

    it.each<[string, Partial<StreamServerOptions<Ctx>>]>([
      ['a name that is not metric-safe', { name: 'me dia' }],
      ['a negative port', { port: -1 }],
      ['a fractional maxSessions', { maxSessions: 1.5 }],
      ['a zero maxPayloadBytes', { maxPayloadBytes: 0 }],
      ['a zero heartbeatIntervalMs', { heartbeatIntervalMs: 0 }],
      ['a negative acceptGraceMs', { acceptGraceMs: -1 }],
      [
        'headersTimeoutMs above requestTimeoutMs',
        { headersTimeoutMs: 20000, requestTimeoutMs: 1000 },
      ],
    ])('throws a TypeError at construction for %s', (_label, bad) => {
      expect(
        () =>
          new StreamServer<Ctx>({
            name: 'media',
            host: '127.0.0.1',
            port: 0,
            logger: captureLogger().logger,
            registry: createRegistry(),
            maxSessions: 1,
            routeUpgrade: acceptAll,
            openSession: () => {
              throw new Error('unused');
            },
            ...bad,
          }),
      ).toThrow(TypeError);
    });
  });

  describe('upgrades', () => {
    it('accepts, passes the routed context and echoes through send()', async () => {
      const h = await startServer();
      const opening = h.nextSession();
      const client = await connectWs(wsUrl(h.server, '/stream/abc?x=1'));
      const { context, req } = await opening;
      expect(context).toEqual({ path: '/stream/abc', query: '?x=1' });
      expect(req.url).toBe('/stream/abc?x=1');
      expect(h.server.sessionCount).toBe(1);

      client.send('hello');
      const text = await nextMessage(client);
      expect(text.data.toString()).toBe('hello');
      expect(text.isBinary).toBe(false);
      client.send(Buffer.from([1, 2, 3]));
      const binary = await nextMessage(client);
      expect(binary.isBinary).toBe(true);
      expect([...(binary.data as Buffer)]).toEqual([1, 2, 3]);

      client.close(1000, 'bye');
      await h.opened[0]!.session.closed;
      await vi.waitFor(() => expect(h.server.sessionCount).toBe(0));
      expect(await h.metric('media_sessions_total')).toBe(1);
      expect(await h.metric('media_sessions_active')).toBe(0);
      await expectNoConnections(h.server);
    });

    it.each<[string, string]>([
      ['a POST with Upgrade: websocket', upgradeRequest('/stream', {}, 'POST')],
      ['a non-websocket Upgrade token', upgradeRequest('/stream', { Upgrade: 'h2c' })],
      ['a missing Sec-WebSocket-Key', upgradeRequest('/stream', { 'Sec-WebSocket-Key': '' })],
      [
        'a malformed Sec-WebSocket-Key',
        upgradeRequest('/stream', { 'Sec-WebSocket-Key': 'short' }),
      ],
      ['an unsupported version', upgradeRequest('/stream', { 'Sec-WebSocket-Version': '12' })],
      ['version 8 (a pre-RFC draft)', upgradeRequest('/stream', { 'Sec-WebSocket-Version': '8' })],
      [
        'a malformed subprotocol list',
        upgradeRequest('/stream', { 'Sec-WebSocket-Protocol': 'a,,b' }),
      ],
    ])('answers %s with 400 RUNTIME_ERR_BAD_HANDSHAKE', async (_label, request) => {
      const routeUpgrade = vi.fn(acceptAll);
      const h = await startServer({ routeUpgrade });
      const reply = parseRawResponse(await rawExchange(h.server.url, request));
      expect(reply.status).toBe(400);
      expect(reply.headers['connection']).toBe('close');
      expect(reply.headers['content-type']).toBe('application/json');
      expect(JSON.parse(reply.body)).toMatchObject({
        error: { code: 'RUNTIME_ERR_BAD_HANDSHAKE' },
      });
      expect(await h.metric('media_upgrades_total', { outcome: 'bad_handshake' })).toBe(1);
      expect(await h.metric('media_errors_total', { code: 'RUNTIME_ERR_BAD_HANDSHAKE' })).toBe(1);
      expect(h.server.sessionCount).toBe(0);
      await expectNoConnections(h.server);
    });

    it('answers a malformed Host with 400 RUNTIME_ERR_BAD_HOST', async () => {
      const routeUpgrade = vi.fn(acceptAll);
      const h = await startServer({ routeUpgrade });
      const request = upgradeRequest('/stream', { Host: 'x:99999' });
      const reply = parseRawResponse(await rawExchange(h.server.url, request));
      expect(reply.status).toBe(400);
      expect(JSON.parse(reply.body)).toMatchObject({ error: { code: 'RUNTIME_ERR_BAD_HOST' } });
      expect(await h.metric('media_upgrades_total', { outcome: 'bad_handshake' })).toBe(1);
      expect(await h.metric('media_errors_total', { code: 'RUNTIME_ERR_BAD_HOST' })).toBe(1);
      expect(routeUpgrade).not.toHaveBeenCalled();
      await expectNoConnections(h.server);
    });

    it('answers a routeUpgrade refusal with its status, code, message and safe headers', async () => {
      const h = await startServer({
        routeUpgrade: () => ({
          accept: false,
          status: 403,
          code: 'MEDIA_ERR_FORBIDDEN',
          message: 'bad signature',
          headers: {
            'X-Reason': 'signature',
            'X-Injected': 'a\r\nSet-Cookie: evil=1',
            'Content-Length': '999',
          },
        }),
      });
      const reply = parseRawResponse(await rawExchange(h.server.url, upgradeRequest('/stream')));
      expect(reply.status).toBe(403);
      expect(JSON.parse(reply.body)).toEqual({
        error: { code: 'MEDIA_ERR_FORBIDDEN', message: 'bad signature' },
      });
      expect(reply.headers['x-reason']).toBe('signature');
      expect(reply.headers['x-injected']).toBeUndefined();
      expect(reply.headers['set-cookie']).toBeUndefined();
      expect(reply.headers['content-length']).toBe(String(Buffer.byteLength(reply.body)));
      expect(await h.metric('media_upgrades_total', { outcome: 'rejected' })).toBe(1);
      expect(await h.metric('media_errors_total', { code: 'MEDIA_ERR_FORBIDDEN' })).toBe(1);
      expect(h.lines).toContainEqual(
        expect.objectContaining({
          msg: 'upgrade refused',
          code: 'MEDIA_ERR_FORBIDDEN',
          status: 403,
        }),
      );
    });

    it('waits for an async routeUpgrade and a real ws client sees the refusal status', async () => {
      const h = await startServer({
        routeUpgrade: async () => {
          await new Promise((resolve) => setImmediate(resolve));
          return { accept: false, status: 404, code: 'MEDIA_ERR_NO_ROUTE', message: 'no route' };
        },
      });
      await expect(connectWs(wsUrl(h.server, '/nowhere'))).rejects.toThrow('404');
    });

    it.each<[string, () => never | Promise<never>]>([
      [
        'a synchronous throw',
        () => {
          throw new TypeError('boom');
        },
      ],
      ['a rejection', () => Promise.reject(new TypeError('boom'))],
    ])('answers %s in routeUpgrade with 500 and keeps serving', async (_label, failing) => {
      let fail = true;
      const h = await startServer({
        routeUpgrade: (req, url) => (fail ? failing() : acceptAll(req, url)),
      });
      const reply = parseRawResponse(await rawExchange(h.server.url, upgradeRequest('/stream')));
      expect(reply.status).toBe(500);
      expect(JSON.parse(reply.body)).toMatchObject({ error: { code: 'RUNTIME_ERR_HANDLER' } });
      expect(h.lines).toContainEqual(
        expect.objectContaining({
          level: 'error',
          msg: 'routeUpgrade failed',
          code: 'RUNTIME_ERR_HANDLER',
        }),
      );
      expect(await h.metric('media_upgrades_total', { outcome: 'error' })).toBe(1);

      fail = false;
      const client = await connectWs(wsUrl(h.server, '/stream'));
      client.send('still here');
      expect((await nextMessage(client)).data.toString()).toBe('still here');
    });

    it('drops the upgrade quietly when the socket went away during routeUpgrade', async () => {
      const openSession = vi.fn();
      let decided!: () => void;
      const h = await startServer({
        openSession,
        routeUpgrade: async (req, url) => {
          // The socket dies while the worker is still deciding.
          req.socket.destroy();
          await new Promise<void>((resolve) => (decided = resolve));
          return acceptAll(req, url);
        },
      });
      const socket = await rawConnect(h.server.url);
      const closed = once(socket, 'close');
      socket.write(upgradeRequest('/stream'));
      await closed;
      await vi.waitFor(() => expect(decided).toBeTypeOf('function'));
      decided();
      await h.server.close();
      expect(openSession).not.toHaveBeenCalled();
      expect(h.server.sessionCount).toBe(0);
    });

    it('closes with 1011 when openSession throws, and keeps serving', async () => {
      let throwNext = true;
      const h2 = await startServer({
        openSession(ws) {
          if (throwNext) {
            throwNext = false;
            throw new Error('session setup failed');
          }
          ws.on('message', (data) => ws.send(data));
          return {
            id: 'ok',
            close: (code, reason) => ws.close(code, reason),
            closed: new Promise<void>((resolve) => ws.once('close', () => resolve())),
          };
        },
      });
      const first = await connectWs(wsUrl(h2.server, '/stream'));
      expect(await nextClose(first)).toMatchObject({ code: 1011 });
      expect(await h2.metric('media_errors_total', { code: 'RUNTIME_ERR_HANDLER' })).toBe(1);
      await vi.waitFor(() => expect(h2.server.sessionCount).toBe(0));
      const second = await connectWs(wsUrl(h2.server, '/stream'));
      second.send('ok');
      expect((await nextMessage(second)).data.toString()).toBe('ok');
      expect(h2.lines).toContainEqual(
        expect.objectContaining({
          level: 'error',
          msg: 'openSession failed',
          code: 'RUNTIME_ERR_HANDLER',
        }),
      );
    });

    it('refuses upgrades over maxSessions with 503 and Retry-After', async () => {
      const h = await startServer({ maxSessions: 1 });
      const first = await connectWs(wsUrl(h.server, '/stream'));
      const reply = parseRawResponse(await rawExchange(h.server.url, upgradeRequest('/stream')));
      expect(reply.status).toBe(503);
      expect(reply.headers['retry-after']).toBe('5');
      expect(JSON.parse(reply.body)).toMatchObject({
        error: { code: 'RUNTIME_ERR_TOO_MANY_SESSIONS' },
      });
      expect(await h.metric('media_upgrades_total', { outcome: 'over_capacity' })).toBe(1);

      first.close();
      await h.opened[0]!.session.closed;
      await vi.waitFor(() => expect(h.server.sessionCount).toBe(0));
      await connectWs(wsUrl(h.server, '/stream'));
      expect(h.server.sessionCount).toBe(1);
    });

    it('closes a message over maxPayloadBytes with 1009', async () => {
      const h = await startServer({ maxPayloadBytes: 1024 });
      const client = await connectWs(wsUrl(h.server, '/stream'));
      const closing = nextClose(client);
      client.send(Buffer.alloc(2048));
      expect(await closing).toMatchObject({ code: 1009 });
      await vi.waitFor(async () =>
        expect(
          await h.metric('media_errors_total', { code: 'RUNTIME_ERR_MESSAGE_TOO_LARGE' }),
        ).toBe(1),
      );
    });
  });

  describe('plain HTTP', () => {
    it('serves /healthz, /readyz, /metrics and 404 JSON for the rest', async () => {
      const h = await startServer();
      expect(await httpGet(`${h.server.url}/healthz`)).toMatchObject({
        status: 200,
        body: '{"status":"ok"}',
      });
      expect(await httpGet(`${h.server.url}/readyz`)).toMatchObject({
        status: 200,
        body: '{"status":"ready"}',
      });
      const notFound = await httpGet(`${h.server.url}/nope`);
      expect(notFound.status).toBe(404);
      expect(JSON.parse(notFound.body)).toMatchObject({ error: { code: 'RUNTIME_ERR_NOT_FOUND' } });
      const wrongMethod = await httpGet(`${h.server.url}/healthz`, 'POST');
      expect(wrongMethod.status).toBe(405);
      expect(wrongMethod.headers['allow']).toBe('GET, HEAD');
      await expectNoConnections(h.server);
    });

    it('reports upgrade outcomes, sessions and errors on /metrics', async () => {
      const h = await startServer({
        name: 'test-agent',
        routeUpgrade: (req, url) =>
          url.pathname === '/ok'
            ? acceptAll(req, url)
            : { accept: false, status: 404, code: 'AGENT_ERR_NO_ROUTE', message: 'no' },
      });
      await connectWs(wsUrl(h.server, '/ok'));
      await expect(connectWs(wsUrl(h.server, '/other'))).rejects.toThrow('404');
      h.server.countError('AGENT_ERR_CUSTOM');
      const reply = await httpGet(`${h.server.url}/metrics`);
      expect(reply.status).toBe(200);
      expect(reply.body).toContain('test_agent_upgrades_total{outcome="accepted"} 1');
      expect(reply.body).toContain('test_agent_upgrades_total{outcome="rejected"} 1');
      expect(reply.body).toContain('test_agent_upgrades_total{outcome="draining"} 0');
      expect(reply.body).toContain('test_agent_sessions_active 1');
      expect(reply.body).toContain('test_agent_sessions_total 1');
      expect(reply.body).toContain('test_agent_errors_total{code="AGENT_ERR_NO_ROUTE"} 1');
      expect(reply.body).toContain('test_agent_errors_total{code="AGENT_ERR_CUSTOM"} 1');
      expect(reply.body).toContain('test_agent_sessions_shed_total 0');
    });

    it('hands other requests to handleRequest; false is 404 and a throw is 500', async () => {
      const h = await startServer({
        handleRequest(req, res, url) {
          if (url.pathname === '/hello') {
            res.writeHead(200, { 'content-type': 'text/plain' });
            res.end(`hi ${req.method}`);
            return true;
          }
          if (url.pathname === '/boom') throw new Error('handler bug');
          return Promise.resolve(false);
        },
      });
      expect(await httpGet(`${h.server.url}/hello`)).toMatchObject({ status: 200, body: 'hi GET' });
      expect((await httpGet(`${h.server.url}/missing`)).status).toBe(404);
      const failed = await httpGet(`${h.server.url}/boom`);
      expect(failed.status).toBe(500);
      expect(JSON.parse(failed.body)).toMatchObject({ error: { code: 'RUNTIME_ERR_HANDLER' } });
      expect(h.lines).toContainEqual(
        expect.objectContaining({
          level: 'error',
          msg: 'request handler failed',
          code: 'RUNTIME_ERR_HANDLER',
        }),
      );
      expect((await httpGet(`${h.server.url}/healthz`)).status).toBe(200);
    });
  });

  describe('drain and close', () => {
    it('answers 503 to readiness and upgrades while an open session continues; close() waits for it', async () => {
      const routeUpgrade = vi.fn(acceptAll);
      const h = await startServer({ routeUpgrade });
      const url = h.server.url;
      const client = await connectWs(wsUrl(h.server, '/stream'));
      h.server.beginDrain();
      expect(h.server.isDraining).toBe(true);

      expect(await httpGet(`${h.server.url}/readyz`)).toMatchObject({
        status: 503,
        body: '{"status":"draining"}',
      });
      expect((await httpGet(`${h.server.url}/healthz`)).status).toBe(200);
      const refused = parseRawResponse(await rawExchange(h.server.url, upgradeRequest('/stream')));
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('5');
      expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'RUNTIME_ERR_DRAINING' } });
      expect(routeUpgrade).toHaveBeenCalledTimes(1);

      let closed = false;
      const closing = h.server.close().then(() => (closed = true));
      expect(h.server.close()).toBe(h.server.close());
      // Still listening and still serving the open session while close() waits.
      client.send('during drain');
      expect((await nextMessage(client)).data.toString()).toBe('during drain');
      expect((await httpGet(`${h.server.url}/readyz`)).status).toBe(503);
      expect(closed).toBe(false);

      client.close(1000, 'done');
      await closing;
      expect(h.server.sessionCount).toBe(0);
      expect(h.server.httpServer.listening).toBe(false);
      await expect(httpGet(`${url}/readyz`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      await expect(h.server.start()).rejects.toMatchObject({ code: 'RUNTIME_ERR_CLOSED' });
    });

    it('refuses an upgrade whose routeUpgrade finished after the drain began', async () => {
      const h = await startServer({
        routeUpgrade: (req, url) => {
          h.server.beginDrain();
          return acceptAll(req, url);
        },
      });
      const reply = parseRawResponse(await rawExchange(h.server.url, upgradeRequest('/stream')));
      expect(reply.status).toBe(503);
      expect(JSON.parse(reply.body)).toMatchObject({ error: { code: 'RUNTIME_ERR_DRAINING' } });
      expect(h.opened).toHaveLength(0);
      await h.server.close();
    });

    it('keeps accepting upgrades during acceptGraceMs while readiness is already 503', async () => {
      const h = await startServer({ acceptGraceMs: 60_000 });
      expect(h.server.isAccepting).toBe(true);
      h.server.beginDrain();
      expect(h.server.isDraining).toBe(true);
      expect(h.server.isAccepting).toBe(true);
      expect(await httpGet(`${h.server.url}/readyz`)).toMatchObject({
        status: 503,
        body: '{"status":"draining"}',
      });

      // A proxy that has not probed since the SIGTERM still sends calls: they are served.
      const client = await connectWs(wsUrl(h.server, '/during-grace'));
      client.send('hello');
      expect((await nextMessage(client)).data.toString()).toBe('hello');
      expect(await h.metric('media_upgrades_total', { outcome: 'accepted' })).toBe(1);
      expect(await h.metric('media_upgrades_total', { outcome: 'draining' })).toBe(0);
      expect(h.lines.find((l) => l.msg === 'stream server draining')).toMatchObject({
        acceptGraceMs: 60_000,
      });
    });

    it('close() waits for the accept grace even when no session is left; destroy() cuts it short', async () => {
      const h = await startServer({ acceptGraceMs: 60_000 });
      const first = await connectWs(wsUrl(h.server, '/first'));
      let closed = false;
      const closing = h.server.close().then(() => (closed = true));
      expect(h.server.isDraining).toBe(true);

      first.close(1000, 'done');
      await vi.waitFor(() => expect(h.server.sessionCount).toBe(0));
      // No session remains, but the grace is not over: close() has not closed the listener and
      // a late upgrade is still served.
      const late = await connectWs(wsUrl(h.server, '/late'));
      late.send('still here');
      expect((await nextMessage(late)).data.toString()).toBe('still here');
      expect(closed).toBe(false);

      const lateClose = nextClose(late);
      await h.server.destroy();
      await closing;
      expect(h.server.isAccepting).toBe(false);
      expect(await lateClose).toEqual({ code: 1012, reason: 'service restart' });
      expect(h.server.httpServer.listening).toBe(false);
    });

    it('refuses upgrades with 503 once the accept grace is over, and close() follows', async () => {
      const h = await startServer({ acceptGraceMs: 50 });
      const live = await connectWs(wsUrl(h.server, '/live'));
      h.server.beginDrain();
      await vi.waitFor(() =>
        expect(h.lines.some((l) => l.msg === 'accept grace over, refusing new sessions')).toBe(
          true,
        ),
      );
      expect(h.server.isAccepting).toBe(false);
      const refused = parseRawResponse(await rawExchange(h.server.url, upgradeRequest('/new')));
      expect(refused.status).toBe(503);
      expect(JSON.parse(refused.body)).toMatchObject({ error: { code: 'RUNTIME_ERR_DRAINING' } });
      expect(await h.metric('media_upgrades_total', { outcome: 'draining' })).toBe(1);

      // The session from before the drain goes on; close() resolves once it ends.
      live.send('after grace');
      expect((await nextMessage(live)).data.toString()).toBe('after grace');
      const closing = h.server.close();
      live.close(1000, 'done');
      await closing;
      expect(h.server.httpServer.listening).toBe(false);
    });

    it('close() without sessions resolves only after the accept grace', async () => {
      const h = await startServer({ acceptGraceMs: 50 });
      await h.server.close();
      const grace = h.lines.findIndex((l) => l.msg === 'accept grace over, refusing new sessions');
      expect(grace).toBeGreaterThanOrEqual(0);
      expect(h.server.isAccepting).toBe(false);
      expect(h.server.httpServer.listening).toBe(false);
    });

    it('close() with no sessions resolves and frees the port', async () => {
      const h = await startServer();
      const url = h.server.url;
      await httpGet(`${url}/healthz`);
      await h.server.close();
      await expect(httpGet(`${url}/healthz`)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    });

    it('destroy() closes sessions with 1012 and cuts a pending close() short', async () => {
      const h = await startServer();
      const a = await connectWs(wsUrl(h.server, '/a'));
      const b = await connectWs(wsUrl(h.server, '/b'));
      const closes = [nextClose(a), nextClose(b)];
      const closing = h.server.close();
      await h.server.destroy();
      await closing;
      for (const c of await Promise.all(closes)) {
        expect(c).toEqual({ code: 1012, reason: 'service restart' });
      }
      expect(h.server.sessionCount).toBe(0);
      expect(h.server.destroy()).toBe(h.server.destroy());
    });

    it('destroy() terminates sessions that do not close within closeTimeoutMs', async () => {
      const h = await startServer({ closeTimeoutMs: 50, sessionClose: () => undefined });
      const client = await connectWs(wsUrl(h.server, '/stream'));
      const closing = nextClose(client);
      await h.server.destroy();
      // Terminated without a close frame: the client sees an abnormal closure.
      expect(await closing).toMatchObject({ code: 1006 });
      expect(h.server.sessionCount).toBe(0);
    });
  });

  describe('heartbeat', () => {
    it('terminates a peer that does not answer pings and keeps one that does', async () => {
      const h = await startServer({ heartbeatIntervalMs: 40 });
      const silent = await connectWs(wsUrl(h.server, '/silent'), { autoPong: false });
      const healthy = await connectWs(wsUrl(h.server, '/healthy'));
      const silentClosed = nextClose(silent);
      let pings = 0;
      const threePings = new Promise<void>((resolve) =>
        healthy.on('ping', () => {
          if (++pings === 3) resolve();
        }),
      );
      expect(await silentClosed).toMatchObject({ code: 1006 });
      await threePings;
      expect(healthy.readyState).toBe(WebSocket.OPEN);
      expect(await h.metric('media_errors_total', { code: 'RUNTIME_ERR_HEARTBEAT_TIMEOUT' })).toBe(
        1,
      );
      expect(h.lines).toContainEqual(
        expect.objectContaining({ msg: 'heartbeat timeout, terminating', sessionId: 's1' }),
      );
    });
  });

  describe('#send', () => {
    it('sheds a slow reader: returns false, closes 1013 and terminates it', async () => {
      const h = await startServer({ maxBufferedBytes: 16 * 1024, closeTimeoutMs: 100 });
      const client = await rawConnect(h.server.url);
      const opening = h.nextSession();
      client.write(upgradeRequest('/slow'));
      const { ws } = await opening;
      // Read the 101 response, then stop reading for good so the kernel buffers fill up.
      await once(client, 'data');
      client.pause();

      const serverClosed = once(ws, 'close');
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      while (h.server.send(ws, chunk)) {
        sent++;
        if (sent > 4096) throw new Error('bufferedAmount never passed maxBufferedBytes');
      }
      expect(h.server.send(ws, chunk)).toBe(false);
      await serverClosed;
      expect(await h.metric('media_sessions_shed_total')).toBe(1);
      expect(await h.metric('media_errors_total', { code: 'RUNTIME_ERR_SLOW_READER' })).toBe(1);
      expect(h.lines).toContainEqual(
        expect.objectContaining({
          level: 'warn',
          code: 'RUNTIME_ERR_SLOW_READER',
          sessionId: 's1',
        }),
      );
      client.destroy();
      await vi.waitFor(() => expect(h.server.sessionCount).toBe(0));
      await expectNoConnections(h.server);
    });

    it('returns false for a socket that is not open', async () => {
      const h = await startServer();
      const client = await connectWs(wsUrl(h.server, '/stream'));
      const { ws, session } = h.opened[0]!;
      client.close();
      await session.closed;
      expect(h.server.send(ws, 'late')).toBe(false);
      expect(await h.metric('media_sessions_shed_total')).toBe(0);
    });
  });
});
