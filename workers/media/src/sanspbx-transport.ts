import type { CallTransport } from '@callgate/agent';
import { pcm16ToBytes } from '@callgate/audio';
import { encodeBase64, serializeSansPbxOutbound } from '@callgate/protocol';
import type { MediaSession } from './media-session.js';

export interface SansPbxIdentity {
  callId: string;
  streamId: string;
  channelId: string;
}

export interface SansPbxTransportOptions {
  identity: SansPbxIdentity;
  sampleRate: number;
  /**
   * Its session: sends with backpressure and byte counts, ends the call on a hang-up, and gets
   * each mark once it counts as played (see the class comment) to hand to the Call.
   */
  session: Pick<MediaSession, 'send' | 'agentHungUp' | 'receiveMark'>;
  /** Milliseconds clock; default `performance.now`. */
  clock?: () => number;
}

/**
 * The Call's way out to a SansPBX stream: frames become `reverse-media` messages of base64 PCM16 LE
 * at the line rate. SansPBX has no marks and no clear, so this transport makes the marks itself:
 * a mark is reported played once every frame sent before it has had its 20 ms of playing time,
 * back to back from when the first was sent (the Call paces frames in real time, a playback lead
 * ahead, so that is when a PBX that plays what it gets finishes it). That is an estimate,
 * documented as such in README.md. Without it the Call would think the agent speaks for ever.
 *
 * `sendClear()` cannot take back audio already sent (at most the playback lead, `PLAYBACK_LEAD_MS`);
 * it reports the pending marks at once, as Twilio echoes them on `clear`, and the Call counts
 * those as cleared.
 */
export class SansPbxTransport implements CallTransport {
  readonly sampleRate: number;
  readonly #identity: SansPbxIdentity;
  readonly #session: Pick<MediaSession, 'send' | 'agentHungUp' | 'receiveMark'>;
  readonly #clock: () => number;
  readonly #frameMs = 20;
  /** Clock time at which everything sent so far has played. */
  #playedUntil = 0;
  readonly #pending = new Map<string, NodeJS.Timeout>();
  #closed = false;

  constructor(options: SansPbxTransportOptions) {
    this.sampleRate = options.sampleRate;
    this.#identity = options.identity;
    this.#session = options.session;
    this.#clock = options.clock ?? (() => performance.now());
  }

  sendAudio(frame: Int16Array): void {
    const now = this.#clock();
    this.#playedUntil = Math.max(this.#playedUntil, now) + this.#frameMs;
    this.#session.send(
      serializeSansPbxOutbound({
        event: 'reverse-media',
        payload: encodeBase64(pcm16ToBytes(frame)),
        streamId: this.#identity.streamId,
        channelId: this.#identity.channelId,
        callId: this.#identity.callId,
      }),
    );
  }

  sendMark(name: string): void {
    if (this.#closed) return;
    const delay = Math.max(0, this.#playedUntil - this.#clock());
    const timer = setTimeout(() => {
      this.#pending.delete(name);
      this.#session.receiveMark(name);
    }, delay);
    this.#pending.set(name, timer);
  }

  sendClear(): void {
    this.#playedUntil = this.#clock();
    const names = [...this.#pending.keys()];
    for (const timer of this.#pending.values()) clearTimeout(timer);
    this.#pending.clear();
    // Reported after the Call's clear() has returned, as an echo from the far end would be.
    queueMicrotask(() => {
      if (this.#closed) return;
      for (const name of names) this.#session.receiveMark(name);
    });
  }

  hangup(reason: string): void {
    this.#session.agentHungUp(reason);
  }

  /** Stops the mark timers; nothing is reported after this. Idempotent. */
  close(): void {
    this.#closed = true;
    for (const timer of this.#pending.values()) clearTimeout(timer);
    this.#pending.clear();
  }
}
