// The floor of a Node relay, for the proxy benchmark's `node-floor` column: what Node itself costs
// per message and per upgrade with documented APIs and nothing else. No guards, no routing, no
// signature check, no limits, no logs, no metrics: NOT a proxy anyone should run. It reads the
// request head on the raw accepted socket, dials the backend (reading it into one shared buffer
// through `onread`, copied out before each write), writes the head as it came, and relays bytes
// both ways with `write()` and `pause()`/`resume()` on backpressure. The gap between this column
// and nginx is Node's; the gap between callgate and this column is callgate's.
// Prints `{"port":N}` once listening. Loopback only.
//   node test/bench/lib/bare-relay.js <backendPort>
import { connect, createServer } from 'node:net';

const backendPort = Number(process.argv[2]);
const MAX_HEAD = 16_384;
const SHARED = Buffer.allocUnsafe(65_536);
const kPeer = Symbol('peer');

function onClientData(chunk) {
  const upstream = this[kPeer];
  if (!upstream.write(chunk)) this.pause();
}
function onUpstreamRead(n, buf) {
  const client = this[kPeer];
  if (!client.write(Buffer.from(buf.subarray(0, n)))) this.pause();
  return true;
}
function onDrain() {
  this[kPeer].resume();
}
function onEnd() {
  this[kPeer].end();
}
function onClose() {
  this[kPeer].destroy();
}
function onError() {
  this.destroy();
}

const server = createServer({ noDelay: true }, (client) => {
  client.on('error', onError);
  let head;
  const onHead = (chunk) => {
    head = head === undefined ? chunk : Buffer.concat([head, chunk]);
    if (head.indexOf('\r\n\r\n') === -1) {
      if (head.length > MAX_HEAD) client.destroy();
      return;
    }
    client.off('data', onHead);
    client.pause();
    const upstream = connect({
      port: backendPort,
      host: '127.0.0.1',
      noDelay: true,
      onread: { buffer: SHARED, callback: onUpstreamRead },
    });
    client[kPeer] = upstream;
    upstream[kPeer] = client;
    upstream.on('error', onError);
    upstream.on('drain', onDrain);
    upstream.on('end', onEnd);
    upstream.on('close', onClose);
    client.on('drain', onDrain);
    client.on('end', onEnd);
    client.on('close', onClose);
    upstream.write(head);
    head = undefined;
    client.on('data', onClientData);
    client.resume();
  };
  client.on('data', onHead);
});
server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
