import type { Registry } from '@callgate/runtime';
import type { Backend, BackendState, ProbeResult } from './backend.js';
import type { ProxyErrorCode } from './errors.js';
import { ProxyMetrics } from './metrics.js';
import type { Pool } from './pool.js';

/** How many recent error codes the status page keeps (newest first). */
export const RECENT_ERRORS = 50;

export interface RecentError {
  code: ProxyErrorCode;
  /** ISO time of the last occurrence. */
  at: string;
  /** Occurrences in a row (the same code again is counted, not listed twice). */
  count: number;
}

/** ProxyMetrics that also remember the last error codes, for the status page. */
export class StatusMetrics extends ProxyMetrics {
  readonly #recent: RecentError[] = [];

  override error(code: ProxyErrorCode): void {
    super.error(code);
    const now = new Date().toISOString();
    const last = this.#recent[0];
    if (last?.code === code) {
      last.count++;
      last.at = now;
      return;
    }
    this.#recent.unshift({ code, at: now, count: 1 });
    if (this.#recent.length > RECENT_ERRORS) this.#recent.pop();
  }

  get recentErrors(): RecentError[] {
    return this.#recent.map((e) => ({ ...e }));
  }
}

export interface BackendStatus {
  id: string;
  state: BackendState;
  drainedByOperator: boolean;
  /** Answered an upgrade with 503 (full): still `up` for webhooks, new calls only as a last resort. */
  full: boolean;
  /** Left DNS membership; stays until its last tunnel ends. */
  removed: boolean;
  /** Tunnels through this proxy on it (handshaking or open). */
  tunnels: number;
  /** Tunnels plus connects and HTTP requests in flight: the balancer's load. */
  active: number;
  lastProbe: {
    result: ProbeResult;
    detail: string;
    latencyMs: number;
    at: string;
    ageSeconds: number;
  } | null;
}

export interface PoolStatus {
  name: string;
  tunnels: number;
  backends: BackendStatus[];
}

export interface ProxyStatus {
  service: 'proxy';
  generatedAt: string;
  uptimeSeconds: number;
  draining: boolean;
  totals: {
    tunnels: number;
    backends: Record<BackendState, number>;
    upgradesOk: number;
    upgradesFailed: number;
    /** `proxy_calls_moved_total` summed; null while this build has no such metric. */
    callsMoved: number | null;
    errors: number;
  };
  pools: PoolStatus[];
  /** Newest first. */
  recentErrors: RecentError[];
  /** `proxy_errors_total` by code since start. */
  errorTotals: Record<string, number>;
}

export interface StatusSource {
  pools: ReadonlyMap<string, Pool>;
  registry: Registry;
  /** Open tunnels with their backend (handshaking ones included). */
  tunnels(): readonly { pool: string; backend: Backend | undefined }[];
  recentErrors(): RecentError[];
  isDraining(): boolean;
  startedAt: number;
}

/** Sums a registered counter's samples by the labels `by` picks; {} if the metric is absent. */
async function samples(
  registry: Registry,
  name: string,
): Promise<{ labels: Record<string, string | number>; value: number }[] | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return undefined;
  const data = await metric.get();
  return data.values
    .filter((v) => !('metricName' in v) || v.metricName === undefined || v.metricName === name)
    .map((v) => ({ labels: v.labels as Record<string, string | number>, value: v.value }));
}

/** One snapshot of the proxy for `/status` and the page. */
export async function collectStatus(source: StatusSource): Promise<ProxyStatus> {
  const now = Date.now();
  const tunnelsByBackend = new Map<Backend, number>();
  const tunnelsByPool = new Map<string, number>();
  let tunnels = 0;
  for (const t of source.tunnels()) {
    tunnels++;
    tunnelsByPool.set(t.pool, (tunnelsByPool.get(t.pool) ?? 0) + 1);
    if (t.backend) tunnelsByBackend.set(t.backend, (tunnelsByBackend.get(t.backend) ?? 0) + 1);
  }
  const counts: Record<BackendState, number> = { up: 0, draining: 0, down: 0 };
  const pools: PoolStatus[] = [];
  for (const [name, pool] of source.pools) {
    const backends = pool.backends
      .map((b): BackendStatus => {
        counts[b.state]++;
        const probe = b.lastProbe;
        return {
          id: b.id,
          state: b.state,
          drainedByOperator: b.isDrainedByOperator,
          full: b.isFull,
          removed: b.isRemoved,
          tunnels: tunnelsByBackend.get(b) ?? 0,
          active: b.active,
          lastProbe: probe
            ? {
                result: probe.result,
                detail: probe.detail,
                latencyMs: probe.latencyMs,
                at: new Date(probe.at).toISOString(),
                ageSeconds: Math.max(0, Math.round((now - probe.at) / 100) / 10),
              }
            : null,
        };
      })
      .sort((a, b) => a.id.localeCompare(b.id));
    pools.push({ name, tunnels: tunnelsByPool.get(name) ?? 0, backends });
  }

  let upgradesOk = 0;
  let upgradesFailed = 0;
  for (const s of (await samples(source.registry, 'proxy_upgrades_total')) ?? []) {
    if (s.labels.outcome === 'ok') upgradesOk += s.value;
    else upgradesFailed += s.value;
  }
  const errorTotals: Record<string, number> = {};
  let errors = 0;
  for (const s of (await samples(source.registry, 'proxy_errors_total')) ?? []) {
    const code = String(s.labels.code);
    errorTotals[code] = (errorTotals[code] ?? 0) + s.value;
    errors += s.value;
  }
  const moved = await samples(source.registry, 'proxy_calls_moved_total');
  return {
    service: 'proxy',
    generatedAt: new Date(now).toISOString(),
    uptimeSeconds: Math.round((now - source.startedAt) / 1000),
    draining: source.isDraining(),
    totals: {
      tunnels,
      backends: counts,
      upgradesOk,
      upgradesFailed,
      callsMoved: moved ? moved.reduce((sum, s) => sum + s.value, 0) : null,
      errors,
    },
    pools,
    recentErrors: source.recentErrors(),
    errorTotals,
  };
}

