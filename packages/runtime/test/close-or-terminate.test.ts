import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { closeOrTerminate } from '../src/index.js';

/** The part of a ws WebSocket closeOrTerminate touches, recording what was done to it. */
class FakeSocket extends EventEmitter {
  readyState: number = WebSocket.OPEN;
  readonly calls: string[] = [];
  close(code: number, reason: string): void {
    this.calls.push(`close ${code} ${reason}`);
    this.readyState = WebSocket.CLOSING;
  }
  terminate(): void {
    this.calls.push('terminate');
    this.readyState = WebSocket.CLOSED;
    this.emit('close');
  }
}

const open = (): FakeSocket => new FakeSocket();
const asWs = (s: FakeSocket): WebSocket => s as unknown as WebSocket;

afterEach(() => {
  vi.useRealTimers();
});

describe('closeOrTerminate', () => {
  it('closes, and terminates when the close handshake has not finished in time', () => {
    vi.useFakeTimers();
    const ws = open();
    closeOrTerminate(asWs(ws), 1013, 'slow reader', 3000);
    expect(ws.calls).toEqual(['close 1013 slow reader']);
    vi.advanceTimersByTime(2999);
    expect(ws.calls).toEqual(['close 1013 slow reader']);
    vi.advanceTimersByTime(1);
    expect(ws.calls).toEqual(['close 1013 slow reader', 'terminate']);
  });

  it('does not terminate a socket whose close handshake finished', () => {
    vi.useFakeTimers();
    const ws = open();
    closeOrTerminate(asWs(ws), 1000, 'bye', 3000);
    ws.readyState = WebSocket.CLOSED;
    ws.emit('close');
    vi.advanceTimersByTime(10_000);
    expect(ws.calls).toEqual(['close 1000 bye']);
    expect(ws.listenerCount('close')).toBe(0);
  });

  it('returns a cancel that disarms the deadline', () => {
    vi.useFakeTimers();
    const ws = open();
    const cancel = closeOrTerminate(asWs(ws), 1012, 'service restart', 3000);
    cancel();
    vi.advanceTimersByTime(10_000);
    expect(ws.calls).toEqual(['close 1012 service restart']);
    expect(ws.listenerCount('close')).toBe(0);
  });

  it('leaves a closed socket alone', () => {
    vi.useFakeTimers();
    const ws = open();
    ws.readyState = WebSocket.CLOSED;
    closeOrTerminate(asWs(ws), 1000, 'bye', 3000);
    vi.advanceTimersByTime(10_000);
    expect(ws.calls).toEqual([]);
  });

  it('still terminates when close() throws', () => {
    vi.useFakeTimers();
    const ws = open();
    ws.close = () => {
      throw new TypeError('invalid close code');
    };
    expect(() => closeOrTerminate(asWs(ws), 999, 'bad', 3000)).toThrow(TypeError);
    vi.advanceTimersByTime(3000);
    expect(ws.calls).toEqual(['terminate']);
  });
});
