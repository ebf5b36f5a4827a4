import { Counter, Gauge, Histogram, type Registry } from '@callgate/runtime';

export type Provider = 'twilio' | 'sanspbx';

/**
 * The media worker's own series, registered on the service's registry next to the StreamServer's
 * (sessions, upgrades, `media_errors_total{code}`). Counters move while calls run, not only when
 * they end, so a dashboard sees a stuck call.
 */
export interface MediaMetrics {
  /**
   * Per-message counts of `audioMessagesIn`, `audioMessagesOut`, `bytesIn` and `bytesOut`: add to
   * these on the hot path; they reach the counters whenever those are read.
   */
  tallies: {
    audioMessagesIn: ProviderTally;
    audioMessagesOut: ProviderTally;
    bytesIn: ProviderTally;
    bytesOut: ProviderTally;
  };
  callsActive: Gauge<'provider'>;
  /**
   * Calls that reached `start` and ended, by how they ended: a `CallEndReason`, a fixed set. The
   * agent's own hang-up reason is only in the `call ended` line (`endReason`), never a label.
   */
  callsFinished: Counter<'provider' | 'reason'>;
  callDuration: Histogram<'provider'>;
  /** Caller audio messages (Twilio/SansPBX `media`) received. */
  audioMessagesIn: Counter<'provider'>;
  /** Audio messages sent to the caller: one per 20 ms audio frame. */
  audioMessagesOut: Counter<'provider'>;
  /** Outbound pacer ticks more than 10 ms late. */
  lateFrames: Counter<'provider'>;
  /** Holes in the caller's audio, found from `media.timestamp`. */
  inboundGaps: Counter<'provider'>;
  inboundGapMs: Counter<'provider'>;
  /** Time spent handling one inbound media message (parse, decode, agent, recording). */
  inboundProcessing: Histogram<'provider'>;
  marksSent: Counter<'provider'>;
  /** Marks acked by the caller: `played` (the caller heard it) or `cleared` (acked because of a clear). */
  marksAcked: Counter<'provider' | 'outcome'>;
  clears: Counter<'provider'>;
  agentErrors: Counter<'provider'>;
  /** WebSocket message payload bytes. */
  bytesIn: Counter<'provider'>;
  bytesOut: Counter<'provider'>;
  streamsReplaced: Counter;
  /** Calls that started on this worker as a resumption (moved here by the proxy). */
  callsResumed: Counter<'provider'>;
  /** Upgrades refused for their resume vouch, by `ResumeVouchFailure`. */
  resumeRefused: Counter<'reason'>;
  /** Marks acked on a resumed stream that this worker never sent (an earlier worker's). */
  resumedMarksIgnored: Counter<'provider'>;
  webhooks: Counter<'route' | 'status'>;
  /** `<Connect action>` answers: `reconnect`, `completed` (call over) or `give-up` (limit). */
  streamActions: Counter<'outcome'>;
  /** How long the stream that an action request ends had lived (from the TwiML's offer). */
  streamLifetime: Histogram;
  recordingsActive: Gauge;
}

/**
 * A per-message counter kept as plain numbers per provider and added to its prom-client counter
 * when that is read (a scrape, `get()`): `inc` with labels hashes the labels on every call, which
 * at 50 audio messages a second per call each way was a measurable share of the worker's CPU.
 */
export class ProviderTally {
  readonly #pending = new Map<string, number>();
  #counter: Counter<'provider'> | undefined;

  bind(counter: Counter<'provider'>): Counter<'provider'> {
    this.#counter = counter;
    return counter;
  }

  add(provider: string, n = 1): void {
    this.#pending.set(provider, (this.#pending.get(provider) ?? 0) + n);
  }

  /** Moves what is pending into the counter (from its `collect`). */
  flush(): void {
    const counter = this.#counter;
    if (!counter) return;
    for (const [provider, n] of this.#pending) {
      if (n > 0) counter.inc({ provider }, n);
      this.#pending.set(provider, 0);
    }
  }
}

