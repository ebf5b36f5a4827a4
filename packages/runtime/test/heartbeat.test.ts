import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { Heartbeat, type HeartbeatEntry, type HeartbeatSocket } from '../src/heartbeat.js';
import { captureLogger } from './helpers.js';

class FakeSocket implements HeartbeatSocket {
  pings = 0;
  terminated = false;
  constructor(readonly readyState: number) {}
  ping(): void {
    this.pings++;
  }
  terminate(): void {
    this.terminated = true;
  }
}

describe('Heartbeat.beat', () => {
  it.each([
    {
      state: 'open, pong seen',
      readyState: WebSocket.OPEN,
      alive: true,
      pings: 1,
      terminated: false,
      aliveAfter: false,
    },
    {
      state: 'open, pong missed',
      readyState: WebSocket.OPEN,
      alive: false,
      pings: 0,
      terminated: true,
      aliveAfter: false,
    },
    {
      state: 'connecting',
      readyState: WebSocket.CONNECTING,
      alive: false,
      pings: 0,
      terminated: false,
      aliveAfter: false,
    },
    {
      state: 'closing',
      readyState: WebSocket.CLOSING,
      alive: true,
      pings: 0,
      terminated: false,
      aliveAfter: true,
    },
    {
      state: 'closed',
      readyState: WebSocket.CLOSED,
      alive: false,
      pings: 0,
      terminated: false,
      aliveAfter: false,
    },
  ])('$state', ({ readyState, alive, pings, terminated, aliveAfter }) => {
    const { logger, lines } = captureLogger();
    const errors: string[] = [];
    const ws = new FakeSocket(readyState);
    const entry: HeartbeatEntry = { ws, alive, session: { id: 's1' } };
    const heartbeat = new Heartbeat({
      intervalMs: 1000,
      log: logger,
      countError: (code) => errors.push(code),
      entries: () => [entry],
    });

    heartbeat.beat();

    expect(ws.pings).toBe(pings);
    expect(ws.terminated).toBe(terminated);
    expect(entry.alive).toBe(aliveAfter);
    if (terminated) {
      expect(errors).toEqual(['RUNTIME_ERR_HEARTBEAT_TIMEOUT']);
      expect(lines).toMatchObject([
        {
          msg: 'heartbeat timeout, terminating',
          code: 'RUNTIME_ERR_HEARTBEAT_TIMEOUT',
          sessionId: 's1',
        },
      ]);
    } else {
      expect(errors).toEqual([]);
      expect(lines).toEqual([]);
    }
  });
});
