import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpForwarder {
  port: number;
  close(): Promise<void>;
}

/**
 * Forwards every TCP connection on 127.0.0.1:<port> to 127.0.0.1:<target()>, chosen per
 * connection: a stand-in for the public load balancer in front of the stack (what PUBLIC_URL
 * names), so a test can point "the public address" at another process mid-call.
 */
export async function tcpForwarder(target: () => number): Promise<TcpForwarder> {
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
  };
  const server = createServer((down) => {
    track(down);
    const up = connect(target(), '127.0.0.1');
    track(up);
    down.pipe(up).pipe(down);
    down.on('close', () => up.destroy());
    up.on('close', () => down.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
