import type { Agent } from '@callgate/agent';
import type { Logger } from '@callgate/runtime';
import type { WebSocket } from 'ws';
import type { MediaConfig } from './config.js';
import type { MediaSession } from './media-session.js';
import type { MediaMetrics } from './metrics.js';

export type SessionConfig = Pick<
  MediaConfig,
  | 'workerId'
  | 'callTokenSecret'
  | 'recordingsDir'
  | 'sansPbxEnabled'
  | 'sansPbxSampleRate'
  | 'startTimeoutMs'
  | 'maxBadMessages'
  | 'playbackLeadMs'
  | 'noMediaTimeoutMs'
  | 'stuckReaderMs'
>;

/** What a session needs from its worker. */
export interface SessionHost {
  readonly config: SessionConfig;
  readonly agent: Agent;
  readonly metrics: MediaMetrics;
  readonly logger: Logger;
  /** StreamServer.send: backpressure; false when the socket is gone or was shed. */
  send(ws: WebSocket, text: string): boolean;
  /** One `media_errors_total{code}` for the whole worker. */
  countError(code: string): void;
  /**
   * Registers the session as the live stream of `callSid`, replacing an older one. False (nothing
   * registered) when MAX_CALLS other calls are live: slots belong to started calls only.
   */
  claimCall(callSid: string, session: MediaSession): boolean;
  /** StreamServer.shed: 1013 'slow reader', counted in `media_sessions_shed_total`. */
  shed(ws: WebSocket, why: Record<string, unknown>): void;
  releaseCall(callSid: string, session: MediaSession): void;
}
