import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer, type RawData } from 'ws';

/** One accepted WebSocket with every text message it received, parsed. */
export interface WorkerConnection {
  ws: WebSocket;
  request: IncomingMessage;
  messages: Array<Record<string, unknown>>;
  raw: string[];
  /** Resolves with the first received message matching `pred` (already seen or future). */
  waitFor(pred: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
  /** Resolves with the close code the server saw. */
  closed: Promise<{ code: number; reason: string }>;
  sendJson(obj: unknown): void;
}

export interface ScriptedWorker {
  port: number;
  /** ws://127.0.0.1:port */
  origin: string;
  connections: WorkerConnection[];
  /** Resolves with the next connection (or the first one already accepted). */
  nextConnection(): Promise<WorkerConnection>;
  close(): Promise<void>;
}

export interface ScriptedWorkerOptions {
  /** Runs for each accepted socket, before any message arrives. */
  onConnection?: (c: WorkerConnection) => void;
  /** Plain HTTP requests (the voice webhook); default 404. */
  onRequest?: (req: IncomingMessage, res: ServerResponse, body: string) => void;
  /** Refuses the upgrade with this status instead of accepting it. */
  refuseUpgradeStatus?: number;
}

/** A real ws server on 127.0.0.1:0 playing a worker's part from a script. */
export async function startScriptedWorker(
  options: ScriptedWorkerOptions = {},
): Promise<ScriptedWorker> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (options.onRequest) options.onRequest(req, res, body);
      else res.writeHead(404).end('not found');
    });
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const connections: WorkerConnection[] = [];
  const connectionWaiters: Array<(c: WorkerConnection) => void> = [];
  let handedOut = 0;
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    if (options.refuseUpgradeStatus !== undefined) {
      socket.end(
        `HTTP/1.1 ${options.refuseUpgradeStatus} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {});
      const messages: Array<Record<string, unknown>> = [];
      const raw: string[] = [];
      const waiters: Array<{
        pred: (m: Record<string, unknown>) => boolean;
        resolve: (m: Record<string, unknown>) => void;
      }> = [];
      const conn: WorkerConnection = {
        ws,
        request: req,
        messages,
        raw,
        waitFor(pred) {
          const seen = messages.find(pred);
          if (seen) return Promise.resolve(seen);
          return new Promise((resolve) => waiters.push({ pred, resolve }));
        },
        closed: new Promise((resolve) => {
          ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
        }),
        sendJson(obj) {
          if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
        },
      };
      ws.on('message', (data: RawData, isBinary) => {
        if (isBinary) return;
        const text = data.toString();
        raw.push(text);
        const msg = JSON.parse(text) as Record<string, unknown>;
        messages.push(msg);
        for (let i = waiters.length - 1; i >= 0; i--) {
          const w = waiters[i]!;
          if (w.pred(msg)) {
            waiters.splice(i, 1);
            w.resolve(msg);
          }
        }
      });
      connections.push(conn);
      options.onConnection?.(conn);
      const waiter = connectionWaiters.shift();
      if (waiter) {
        handedOut++;
        waiter(conn);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    origin: `ws://127.0.0.1:${port}`,
    connections,
    nextConnection() {
      const ready = connections[handedOut];
      if (ready) {
        handedOut++;
        return Promise.resolve(ready);
      }
      return new Promise((resolve) => connectionWaiters.push(resolve));
    },
    async close() {
      for (const c of connections) c.ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** `n` ms of a loud 440 Hz tone at `rate`. */
export function loudTone(ms: number, rate = 8000, amplitude = 8000): Int16Array {
  const out = new Int16Array(Math.round((ms * rate) / 1000));
  for (let i = 0; i < out.length; i++)
    out[i] = Math.round(amplitude * Math.sin((2 * Math.PI * 440 * i) / rate));
  return out;
}

/** Numbers `start`, `media`, ... Twilio messages carry as strings. */
export const seq = (m: Record<string, unknown>): number => Number(m['sequenceNumber']);
