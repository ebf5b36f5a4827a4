import type { CallStats } from './types.js';

/**
 * Where a worker counts a Call's stats: for each stat it wants, a function that adds to its own
 * counter (labels and all). Stats left out are not copied.
 */
export type CallStatsCounters = { readonly [K in keyof CallStats]?: (increase: number) => void };

/**
 * Copies what `call` counted since the last copy into the worker's `counters`, and moves
 * `reported` (what the counters already have; start it as a `Call.stats` snapshot, or zeros) up
 * to `call`. Only increases are added. Cheap enough to run for every audio frame sent (about
 * 25 ns): pass the Call's live `counters`, not a `stats` snapshot.
 *
 *     const reported = call.stats;
 *     const counters = { lateFrames: (n) => metrics.lateFrames.inc(n) };
 *     call.on('frame-out', () => copyCallStats(call.counters, reported, counters));
 */
export function copyCallStats(
  call: Readonly<CallStats>,
  reported: CallStats,
  counters: CallStatsCounters,
): void {
  // One line per stat, not a loop over keys: property reads by name keep this as cheap as the
  // inline code it replaces (a loop with computed keys measured ten times slower per call).
  const c = counters;
  let d: number;
  if (c.framesIn !== undefined && (d = call.framesIn - reported.framesIn) > 0) {
    c.framesIn(d);
    reported.framesIn = call.framesIn;
  }
  if (c.framesOut !== undefined && (d = call.framesOut - reported.framesOut) > 0) {
    c.framesOut(d);
    reported.framesOut = call.framesOut;
  }
  if (c.lateFrames !== undefined && (d = call.lateFrames - reported.lateFrames) > 0) {
    c.lateFrames(d);
    reported.lateFrames = call.lateFrames;
  }
  if (c.utterances !== undefined && (d = call.utterances - reported.utterances) > 0) {
    c.utterances(d);
    reported.utterances = call.utterances;
  }
  if (c.marksSent !== undefined && (d = call.marksSent - reported.marksSent) > 0) {
    c.marksSent(d);
    reported.marksSent = call.marksSent;
  }
  if (c.marksPlayed !== undefined && (d = call.marksPlayed - reported.marksPlayed) > 0) {
    c.marksPlayed(d);
    reported.marksPlayed = call.marksPlayed;
  }
  if (c.marksCleared !== undefined && (d = call.marksCleared - reported.marksCleared) > 0) {
    c.marksCleared(d);
    reported.marksCleared = call.marksCleared;
  }
  if (c.clears !== undefined && (d = call.clears - reported.clears) > 0) {
    c.clears(d);
    reported.clears = call.clears;
  }
  if (c.dtmfIn !== undefined && (d = call.dtmfIn - reported.dtmfIn) > 0) {
    c.dtmfIn(d);
    reported.dtmfIn = call.dtmfIn;
  }
  if (c.agentErrors !== undefined && (d = call.agentErrors - reported.agentErrors) > 0) {
    c.agentErrors(d);
    reported.agentErrors = call.agentErrors;
  }
  if (c.droppedMs !== undefined && (d = call.droppedMs - reported.droppedMs) > 0) {
    c.droppedMs(d);
    reported.droppedMs = call.droppedMs;
  }
}
