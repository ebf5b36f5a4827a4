// The client side of the benchmark's raw-socket WebSockets: the upgrade, then frames to `onFrame`.
import { connect } from 'node:net';
import { FrameParser } from './ws.js';

const EMPTY = Buffer.alloc(0);

/**
 * Opens one WebSocket (`requestHead`: the whole GET request head); resolves with the socket once the 101 is in (any bytes after the head go
 * to `onFrame`), rejects on anything else.
 */
export function openWs(port, requestHead, onFrame) {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    let head = EMPTY;
    let parser;
    const fail = (err) => {
      socket.destroy();
      reject(err);
    };
    socket.on('error', (err) => (parser ? onFrame(-1) : fail(err)));
    socket.on('close', () => {
      if (parser) onFrame(-1);
      else fail(new Error('closed before 101'));
    });
    socket.on('connect', () => socket.write(requestHead));
    socket.on('data', (chunk) => {
      if (parser) {
        if (!parser.push(chunk)) socket.destroy();
        return;
      }
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      const status = head.toString('latin1', 9, 12);
      if (status !== '101') {
        fail(new Error(`status ${status}`));
        return;
      }
      parser = new FrameParser(onFrame);
      const rest = head.subarray(end + 4);
      head = EMPTY;
      resolve(socket);
      if (rest.length > 0) parser.push(rest);
    });
  });
}

/** Runs `count` jobs with at most `inFlight` at a time. */
export async function pool(count, inFlight, job) {
  let next = 0;
  const lane = async () => {
    while (next < count) await job(next++);
  };
  await Promise.all(Array.from({ length: Math.min(count, inFlight) }, lane));
}
