import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

export type UpgradeOutcome =
  'accepted' | 'rejected' | 'draining' | 'over_capacity' | 'bad_handshake' | 'error';

const UPGRADE_OUTCOMES: readonly UpgradeOutcome[] = [
  'accepted',
  'rejected',
  'draining',
  'over_capacity',
  'bad_handshake',
  'error',
];

/** The series a StreamServer keeps, each named `<prefix>_…`. */
export interface StreamServerMetrics {
  readonly upgrades: Counter<'outcome'>;
  readonly sessionsActive: Gauge;
  readonly sessionsTotal: Counter;
  readonly errors: Counter<'code'>;
  readonly sessionsShed: Counter;
}

/** Registers the StreamServer series; `prefix` is the server name with dashes as underscores. */
export function createStreamServerMetrics(registry: Registry, prefix: string): StreamServerMetrics {
  const registers = [registry];
  const upgrades = new Counter({
    name: `${prefix}_upgrades_total`,
    help: 'WebSocket upgrade requests by outcome.',
    labelNames: ['outcome'] as const,
    registers,
  });
  for (const outcome of UPGRADE_OUTCOMES) upgrades.inc({ outcome }, 0);
  const sessionsActive = new Gauge({
    name: `${prefix}_sessions_active`,
    help: 'Open WebSocket sessions.',
    registers,
  });
  const sessionsTotal = new Counter({
    name: `${prefix}_sessions_total`,
    help: 'WebSocket sessions opened.',
    registers,
  });
  const errors = new Counter({
    name: `${prefix}_errors_total`,
    help: 'Errors by code.',
    labelNames: ['code'] as const,
    registers,
  });
  const sessionsShed = new Counter({
    name: `${prefix}_sessions_shed_total`,
    help: 'Sessions closed with 1013 because the peer did not read fast enough.',
    registers,
  });
  return { upgrades, sessionsActive, sessionsTotal, errors, sessionsShed };
}
