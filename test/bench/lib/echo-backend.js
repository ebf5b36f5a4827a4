// The benchmark's echo worker: a raw-socket WebSocket server that sends every text frame straight
// back, one write per frame (as a worker answering a caller would). Also answers `GET /readyz`
// (the proxy's health check) with 200. Prints `{"port":N}` once listening. Loopback only.
//   node test/bench/lib/echo-backend.js
import { createServer } from 'node:net';
import { FrameParser, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, acceptKey, serverFrame } from './ws.js';

const MAX_HEAD = 16_384;
const EMPTY = Buffer.alloc(0);

const server = createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => socket.destroy());
  let head = EMPTY;
  const onHead = (chunk) => {
    head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end === -1) {
      if (head.length > MAX_HEAD) socket.destroy();
      return;
    }
    socket.off('data', onHead);
    const lines = head.toString('latin1', 0, end).split('\r\n');
    const rest = head.subarray(end + 4);
    head = EMPTY;
    let key;
    let upgrade = false;
    for (let i = 1; i < lines.length; i++) {
      const c = lines[i].indexOf(':');
      const name = lines[i].slice(0, c).trim().toLowerCase();
      if (name === 'sec-websocket-key') key = lines[i].slice(c + 1).trim();
      else if (name === 'upgrade') upgrade = /websocket/i.test(lines[i].slice(c + 1));
    }
    if (!upgrade || key === undefined) {
      // Health check or any plain request: 200 and close.
      socket.end(
        'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok',
      );
      return;
    }
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`,
    );
    const parser = new FrameParser((op, buf, start, end) => {
      if (op === OP_TEXT || op === 0x2) socket.write(serverFrame(op, buf, start, end));
      else if (op === OP_PING) socket.write(serverFrame(OP_PONG, buf, start, end));
      else if (op === OP_CLOSE) socket.end(serverFrame(OP_CLOSE, buf, start, end));
    });
    socket.on('data', (chunk) => {
      if (!parser.push(chunk)) socket.destroy();
    });
    if (rest.length > 0 && !parser.push(rest)) socket.destroy();
  };
  socket.on('data', onHead);
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
