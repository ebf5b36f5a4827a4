import {
  Call,
  copyCallStats,
  type CallStats,
  type CallStatsCounters,
  type MarkOutcome,
  type PacerFactory,
} from '@callgate/agent';
import { Pacer, type PacerGroup } from '@callgate/audio';
import type { Logger } from '@callgate/runtime';
import type { MediaSession, StreamResume } from './media-session.js';
import type { MediaWorker } from './media-worker.js';
import type { MediaMetrics, Provider } from './metrics.js';
import { CallRecorder } from './recorder.js';
import type { CallStart } from './stream-receiver.js';

/**
 * How a call ended: the `reason` label of `media_calls_finished_total` and the `reason` field of
 * the `call ended` line. The values are shared with the test-agent's sessions where they mean
 * the same.
 */
export type CallEndReason =
  | 'caller-hangup' // the provider sent `stop`
  | 'agent-hangup' // the agent hung up
  | 'caller-disconnected' // the socket closed without `stop`
  | 'replaced' // a newer stream for the same call took over
  | 'service-restart' // closed with 1012 at the drain deadline
  | 'slow-reader' // closed with 1013: the peer did not read fast enough
  | 'agent-error' // the agent failed to start or threw too often
  | 'protocol-error' // bad input the session cannot go on with
  | 'internal-error'; // a worker bug (transport threw, handler threw)

/** Per-socket counters the session keeps and the summary reports. */
export interface SessionCounters {
  bytesIn: number;
  bytesOut: number;
  badMessages: number;
}

// A hole in the caller's timestamps shorter than half a frame is jitter in Twilio's clock.
const GAP_TOLERANCE_MS = 10;
// Gaps are filled with silence for the agent (its VAD counts time in frames), up to this much.
const MAX_GAP_FILL_MS = 1000;
// Caller audio (gap fill included) may run this far ahead of the wall clock since start: bursts
// after a network stall only catch up, so more is a peer sending faster than real time.
const MAX_AUDIO_AHEAD_MS = 5000;

/**
 * The call on a media session, from an accepted `start` (or SansPBX `answer`) to its end: the
 * agent's `Call`, the recording, the gap accounting of caller audio, and the worker's counters,
 * which move while the call runs (synced from `Call.stats`), not only when it ends.
 */
export class MediaCall {
  readonly call: Call;
  readonly provider: Provider;
  readonly callSid: string;
  readonly streamSid: string;
  /** The proxy moved this call here from another worker (a verified resume vouch). */
  readonly resume: StreamResume | undefined;
  readonly #session: MediaSession;
  readonly #worker: MediaWorker;
  readonly #metrics: MediaMetrics;
  /** Already carries `callSid` and `streamSid`. */
  readonly #log: Logger;
  readonly #recorder: CallRecorder | undefined;
  readonly #startedAt = new Date();
  readonly #startedMs = performance.now();
  readonly #rate: number;
  /** What of the Call's counters the worker's metrics already have (updated in place). */
  readonly #reported: CallStats;
  /** The worker's counters the Call's stats are copied into, with this call's provider. */
  readonly #counters: CallStatsCounters;
  #expectedTs: number | undefined;
  #gaps = 0;
  #gapMs = 0;
  #audioMessagesIn = 0;
  #foreignMarks = 0;
  #audioMsIn = 0;
  #finished = false;

