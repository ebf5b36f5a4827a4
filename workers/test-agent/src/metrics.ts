import { Counter, Histogram, type Registry } from '@callgate/runtime';

/**
 * The test-agent worker's own series, registered next to the StreamServer's (`test_agent_sessions_*`,
 * `test_agent_upgrades_total`, `test_agent_errors_total{code}`). Audio counters move while a
 * session runs, so a dashboard sees a stuck one.
 */
export interface TestAgentMetrics {
  /** `POST /test-agent/sessions` answers by HTTP status. */
  sessionRequests: Counter<'status'>;
  /** Sessions that ended, by reason (caller-hangup, agent hangup reasons, max-duration, ...). */
  sessionsFinished: Counter<'reason'>;
  sessionDuration: Histogram;
  /** PCM16 messages received from browsers. */
  audioMessagesIn: Counter;
  /** PCM16 messages (20 ms of audio each) sent to browsers. */
  audioMessagesOut: Counter;
  /** Outbound pacer ticks more than 10 ms late. */
  lateFrames: Counter;
  marksSent: Counter;
  /** Playback acknowledgements: played, or cleared (acked after a clear). */
  marksAcked: Counter<'outcome'>;
  clears: Counter;
  dtmf: Counter;
  bytesIn: Counter;
  bytesOut: Counter;
  /** Page and asset requests, by HTTP status. */
  staticRequests: Counter<'status'>;
}

export function createTestAgentMetrics(registry: Registry): TestAgentMetrics {
  const registers = [registry];
  return {
    sessionRequests: new Counter({
      name: 'test_agent_session_requests_total',
      help: 'POST /test-agent/sessions answers, by HTTP status.',
      labelNames: ['status'] as const,
      registers,
    }),
    sessionsFinished: new Counter({
      name: 'test_agent_sessions_finished_total',
      help: 'Sessions that ended, by reason.',
      labelNames: ['reason'] as const,
      registers,
    }),
    sessionDuration: new Histogram({
      name: 'test_agent_session_duration_seconds',
      help: 'Length of finished sessions.',
      buckets: [1, 5, 15, 30, 60, 120, 180, 300, 600],
      registers,
    }),
    audioMessagesIn: new Counter({
      name: 'test_agent_audio_messages_in_total',
      help: 'Binary PCM16 messages received from browsers.',
      registers,
    }),
    audioMessagesOut: new Counter({
      name: 'test_agent_audio_messages_out_total',
      help: 'Binary PCM16 messages (20 ms of audio each) sent to browsers.',
      registers,
    }),
    lateFrames: new Counter({
      name: 'test_agent_late_frames_total',
      help: 'Outbound audio frames sent more than 10 ms after their slot.',
      registers,
    }),
    marksSent: new Counter({
      name: 'test_agent_marks_sent_total',
      help: 'Marks sent (one per utterance).',
      registers,
    }),
    marksAcked: new Counter({
      name: 'test_agent_marks_acked_total',
      help: 'Mark acknowledgements from browsers: played, or cleared.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    clears: new Counter({
      name: 'test_agent_clears_total',
      help: 'clear messages sent (barge-in).',
      registers,
    }),
    dtmf: new Counter({
      name: 'test_agent_dtmf_total',
      help: 'DTMF digits received from browsers.',
      registers,
    }),
    bytesIn: new Counter({
      name: 'test_agent_bytes_in_total',
      help: 'WebSocket message bytes received from browsers.',
      registers,
    }),
    bytesOut: new Counter({
      name: 'test_agent_bytes_out_total',
      help: 'WebSocket message bytes sent to browsers.',
      registers,
    }),
    staticRequests: new Counter({
      name: 'test_agent_static_requests_total',
      help: 'Page and asset requests, by HTTP status.',
      labelNames: ['status'] as const,
      registers,
    }),
  };
}