export function createMediaMetrics(registry: Registry): MediaMetrics {
  const registers = [registry];
  const p = ['provider'] as const;
  const tallies = {
    audioMessagesIn: new ProviderTally(),
    audioMessagesOut: new ProviderTally(),
    bytesIn: new ProviderTally(),
    bytesOut: new ProviderTally(),
  };
  return {
    tallies,
    callsActive: new Gauge({
      name: 'media_calls_active',
      help: 'Calls between start and end on this worker.',
      labelNames: p,
      registers,
    }),
    callsFinished: new Counter({
      name: 'media_calls_finished_total',
      help:
        'Calls that ended, by reason: caller-hangup, agent-hangup, caller-disconnected, replaced, ' +
        'service-restart, slow-reader, agent-error, protocol-error or internal-error.',
      labelNames: ['provider', 'reason'] as const,
      registers,
    }),
    callDuration: new Histogram({
      name: 'media_call_duration_seconds',
      help: 'Length of finished calls.',
      labelNames: p,
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600],
      registers,
    }),
    audioMessagesIn: tallies.audioMessagesIn.bind(
      new Counter({
        name: 'media_audio_messages_in_total',
        help: 'Caller audio messages (media) received.',
        labelNames: p,
        registers,
        collect() {
          tallies.audioMessagesIn.flush();
        },
      }),
    ),
    audioMessagesOut: tallies.audioMessagesOut.bind(
      new Counter({
        name: 'media_audio_messages_out_total',
        help: 'Audio messages sent to the caller, one per 20 ms audio frame.',
        labelNames: p,
        registers,
        collect() {
          tallies.audioMessagesOut.flush();
        },
      }),
    ),
    lateFrames: new Counter({
      name: 'media_late_frames_total',
      help: 'Outbound audio frames sent more than 10 ms after their slot.',
      labelNames: p,
      registers,
    }),
    inboundGaps: new Counter({
      name: 'media_inbound_gaps_total',
      help: 'Holes in caller audio, by media.timestamp.',
      labelNames: p,
      registers,
    }),
    inboundGapMs: new Counter({
      name: 'media_inbound_gap_ms_total',
      help: 'Milliseconds of caller audio missing, by media.timestamp.',
      labelNames: p,
      registers,
    }),
    inboundProcessing: new Histogram({
      name: 'media_inbound_processing_seconds',
      help: 'Time to handle one inbound media message.',
      labelNames: p,
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
      registers,
    }),
    marksSent: new Counter({
      name: 'media_marks_sent_total',
      help: 'Marks sent (one per utterance).',
      labelNames: p,
      registers,
    }),
    marksAcked: new Counter({
      name: 'media_marks_acked_total',
      help: 'Marks acked by the caller: played, or cleared (acked because of a clear, not heard).',
      labelNames: ['provider', 'outcome'] as const,
      registers,
    }),
    clears: new Counter({
      name: 'media_clears_total',
      help: 'clear messages sent (barge-in).',
      labelNames: p,
      registers,
    }),
    agentErrors: new Counter({
      name: 'media_agent_errors_total',
      help: 'Agent start failures and callback throws.',
      labelNames: p,
      registers,
    }),
    bytesIn: tallies.bytesIn.bind(
      new Counter({
        name: 'media_bytes_in_total',
        help: 'WebSocket message bytes received from callers.',
        labelNames: p,
        registers,
        collect() {
          tallies.bytesIn.flush();
        },
      }),
    ),
    bytesOut: tallies.bytesOut.bind(
      new Counter({
        name: 'media_bytes_out_total',
        help: 'WebSocket message bytes sent to callers.',
        labelNames: p,
        registers,
        collect() {
          tallies.bytesOut.flush();
        },
      }),
    ),
    streamsReplaced: new Counter({
      name: 'media_streams_replaced_total',
      help: 'Sessions closed because a newer stream for the same CallSid started.',
      registers,
    }),
    callsResumed: new Counter({
      name: 'media_calls_resumed_total',
      help: 'Calls that started here as a resumption: the proxy moved them from another worker.',
      labelNames: p,
      registers,
    }),
    resumeRefused: new Counter({
      name: 'media_resume_refused_total',
      help: 'Resumed upgrades refused (403): malformed, bad-signature, stale or unsigned vouch.',
      labelNames: ['reason'] as const,
      registers,
    }),
    resumedMarksIgnored: new Counter({
      name: 'media_resumed_marks_ignored_total',
      help: 'Marks acked on a resumed stream that an earlier worker sent; ignored.',
      labelNames: p,
      registers,
    }),
    webhooks: new Counter({
      name: 'media_webhooks_total',
      help: 'Voice webhook and stream status callback requests, by HTTP status.',
      labelNames: ['route', 'status'] as const,
      registers,
    }),
    streamActions: new Counter({
      name: 'media_stream_actions_total',
      help:
        '<Connect action> requests answered, by outcome: reconnect (new stream), completed ' +
        '(call over, empty TwiML) or give-up (STREAM_RECONNECT_LIMIT reached, call ended).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    streamLifetime: new Histogram({
      name: 'media_stream_lifetime_seconds',
      help: 'Lifetime of a stream that ended while its call went on (<Connect action> requests).',
      buckets: [0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    }),
    recordingsActive: new Gauge({
      name: 'media_recordings_active',
      help: 'Recordings being written.',
      registers,
    }),
  };
}
