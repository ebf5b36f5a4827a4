import type { CallSummary, ReplyLatency, Segment } from './types.js';

/** Samples at or below this magnitude count as digital silence when finding caller utterances. */
export const DIGITAL_SILENCE_MAX = 32;
/** Gap of silence that separates two caller utterances. */
export const MIN_UTTERANCE_GAP_MS = 300;
/** RMS above which played audio counts as a reply (about -40 dBFS; μ-law silence decodes to 0). */
export const REPLY_RMS_THRESHOLD = 300;
const REPLY_WINDOW_MS = 10;

/**
 * Caller utterances in `pcm`: runs of sound separated by at least `minGapMs` of digital silence.
 * Times are ms from the first sample.
 */
export function detectSegments(
  pcm: Int16Array,
  sampleRate: number,
  minGapMs = MIN_UTTERANCE_GAP_MS,
): Segment[] {
  const minGap = Math.max(1, Math.round((minGapMs * sampleRate) / 1000));
  const segments: Segment[] = [];
  let start = -1;
  let lastLoud = -1;
  for (let i = 0; i < pcm.length; i++) {
    if (Math.abs(pcm[i] ?? 0) <= DIGITAL_SILENCE_MAX) continue;
    if (start !== -1 && i - lastLoud - 1 >= minGap) {
      segments.push(toSegment(start, lastLoud + 1, sampleRate));
      start = -1;
    }
    if (start === -1) start = i;
    lastLoud = i;
  }
  if (start !== -1) segments.push(toSegment(start, lastLoud + 1, sampleRate));
  return segments;
}

function toSegment(startSample: number, endSample: number, rate: number): Segment {
  return { startMs: (startSample * 1000) / rate, endMs: (endSample * 1000) / rate };
}

/** Root mean square of `pcm[from, to)`. */
export function windowRms(pcm: Int16Array, from: number, to: number): number {
  const end = Math.min(to, pcm.length);
  if (end <= from) return 0;
  let sum = 0;
  for (let i = from; i < end; i++) {
    const s = pcm[i] ?? 0;
    sum += s * s;
  }
  return Math.sqrt(sum / (end - from));
}

/**
 * Time (ms on the caller timeline) of the first non-silent played audio at or after `fromMs`, or
 * null. Found with 10 ms RMS windows, then refined to the first loud sample near that window.
 */
export function firstSoundAfter(
  audio: Int16Array,
  sampleRate: number,
  fromMs: number,
  threshold = REPLY_RMS_THRESHOLD,
): number | null {
  const window = Math.max(1, Math.round((REPLY_WINDOW_MS * sampleRate) / 1000));
  const from = Math.max(0, Math.ceil((fromMs * sampleRate) / 1000));
  for (let w = from; w < audio.length; w += window) {
    if (windowRms(audio, w, w + window) <= threshold) continue;
    for (let i = Math.max(from, w - window); i < w + window && i < audio.length; i++) {
      if (Math.abs(audio[i] ?? 0) >= threshold) return (i * 1000) / sampleRate;
    }
    return (w * 1000) / sampleRate;
  }
  return null;
}

/** Latency from the end of each caller utterance to the first reply audio the caller heard. */
export function computeReplies(
  replyAudio: Int16Array,
  sampleRate: number,
  segments: readonly Segment[],
): ReplyLatency[] {
  return segments.map((segment, utteranceIndex) => {
    const firstReplyMs = firstSoundAfter(replyAudio, sampleRate, segment.endMs);
    return {
      utteranceIndex,
      utteranceEndMs: round1(segment.endMs),
      firstReplyMs: firstReplyMs === null ? null : round1(firstReplyMs),
      latencyMs: firstReplyMs === null ? null : round1(firstReplyMs - segment.endMs),
    };
  });
}

function round1(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** The human-readable block the CLI prints at the end of a call. */
export function formatSummary(s: CallSummary): string {
  const lines: string[] = [];
  const sec = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
  lines.push(`call ${s.callSid} (${s.provider}), stream ${s.streamSid}`);
  lines.push(
    `  duration    ${sec(s.durationMs)}, closed by ${s.closedBy}` +
      ` (code ${s.closeCode ?? 'none'}${s.closeReason ? `, "${s.closeReason}"` : ''})`,
  );
  lines.push(
    `  audio       frames sent ${s.audioFramesSent}, received ${s.audioFramesReceived}` +
      ` in ${s.audioMessagesReceived} audio message${s.audioMessagesReceived === 1 ? '' : 's'}`,
  );
  if (s.provider === 'twilio') {
    lines.push(
      `  marks       received ${s.marksReceived}, acked ${s.marksAcked}` +
        ` (${s.marksAckedOnClear} on clear); clears ${s.clears}`,
    );
  }
  lines.push(`  dtmf        sent ${s.dtmfSent}`);
  if (s.actionRequests > 0 || s.reconnects > 0) {
    const gaps = s.reconnectGapsMs.map((ms) => `${ms} ms`).join(', ');
    lines.push(
      `  reconnects  ${s.reconnects} (action requests ${s.actionRequests}, last answer ` +
        `${s.actionResult ?? 'none'}${gaps === '' ? '' : `; gaps ${gaps}`})`,
    );
    if (s.streamSids.length > 1) lines.push(`  streams     ${s.streamSids.join(', ')}`);
  }
  const params = Object.entries(s.customParameters);
  if (params.length > 0) {
    lines.push(`  parameters  ${params.map(([k, v]) => `${k}=${v}`).join(', ')}`);
  }
  if (s.replies.length === 0) {
    lines.push('  replies     no caller utterances');
  }
  s.replies.forEach((r, i) => {
    const label = i === 0 ? '  replies     ' : '              ';
    const what =
      r.firstReplyMs === null || r.latencyMs === null
        ? 'no reply heard'
        : `reply at ${sec(r.firstReplyMs)}, latency ${Math.round(r.latencyMs)} ms`;
    lines.push(`${label}#${r.utteranceIndex + 1} ended ${sec(r.utteranceEndMs)}: ${what}`);
  });
  if (s.protocolErrors.length === 0) {
    lines.push('  protocol    no errors');
  } else {
    lines.push(`  protocol    ${s.protocolErrors.length} error(s)`);
    for (const e of s.protocolErrors.slice(0, 10)) lines.push(`    ${e.code}: ${e.message}`);
  }
  return lines.join('\n');
}
