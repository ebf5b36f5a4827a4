import type { Agent } from '@callgate/agent';
import type { PacerGroup } from '@callgate/audio';
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

/** A stream the proxy moved here from another worker, as its verified resume vouch says. */
export interface StreamResume {
  /** 1 for the first move of this call, 2 for the next, ... */
  attempt: number;
  /** The proxy's clock when it vouched (ms since the epoch). */
  issuedAtMs: number;
  /** False when CALL_TOKEN_SECRET is unset: the vouch could not be checked. */
  signed: boolean;
  /** The proxy's caller-side `X-Tunnel-Id`: the same on every segment of the call. */
  tunnelId: string | undefined;
}

/** What a session needs from its worker. */
export interface SessionHost {
  readonly config: SessionConfig;
  readonly agent: Agent;
  readonly metrics: MediaMetrics;
  readonly logger: Logger;
  /** The worker's shared pacer timer for every call's outbound frames (else one per call). */
  readonly pacers?: PacerGroup;
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
