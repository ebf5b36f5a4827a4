export type {
  Agent,
  AgentCall,
  AgentSession,
  CallInfo,
  CallStats,
  CallTransport,
  SayOptions,
} from './types.js';
export { Call, DEFAULT_PLAYBACK_LEAD_MS } from './call.js';
export { copyCallStats } from './call-metrics.js';
export type { CallStatsCounters } from './call-metrics.js';
export type { CallEvents, CallOptions, CallPacer, PacerFactory, PacerTick } from './call.js';
export { Playback, FRAME_MS } from './playback.js';
export type { MarkOutcome, PlaybackItem, PlaybackOptions, SayResult } from './playback.js';
export { EnergyVad, frameDbfs, SILENCE_DBFS } from './vad.js';
export type { VadEvent, VadOptions } from './vad.js';
export { createParrotAgent } from './parrot.js';
export type { ParrotOptions } from './parrot.js';
export { createEchoAgent } from './echo.js';
export type { EchoOptions } from './echo.js';
export { loadAgent } from './load-agent.js';
export type { BuiltInAgentName, LoadAgentOptions } from './load-agent.js';
export { AGENT_ERRORS, AgentError } from './errors.js';
export type { AgentErrorCode } from './errors.js';