  /** Begins the call `start` describes on `session` (whose provider is known). */
  constructor(session: MediaSession, worker: MediaWorker, start: CallStart) {
    const { callSid, streamSid, transport } = start;
    const provider = session.provider!;
    const { resume, log } = session;
    const { metrics, config } = worker;
    this.provider = provider;
    this.callSid = callSid;
    this.streamSid = streamSid;
    this.resume = resume;
    this.#session = session;
    this.#worker = worker;
    this.#metrics = metrics;
    this.#log = log;
    this.#rate = transport.sampleRate;
    if (config.recordingsDir !== undefined) {
      this.#recorder = CallRecorder.start({
        dir: config.recordingsDir,
        callSid,
        streamSid,
        // Each stream of a moved call is its own segment (file), named so none overwrites another
        // (workers may share RECORDINGS_DIR) and all are found by the CallSid.
        ...(resume === undefined
          ? {}
          : {
              segment: resumeSegmentName(resume.attempt, this.#startedAt),
              rebaseTimestamps: true,
            }),
        sampleRate: transport.sampleRate,
        onError: (err) => {
          log.error('recording failed, the call goes on without it', {
            code: 'MEDIA_ERR_RECORDING',
            err,
          });
          worker.countError('MEDIA_ERR_RECORDING');
        },
      });
      metrics.recordingsActive.inc();
    }
    const call = new Call({
      info: {
        callId: callSid,
        streamId: streamSid,
        transport: provider,
        customParameters: start.customParameters,
        ...(resume === undefined ? {} : { resumed: { attempt: resume.attempt } }),
      },
      agent: worker.agent,
      transport,
      logger: log,
      playbackLeadMs: config.playbackLeadMs,
      ...(worker.pacers === undefined ? {} : { createPacer: groupPacerFactory(worker.pacers) }),
    });
    this.call = call;
    this.#reported = call.stats; // a copy
    this.#counters = {
      // Each 20 ms audio frame handed to the transport goes out as one audio message.
      framesOut: (n) => metrics.tallies.audioMessagesOut.add(provider, n),
      lateFrames: (n) => metrics.lateFrames.inc({ provider }, n),
      marksSent: (n) => metrics.marksSent.inc({ provider }, n),
      clears: (n) => metrics.clears.inc({ provider }, n),
      agentErrors: (n) => metrics.agentErrors.inc({ provider }, n),
      marksPlayed: (n) => metrics.marksAcked.inc({ provider, outcome: 'played' }, n),
      marksCleared: (n) => metrics.marksAcked.inc({ provider, outcome: 'cleared' }, n),
    };
    call.on('frame-out', (frame) => {
      this.#recorder?.writeAgent(frame);
      this.#syncStats();
    });
    call.on('clear', () => {
      this.#recorder?.agentCleared();
      this.#syncStats();
    });
    call.on('agent-error', () => this.#syncStats());
    // The Call logged each of these where it decided; here they are only counted.
    call.on('problem', (err) => worker.countError(err.code));
    // The Call ended by itself (a transport throw, the agent failing): the session closes.
    call.on('end', (reason) => session.callEnded(reason));
    metrics.callsActive.inc({ provider });
  }

  get recordingPath(): string | undefined {
    return this.#recorder?.wavPath;
  }

  /** Starts the agent (never rejects: a failing agent hangs the call up). */
  start(): void {
    void this.call.start();
  }

  /**
   * Caller audio at the line rate. With Twilio's `media.timestamp`, holes are counted and filled
   * with silence for the agent. Returns false, dropping the audio, when the peer sends faster
   * than real time.
   */
  receiveAudio(pcm: Int16Array, timestampMs?: number): boolean {
    const ms = (pcm.length * 1000) / this.#rate;
    if (ms > this.#aheadBudgetMs()) return false;
    this.#audioMsIn += ms;
    this.#audioMessagesIn++;
    const metrics = this.#metrics;
    const provider = this.provider;
    metrics.tallies.audioMessagesIn.add(provider);
    if (timestampMs !== undefined) {
      const expected = this.#expectedTs;
      if (expected !== undefined && timestampMs > expected + GAP_TOLERANCE_MS) {
        const missing = timestampMs - expected;
        this.#gaps++;
        this.#gapMs += missing;
        metrics.inboundGaps.inc({ provider });
        metrics.inboundGapMs.inc({ provider }, missing);
        // Bounded twice: per gap, and by real time, so forged timestamps cannot make work.
        const fill = Math.min(missing, MAX_GAP_FILL_MS, Math.max(0, this.#aheadBudgetMs()));
        if (fill > 0) {
          this.#audioMsIn += fill;
          this.call.receiveAudio(new Int16Array(Math.round((fill * this.#rate) / 1000)));
        }
      }
      this.#expectedTs = Math.max(expected ?? 0, timestampMs + ms);
    }
    this.#recorder?.writeCaller(pcm, timestampMs);
    this.call.receiveAudio(pcm);
    return true;
  }

  receiveDtmf(digit: string): void {
    this.call.receiveDtmf(digit);
  }

  /**
   * Returns what the mark was (`unknown`: no mark of this call). On a resumed call, an ack of a
   * mark an earlier worker sent is normal: counted here, not logged; the receiver decides whether
   * an unknown mark is a bad message (`unknownMarkIsBadMessage`).
   */
  receiveMark(name: string): MarkOutcome | undefined {
    const outcome = this.call.receiveMark(name);
    if (outcome === 'unknown' && this.resume !== undefined) {
      this.#foreignMarks++;
      this.#metrics.resumedMarksIgnored.inc({ provider: this.provider });
    }
    this.#syncStats();
    return outcome;
  }

  /** How long the oldest sent mark has waited for its ack (ms); undefined when none waits. */
  get markAckWaitMs(): number | undefined {
    return this.call.markAckWaitMs;
  }

  /**
   * After the socket closed: ends the Call (idempotent), updates the counters, logs `call ended`
   * and writes the recording's summary. Resolves once the recording is on disk; never rejects.
   */
  async finish(reason: CallEndReason, closeCode: number, counters: SessionCounters): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    const { call } = this;
    call.end(reason);
    this.#syncStats();
    const { provider } = this;
    const metrics = this.#metrics;
    const log = this.#log;
    const durationMs = Math.round(performance.now() - this.#startedMs);
    metrics.callsActive.dec({ provider });
    metrics.callsFinished.inc({ provider, reason });
    metrics.callDuration.observe({ provider }, durationMs / 1000);
    const stats = {
      ...call.stats,
      audioMessagesIn: this.#audioMessagesIn,
      inboundGaps: this.#gaps,
      inboundGapMs: this.#gapMs,
      ...(this.resume === undefined ? {} : { foreignMarksIgnored: this.#foreignMarks }),
      ...counters,
    };
    log.info('call ended', {
      reason,
      endReason: call.endReason,
      closeCode,
      durationMs,
      stats,
    });
    const recorder = this.#recorder;
    if (!recorder) return;
    await recorder.close({
      callSid: this.callSid,
      streamSid: this.streamSid,
      provider,
      workerId: this.#worker.config.workerId,
      sessionId: this.#session.id,
      agent: this.#worker.agent.name,
      startedAt: this.#startedAt.toISOString(),
      endedAt: new Date().toISOString(),
      durationMs,
      reason,
      endReason: call.endReason,
      closeCode,
      segment: this.#segment(),
      stats,
    });
    metrics.recordingsActive.dec();
  }

  /**
   * Which stream of the call this recording is: `resumed` false for the stream the call started
   * on; for a stream the proxy moved here, the move's attempt and the proxy's tunnel id (the same
   * on every segment of the call). `callerTimestampOffsetMs`: where this file's time 0 is on the
   * call's `media.timestamp` clock, so segments can be laid on one timeline.
   */
  #segment(): Record<string, unknown> {
    const { resume } = this;
    const base = { startedAt: this.#startedAt.toISOString(), resumed: resume !== undefined };
    if (resume === undefined) return base;
    return {
      ...base,
      attempt: resume.attempt,
      tunnelId: resume.tunnelId ?? null,
      vouchSigned: resume.signed,
      callerTimestampOffsetMs: this.#recorder?.callerTimestampOffsetMs ?? null,
    };
  }

  /** How much more caller audio than real time allows may still come in, in ms. */
  #aheadBudgetMs(): number {
    return performance.now() - this.#startedMs + MAX_AUDIO_AHEAD_MS - this.#audioMsIn;
  }

  /** Adds what the Call counted since last time to the worker's counters. */
  #syncStats(): void {
    // The Call's live counters, read without a snapshot: this runs for every frame sent.
    copyCallStats(this.call.counters, this.#reported, this.#counters);
  }
}

/** `r<attempt>-<UTC start, compact>`, e.g. `r1-20250102T030405678Z`: unique per segment. */
export function resumeSegmentName(attempt: number, startedAt: Date): string {
  const stamp = startedAt.toISOString().replace(/[-:.]/g, '');
  return `r${attempt}-${stamp}`;
}

/** A Call's pacer on the worker's shared timer (a per-call `Pacer` for any other interval). */
function groupPacerFactory(group: PacerGroup): PacerFactory {
  return (options) =>
    options.intervalMs === group.intervalMs && options.now === undefined
      ? group.pacer(options.onTick)
      : new Pacer(options);
}
