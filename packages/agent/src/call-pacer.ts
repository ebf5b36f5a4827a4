import { Pacer } from '@callgate/audio';
import { FRAME_MS } from './playback.js';

export interface PacerTick {
  tick: number;
  lateMs: number;
}

/** The part of @callgate/audio's Pacer the Call uses; injectable so tests can tick by hand. */
export interface CallPacer {
  start(): void;
  stop(): void;
  readonly running: boolean;
}

export type PacerFactory = (options: {
  intervalMs: number;
  onTick: (info: PacerTick) => void;
  now?: () => number;
}) => CallPacer;

const defaultPacer: PacerFactory = (options) => new Pacer(options);

/** The Call's outbound pacer: one tick per frame, from `createPacer` (default: a `Pacer`). */
export function createCallPacer(
  options: { createPacer?: PacerFactory; clock?: () => number },
  onTick: (info: PacerTick) => void,
): CallPacer {
  const createPacer = options.createPacer ?? defaultPacer;
  const pacerOptions: Parameters<PacerFactory>[0] = { intervalMs: FRAME_MS, onTick };
  if (options.clock) pacerOptions.now = options.clock;
  return createPacer(pacerOptions);
}