// ---- HTML ------------------------------------------------------------------------------------

/** Seconds between the page's own reloads (meta refresh). */
export const REFRESH_SECONDS = 5;

const esc = (text: string | number): string =>
  String(text).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1b1f23;background:#fafbfc}
h1{font-size:1.3rem;margin:0 0 .3rem}h2{font-size:1.05rem;margin:1.6rem 0 .4rem}
table{border-collapse:collapse;background:#fff;min-width:40rem}
th,td{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f0f3f6;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.state{font-weight:600;padding:.1rem .45rem;border-radius:.3rem;color:#fff}
.up{background:#1a7f37}.draining{background:#9a6700}.down{background:#cf222e}
.tag{font-size:.8rem;border:1px solid #9a6700;color:#9a6700;border-radius:.3rem;padding:0 .3rem;margin-left:.3rem}
.muted{color:#57606a}form{display:inline;margin:0 .2rem 0 0}button{font:inherit;font-size:.85rem}
.totals td{min-width:6rem}.banner{background:#fff8c5;border:1px solid #d4a72c;padding:.4rem .7rem;display:inline-block}
`;

export interface RenderOptions {
  /** Show the action buttons (the admin listener is on loopback, or the request had the token). */
  actions: boolean;
}

/** The status page: plain HTML, no script, reloads itself every REFRESH_SECONDS. */
export function renderStatusHtml(s: ProxyStatus, options: RenderOptions): string {
  const t = s.totals;
  const rows: string[] = [];
  for (const pool of s.pools) {
    if (pool.backends.length === 0) {
      rows.push(
        `<tr><td>${esc(pool.name)}</td><td colspan="6" class="muted">no backends</td></tr>`,
      );
      continue;
    }
    for (const b of pool.backends) {
      const probe = b.lastProbe
        ? `${esc(b.lastProbe.result)} <span class="muted">(${esc(b.lastProbe.detail)}, ${esc(
            b.lastProbe.latencyMs,
          )} ms, ${esc(b.lastProbe.ageSeconds)} s ago)</span>`
        : '<span class="muted">not probed yet</span>';
      const tags =
        (b.drainedByOperator ? '<span class="tag">drained by operator</span>' : '') +
        (b.full ? '<span class="tag">full</span>' : '') +
        (b.removed ? '<span class="tag">removed</span>' : '');
      const base = `/backends/${encodeURIComponent(pool.name)}/${encodeURIComponent(b.id)}`;
      const action = (name: string, label: string): string =>
        `<form method="post" action="${esc(`${base}/${name}`)}"><button type="submit" name="action" value="${name}">${label}</button></form>`;
      const actions = options.actions
        ? (b.drainedByOperator ? action('undrain', 'Undrain') : action('drain', 'Drain')) +
          // Calls move between media workers only (call continuity).
          (pool.name === 'media' ? action('move', 'Move calls') : '')
        : '<span class="muted">token required</span>';
      rows.push(
        `<tr data-pool="${esc(pool.name)}" data-backend="${esc(b.id)}" data-state="${esc(b.state)}">` +
          `<td>${esc(pool.name)}</td><td><code>${esc(b.id)}</code></td>` +
          `<td><span class="state ${esc(b.state)}">${esc(b.state)}</span>${tags}</td>` +
          `<td class="n">${esc(b.tunnels)}</td><td class="n">${esc(b.active)}</td>` +
          `<td>${probe}</td><td>${actions}</td></tr>`,
      );
    }
  }
  const recent =
    s.recentErrors.length === 0
      ? '<p class="muted">none since start</p>'
      : `<table><tr><th>code</th><th>last seen</th><th>in a row</th><th>total</th></tr>${s.recentErrors
          .slice(0, 20)
          .map(
            (e) =>
              `<tr><td><code>${esc(e.code)}</code></td><td>${esc(e.at)}</td><td class="n">${esc(
                e.count,
              )}</td><td class="n">${esc(s.errorTotals[e.code] ?? 0)}</td></tr>`,
          )
          .join('')}</table>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>callgate proxy status</title><style>${STYLE}</style></head>
<body>
<h1>callgate proxy</h1>
<p class="muted">${esc(s.generatedAt)} · up ${esc(s.uptimeSeconds)} s · reloads every ${REFRESH_SECONDS} s · <a href="/status">JSON</a> · <a href="/metrics">metrics</a></p>
${s.draining ? '<p class="banner">Draining: no new connections; live tunnels continue.</p>' : ''}
<h2>Totals</h2>
<table class="totals"><tr><th>open tunnels</th><th>backends up</th><th>draining</th><th>down</th><th>upgrades ok</th><th>upgrades failed</th><th>calls moved</th><th>errors</th></tr>
<tr id="totals"><td class="n">${t.tunnels}</td><td class="n">${t.backends.up}</td><td class="n">${t.backends.draining}</td><td class="n">${t.backends.down}</td><td class="n">${t.upgradesOk}</td><td class="n">${t.upgradesFailed}</td><td class="n">${t.callsMoved ?? '—'}</td><td class="n">${t.errors}</td></tr></table>
<h2>Pools and backends</h2>
<table id="backends"><tr><th>pool</th><th>backend</th><th>state</th><th>tunnels</th><th>active</th><th>last probe</th><th>actions</th></tr>
${rows.join('\n')}
</table>
<h2>Recent error codes</h2>
${recent}
</body></html>
`;
}
