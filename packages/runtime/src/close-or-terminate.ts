import { WebSocket } from 'ws';

/**
 * Starts a WebSocket close handshake with `code` and `reason`, and terminates the socket (no close
 * frame, TCP cut) if the peer has not finished it within `timeoutMs`: a peer that stopped reading
 * would otherwise hold the socket, and its session, open forever. Returns a function that cancels
 * the deadline (for a server that is shutting down and terminates everything itself); it is
 * cancelled on its own once the socket closes. The deadline is armed before `ws.close()` runs, so
 * a socket is still cut if `close()` throws (ws throws for a code it does not allow).
 */
export function closeOrTerminate(
  ws: WebSocket,
  code: number,
  reason: string,
  timeoutMs: number,
): () => void {
  if (ws.readyState === WebSocket.CLOSED) return () => undefined;
  const timer = setTimeout(() => ws.terminate(), timeoutMs);
  const cancel = (): void => {
    clearTimeout(timer);
    ws.removeListener('close', cancel);
  };
  ws.once('close', cancel);
  ws.close(code, reason);
  return cancel;
}
