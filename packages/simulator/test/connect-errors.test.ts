import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { SimulatorError, TwilioCaller, simulateCall } from '../src/index.js';
import { startScriptedWorker } from './scripted-worker.js';

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function rejection(p: Promise<unknown>): Promise<SimulatorError> {
  const err = await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SimulatorError);
  return err as SimulatorError;
}

describe('connection failures', () => {
  it('rejects with SIM_ERR_CONNECT when nothing listens', async () => {
    const port = await freePort();
    const err = await rejection(simulateCall({ url: `ws://127.0.0.1:${port}/media-stream` }));
    expect(err.code).toBe('SIM_ERR_CONNECT');
    expect(err.message).toContain('ECONNREFUSED');
  });

  it.each([404, 403, 503])(
    'rejects with SIM_ERR_HANDSHAKE and the status when the upgrade gets %i',
    async (status) => {
      const w = await startScriptedWorker({ refuseUpgradeStatus: status });
      onTestFinished(() => w.close());
      const err = await rejection(simulateCall({ url: `${w.origin}/media-stream` }));
      expect(err.code).toBe('SIM_ERR_HANDSHAKE');
      expect(err.status).toBe(status);
    },
  );

  it('rejects with SIM_ERR_TIMEOUT when the server never answers the upgrade', async () => {
    const sockets = new Set<Socket>();
    const server = createServer((socket) => {
      socket.on('error', () => {});
      sockets.add(socket);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const port = (server.address() as AddressInfo).port;
    const err = await rejection(
      simulateCall({ url: `ws://127.0.0.1:${port}/media-stream`, connectTimeoutMs: 200 }),
    );
    expect(err.code).toBe('SIM_ERR_TIMEOUT');
  });

  it('rejects with SIM_ERR_ABORTED when the signal is already aborted', async () => {
    const w = await startScriptedWorker();
    onTestFinished(() => w.close());
    const err = await rejection(
      simulateCall({ url: `${w.origin}/media-stream`, signal: AbortSignal.abort() }),
    );
    expect(err.code).toBe('SIM_ERR_ABORTED');
    expect(w.connections).toHaveLength(0);
  });

  it('hangs up cleanly (stop, close 1000) when the signal aborts during the call', async () => {
    const controller = new AbortController();
    const w = await startScriptedWorker({
      onConnection: (c) => {
        void c.waitFor((m) => m['event'] === 'media').then(() => controller.abort());
      },
    });
    onTestFinished(() => w.close());
    const summary = await simulateCall({
      url: `${w.origin}/media-stream`,
      hangupAfterMs: 60_000,
      signal: controller.signal,
    });
    expect(summary).toMatchObject({ closedBy: 'caller', closeCode: 1000 });
    const conn = w.connections[0]!;
    expect((await conn.closed).code).toBe(1000);
    expect(conn.messages.at(-1)).toMatchObject({ event: 'stop' });
  });

  it.each([
    ['an unknown provider', { provider: 'skype' as 'twilio' }],
    ['a sample rate without whole 20 ms frames', { audioSampleRate: 11025 }],
    ['a bad DTMF digit', { dtmf: [{ atMs: 0, digit: 'x' }] }],
    ['no URL and no webhook', { url: '' }],
  ])('rejects %s with SIM_ERR_INVALID_OPTIONS', async (_what, extra) => {
    const err = await rejection(simulateCall({ url: 'ws://127.0.0.1:9/media-stream', ...extra }));
    expect(err.code).toBe('SIM_ERR_INVALID_OPTIONS');
  });

  it('lets a TwilioCaller be driven step by step', async () => {
    const w = await startScriptedWorker();
    onTestFinished(() => w.close());
    const caller = new TwilioCaller({ url: `${w.origin}/media-stream` });
    const opened = new Promise((resolve) => caller.once('open', resolve));
    await caller.connect();
    await opened;
    const conn = await w.nextConnection();
    caller.sendDtmf('9');
    await conn.waitFor((m) => m['event'] === 'dtmf');
    await expect(caller.connect()).rejects.toMatchObject({ code: 'SIM_ERR_INVALID_OPTIONS' });
    await caller.hangup();
    await caller.hangup();
    expect(caller.summary()).toMatchObject({ dtmfSent: 1, closedBy: 'caller', closeCode: 1000 });
  });
});
