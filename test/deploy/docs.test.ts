import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  RUNTIME_ERRORS,
  defineEnv,
  env,
  envTableRows,
  type EnvSchema,
  type EnvTableRow,
  type ErrorCatalogue,
} from '@callgate/runtime';
import { describe, expect, it } from 'vitest';
import { PROXY_ENV } from '../../proxy/src/config.js';
import { PROXY_ERRORS } from '../../proxy/src/errors.js';
import { AGENT_ERRORS } from '@callgate/agent';
import { AUDIO_ERRORS } from '@callgate/audio';
import { PROTO_ERRORS } from '@callgate/protocol';
import { SIM_ERRORS } from '@callgate/simulator';
import { MEDIA_ENV } from '../../workers/media/src/config.js';
import { MEDIA_ERRORS } from '../../workers/media/src/errors.js';
import { TEST_AGENT_ENV } from '../../workers/test-agent/src/config.js';
import { TEST_AGENT_ERRORS } from '../../workers/test-agent/src/errors.js';

// docs/errors.md and docs/operations.md are what an operator reads at 3 a.m.; a code or metric that
// exists in the sources but not there (or the other way round) sends them looking for something
// that is not in the logs. These checks read the sources as text, so they need no build and see
// every workspace, including ones whose code is not exported.

const root = new URL('../../', import.meta.url).pathname;
const read = (path: string): string => readFileSync(join(root, path), 'utf8');

/** The `src` trees of every workspace: packages/*, proxy, workers/*. */
function sourceRoots(): string[] {
  const roots = ['proxy/src'];
  for (const parent of ['packages', 'workers']) {
    for (const name of readdirSync(join(root, parent))) {
      const src = join(parent, name, 'src');
      if (isDirectory(src)) roots.push(src);
    }
  }
  return roots;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(join(root, path)).isDirectory();
  } catch {
    return false;
  }
}

interface SourceFile {
  path: string;
  text: string;
}

function sourceFiles(): SourceFile[] {
  const files: SourceFile[] = [];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(root, dir), { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.(?:ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
        files.push({ path, text: read(path) });
      }
    }
  };
  for (const dir of sourceRoots()) walk(dir);
  return files;
}

// ---- error codes ------------------------------------------------------------------------------

/** The areas of docs/errors.md, each a `## ` section whose title names the area. */
const AREAS = [
  'CONFIG',
  'RUNTIME',
  'PROXY',
  'PROTO',
  'AUDIO',
  'AGENT',
  'SIM',
  'MEDIA',
  'TEST_AGENT',
];
/**
 * Codes of other libraries that our sources compare against (undici, ws): not ours to document.
 * Any other code outside AREAS fails the test, so a new area cannot slip by undocumented.
 */
const FOREIGN_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH']);

const CODE = String.raw`[A-Z][A-Z0-9_]*?_ERR_[A-Z0-9_]*[A-Z0-9]`;
// A whole string literal ('X', "X" or `X`), or an object key at the start of a line (the proxy's
// ERROR_STATUS table, the simulator's hints). The plain `grep "'..._ERR_...'"` misses both
// TEST_AGENT_ERR_* (an underscore in the area) and unquoted keys.
const CODE_LITERAL = new RegExp(String.raw`(['"\x60])(${CODE})\1`, 'g');
const CODE_KEY = new RegExp(String.raw`^\s*(${CODE})\s*:`, 'gm');
// A mention of one of our codes in prose: `TEST_AGENT_ERR_X` must not also count as `AGENT_ERR_X`.
const DOC_CODE = new RegExp(String.raw`\b(?:${AREAS.join('|')})_ERR_[A-Z0-9_]*[A-Z0-9]\b`, 'g');

function areaOf(code: string): string {
  return code.slice(0, code.indexOf('_ERR_'));
}

/** Every error code in the sources, with one file that uses it (for the failure message). */
function sourceCodes(files: readonly SourceFile[]): Map<string, string> {
  const codes = new Map<string, string>();
  for (const { path, text } of files) {
    for (const m of text.matchAll(CODE_LITERAL)) if (!codes.has(m[2]!)) codes.set(m[2]!, path);
    for (const m of text.matchAll(CODE_KEY)) if (!codes.has(m[1]!)) codes.set(m[1]!, path);
  }
  return codes;
}

interface TableRow {
  /** The `## ` heading the row is under. */
  section: string;
  cells: string[];
  line: number;
}

/** Rows of every markdown table (header and separator rows included; callers filter). */
function tableRows(markdown: string): TableRow[] {
  const rows: TableRow[] = [];
  let section = '';
  markdown.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line.startsWith('## ')) section = line.slice(3);
    if (!line.startsWith('|')) return;
    const cells = line
      .replace(/^\|/, '')
      .replace(/\|$/, '')
      .split('|')
      .map((cell) => cell.trim());
    rows.push({ section, cells, line: index + 1 });
  });
  return rows;
}

/** The row whose first cell is exactly `` `name` ``, per name (a list, to catch duplicates). */
function entriesByName(markdown: string): Map<string, TableRow[]> {
  const entries = new Map<string, TableRow[]>();
  for (const row of tableRows(markdown)) {
    const m = /^`([^`]+)`$/.exec(row.cells[0] ?? '');
    if (!m) continue;
    const list = entries.get(m[1]!) ?? [];
    list.push(row);
    entries.set(m[1]!, list);
  }
  return entries;
}

// ---- error catalogues -------------------------------------------------------------------------

/**
 * Each area's catalogue (`<AREA>_ERRORS`, see ErrorCatalogue in packages/runtime/src/errors.ts),
 * checked against the table of its section in docs/errors.md. Adding an area is one line here.
 */
const CATALOGUES: Record<string, ErrorCatalogue> = {
  RUNTIME: RUNTIME_ERRORS,
  PROXY: PROXY_ERRORS,
  PROTO: PROTO_ERRORS,
  AUDIO: AUDIO_ERRORS,
  AGENT: AGENT_ERRORS,
  SIM: SIM_ERRORS,
  MEDIA: MEDIA_ERRORS,
  TEST_AGENT: TEST_AGENT_ERRORS,
};

interface DocumentedCode {
  code: string;
  line: number;
  /** `undefined`: the row says there is none; `NaN`: the cell could not be read. */
  status: number | undefined;
  /** Only read from tables with a `close code` column. */
  close: number | undefined;
  hasClose: boolean;
}

/**
 * The code rows of every table under a `## ` heading that names `area`. Tables of the shape
 * `| code | HTTP status | close code | meaning |` give both numbers (`—` for none); older tables
 * (`| code | shows as | … |`) give the first `HTTP nnn` of their `shows as` cell.
 */
function documentedCodes(markdown: string, area: string): DocumentedCode[] {
  const inArea = new RegExp(String.raw`(?:^|[^A-Z_])${area}(?:$|[^A-Z_])`);
  const found: DocumentedCode[] = [];
  let header: string[] = [];
  for (const row of tableRows(markdown)) {
    if (!inArea.test(row.section)) continue;
    if (row.cells[0] === 'code') header = row.cells.map((c) => c.toLowerCase());
    const code = /^`([A-Z0-9_]+_ERR_[A-Z0-9_]+)`$/.exec(row.cells[0] ?? '')?.[1];
    if (code === undefined) continue;
    const cell = (name: string): string | undefined => {
      const i = header.indexOf(name);
      return i === -1 ? undefined : (row.cells[i] ?? '');
    };
    const number = (text: string, digits: number): number | undefined =>
      text === '—' || text === ''
        ? undefined
        : Number(new RegExp(String.raw`^(\d{${digits}})\b`).exec(text)?.[1] ?? NaN);
    const statusCell = cell('http status');
    const closeCell = cell('close code');
    const shows = /HTTP (\d{3})/.exec(cell('shows as') ?? '')?.[1];
    found.push({
      code,
      line: row.line,
      status:
        statusCell !== undefined
          ? number(statusCell, 3)
          : shows === undefined
            ? undefined
            : Number(shows),
      close: closeCell === undefined ? undefined : number(closeCell, 4),
      hasClose: closeCell !== undefined,
    });
  }
  return found;
}

/** Where a catalogue and its docs section disagree, both ways. */
function catalogueProblems(markdown: string, area: string, catalogue: ErrorCatalogue): string[] {
  const problems: string[] = [];
  const rows = documentedCodes(markdown, area);
  const byCode = new Map(rows.map((row) => [row.code, row]));
  for (const [code, entry] of Object.entries(catalogue)) {
    const row = byCode.get(code);
    if (row === undefined) {
      problems.push(`${code} is in the ${area} catalogue but not in its section`);
      continue;
    }
    if (row.status !== entry.status) {
      problems.push(`${code} (line ${row.line}): HTTP ${row.status}, catalogue ${entry.status}`);
    }
    if (row.hasClose && row.close !== entry.close) {
      problems.push(`${code} (line ${row.line}): close ${row.close}, catalogue ${entry.close}`);
    }
  }
  for (const row of rows) {
    if (!(row.code in catalogue)) {
      problems.push(
        `${row.code} (line ${row.line}) is documented but not in the ${area} catalogue`,
      );
    }
  }
  return problems;
}

describe('docs/errors.md', () => {
  const files = sourceFiles();
  const codes = sourceCodes(files);
  const doc = read('docs/errors.md');
  const entries = entriesByName(doc);

  it('finds the codes of every area in the sources', () => {
    const areas = new Set([...codes.keys()].map(areaOf));
    for (const area of AREAS) expect(areas, `no ${area}_ERR_* code found`).toContain(area);
  });

  it('knows every code area used in the sources', () => {
    const unknown = [...codes.keys()].filter(
      (code) => !AREAS.includes(areaOf(code)) && !FOREIGN_CODES.has(code),
    );
    expect(unknown, 'add the area to AREAS and to docs/errors.md, or to FOREIGN_CODES').toEqual([]);
  });

  it('has one entry, in its area section, for every code in the sources', () => {
    const problems: string[] = [];
    for (const [code, file] of codes) {
      if (FOREIGN_CODES.has(code)) continue;
      const rows = entries.get(code) ?? [];
      if (rows.length === 0) problems.push(`${code} (used in ${file}) has no entry`);
      if (rows.length > 1) problems.push(`${code} has ${rows.length} entries`);
      const area = new RegExp(String.raw`(?:^|[^A-Z_])${areaOf(code)}(?:$|[^A-Z_])`);
      for (const row of rows) {
        if (!area.test(row.section)) {
          problems.push(`${code} (line ${row.line}) is under "## ${row.section}"`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('documents no code that is gone from the sources', () => {
    const mentioned = new Set(doc.match(DOC_CODE) ?? []);
    const stale = [...mentioned].filter((code) => !codes.has(code));
    expect(stale, 'codes in docs/errors.md that no source file uses').toEqual([]);
  });

  it.each(Object.entries(CATALOGUES))(
    'gives every %s code the HTTP status and close code of its catalogue, and no more codes',
    (area, catalogue) => {
      expect(catalogueProblems(doc, area, catalogue)).toEqual([]);
    },
  );
});

// ---- metrics ----------------------------------------------------------------------------------

/** StreamServer names its series `${prefix}_…`; these are the prefixes the two workers give it. */
const STREAM_SERVER_PREFIXES = ['media', 'test_agent'];
const METRIC_CLASSES = {
  Counter: 'counter',
  Gauge: 'gauge',
  Histogram: 'histogram',
  Summary: 'summary',
};
const METRIC_NEW = /\bnew\s+(Counter|Gauge|Histogram|Summary)\s*(?:<[^>]*>)?\s*\(\s*\{/g;
const METRIC_NAME = /(?:^|[\s,{])name\s*:\s*(['"`])((?:(?!\1)[^\n])*)\1/;
// Series the docs may name that are derived from a histogram or summary.
const DERIVED_SUFFIXES = ['_bucket', '_sum', '_count'];

interface MetricDef {
  name: string;
  type: string;
  file: string;
}

/**
 * The text of the object literal whose `{` is at `start`. Braces inside '…' and "…" strings are
 * skipped; template literals are read as code, where `${…}` is balanced anyway.
 */
function objectLiteral(text: string, start: number): string {
  let depth = 0;
  let quote: string | undefined;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (quote !== undefined) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === '{') {
      depth++;
    } else if (c === '}' && --depth === 0) {
      return text.slice(start, i + 1);
    }
  }
  throw new Error(`unbalanced object literal at offset ${start}`);
}

/** Every metric constructed in the sources, template prefixes expanded. */
function sourceMetrics(files: readonly SourceFile[]): { metrics: MetricDef[]; templated: number } {
  const metrics: MetricDef[] = [];
  let templated = 0;
  for (const { path, text } of files) {
    for (const m of text.matchAll(METRIC_NEW)) {
      const body = objectLiteral(text, m.index + m[0].length - 1);
      const name = METRIC_NAME.exec(body);
      if (!name) throw new Error(`${path}: new ${m[1]}({...}) without a literal name`);
      const type = METRIC_CLASSES[m[1] as keyof typeof METRIC_CLASSES];
      const raw = name[2]!;
      if (raw.includes('${')) {
        templated++;
        for (const prefix of STREAM_SERVER_PREFIXES) {
          metrics.push({ name: raw.replace(/\$\{[^}]*\}/g, prefix), type, file: path });
        }
      } else {
        metrics.push({ name: raw, type, file: path });
      }
    }
  }
  return { metrics, templated };
}

describe('docs/operations.md', () => {
  const { metrics, templated } = sourceMetrics(sourceFiles());
  const doc = read('docs/operations.md');
  const entries = entriesByName(doc);

  it('finds the metrics of the proxy, the StreamServer and both workers', () => {
    expect(templated, 'StreamServer `${prefix}_…` names').toBeGreaterThan(0);
    const prefixes = new Set(metrics.map((m) => /^(proxy|media|test_agent)_/.exec(m.name)?.[1]));
    expect([...prefixes].sort()).toEqual(['media', 'proxy', 'test_agent']);
    for (const m of metrics) expect(m.name, m.file).toMatch(/^[a-z_][a-z0-9_]*$/);
  });

  it('has a row with the right type for every metric in the sources', () => {
    const problems: string[] = [];
    for (const { name, type, file } of metrics) {
      const rows = entries.get(name) ?? [];
      if (rows.length === 0) problems.push(`${name} (${type}, ${file}) has no row`);
      if (rows.length > 1) problems.push(`${name} has ${rows.length} rows`);
      for (const row of rows) {
        if (row.cells[1] !== type) {
          problems.push(`${name} (line ${row.line}) says "${row.cells[1]}", the source a ${type}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it('names no metric that is gone from the sources', () => {
    const known = new Set(metrics.map((m) => m.name));
    const histograms = new Set(
      metrics.filter((m) => m.type === 'histogram' || m.type === 'summary').map((m) => m.name),
    );
    const exists = (name: string): boolean =>
      known.has(name) ||
      DERIVED_SUFFIXES.some((s) => name.endsWith(s) && histograms.has(name.slice(0, -s.length)));
    const mentioned = (text: string): string[] =>
      text.match(/\b(?:proxy|media|test_agent)_[a-z0-9_]*[a-z0-9]\b/g) ?? [];
    const stale = [...new Set([...mentioned(doc), ...mentioned(read('docs/errors.md'))])].filter(
      (name) => !exists(name),
    );
    expect(stale, 'metric names in the docs that no source registers').toEqual([]);
  });
});

// Each process declares its environment in one table (name, parser, default, line); the README
// table under its heading must say the same, row for row: one variable a row, the same default
// cell and the same line. Order is the README's own (grouped for a reader), not the table's.

const ENV_TABLES: [heading: string, schema: EnvSchema][] = [
  ['### Proxy (`proxy/`)', PROXY_ENV],
  ['### Media worker (`workers/media/`)', MEDIA_ENV],
  ['### Test-agent worker (`workers/test-agent/`)', TEST_AGENT_ENV],
];

/** The variable rows of the README table under `heading`, in the README's order. */
function readmeEnvRows(readme: string, heading: string): EnvTableRow[] {
  const start = readme.indexOf(`\n${heading}\n`);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const section = readme.slice(start + heading.length + 2);
  const end = section.search(/\n#{2,3} /);
  const rows: EnvTableRow[] = [];
  for (const line of section.slice(0, end === -1 ? undefined : end).split('\n')) {
    if (!line.startsWith('| `')) continue;
    const cells = line.split(' | ');
    rows.push({
      name: cells[0]!.replace(/^\| /, ''),
      shown: cells[1]!.trim(),
      doc: cells
        .slice(2)
        .join(' | ')
        .replace(/\s*\|$/, '')
        .trim(),
    });
  }
  return rows;
}

/** What differs between a README table and a schema, both ways, as readable lines. */
function envTableProblems(rows: readonly EnvTableRow[], schema: EnvSchema): string[] {
  const problems: string[] = [];
  const declared = envTableRows(schema);
  const byName = new Map(declared.map((d) => [`\`${d.name}\``, d]));
  const seen = new Set<string>();
  for (const row of rows) {
    const want = byName.get(row.name);
    if (seen.has(row.name)) problems.push(`${row.name}: listed twice in the README`);
    seen.add(row.name);
    if (want === undefined) {
      problems.push(`${row.name}: in the README but not in the table`);
      continue;
    }
    if (row.shown !== want.shown) {
      problems.push(`${row.name}: README default ${row.shown}, table ${want.shown}`);
    }
    if (row.doc !== want.doc) {
      problems.push(
        `${row.name}: README line ${JSON.stringify(row.doc)}, table ${JSON.stringify(want.doc)}`,
      );
    }
  }
  for (const name of byName.keys()) {
    if (!seen.has(name)) problems.push(`${name}: in the table but not in the README`);
  }
  return problems;
}

describe('README environment tables', () => {
  const readme = read('README.md');

  it.each(ENV_TABLES)(
    '%s lists every variable of its table, with its default and line',
    (heading, schema) => {
      const rows = readmeEnvRows(readme, heading);
      expect(rows.length).toBeGreaterThan(10);
      expect(envTableProblems(rows, schema)).toEqual([]);
    },
  );
});

describe('the scanners', () => {
  it('read codes from literals and table keys, not from prose', () => {
    const codes = sourceCodes([
      {
        path: 'x.ts',
        text: [
          "throw new E('AGENT_ERR_START');",
          'const T = {',
          '  PROXY_ERR_NO_ROUTE: 404,',
          '};',
          "type C = 'TEST_AGENT_ERR_MAX_DURATION' | `SIM_ERR_USAGE`;",
          '// like fastify FST_ERR_REOPENED_CLOSE_SERVER',
        ].join('\n'),
      },
    ]);
    expect([...codes.keys()].sort()).toEqual([
      'AGENT_ERR_START',
      'PROXY_ERR_NO_ROUTE',
      'SIM_ERR_USAGE',
      'TEST_AGENT_ERR_MAX_DURATION',
    ]);
    expect(areaOf('TEST_AGENT_ERR_MAX_DURATION')).toBe('TEST_AGENT');
    expect('see TEST_AGENT_ERR_AGENT and AGENT_ERR_LOAD'.match(DOC_CODE)).toEqual([
      'TEST_AGENT_ERR_AGENT',
      'AGENT_ERR_LOAD',
    ]);
  });

  it('read metric names and types, expanding template prefixes', () => {
    const { metrics, templated } = sourceMetrics([
      {
        path: 'x.ts',
        text: [
          'const p = name.replace(/-/g, "_");',
          'new Counter<"code">({ name: `${p}_errors_total`, help: "h", labelNames: ["code"] });',
          "new Histogram({ help: 'a } in help', name: 'proxy_x_seconds', buckets: [1, 2] });",
          'run({ name: "proxy", service });',
        ].join('\n'),
      },
    ]);
    expect(templated).toBe(1);
    expect(metrics.map(({ name, type }) => `${name} ${type}`)).toEqual([
      'media_errors_total counter',
      'test_agent_errors_total counter',
      'proxy_x_seconds histogram',
    ]);
  });

  it('compare a catalogue with its table both ways', () => {
    const doc = [
      '## X and RUNTIME',
      '',
      '| code | HTTP status | close code | meaning |',
      '| --- | --- | --- | --- |',
      '| `RUNTIME_ERR_A` | 503 | — | a |',
      '| `RUNTIME_ERR_B` | — | 1013 | b |',
      '| `RUNTIME_ERR_C` | — | — | c |',
      '## PROXY',
      '',
      '| code | shows as | meaning |',
      '| --- | --- | --- |',
      '| `PROXY_ERR_A` | HTTP 400 | a |',
    ].join('\n');
    expect(
      catalogueProblems(doc, 'RUNTIME', {
        RUNTIME_ERR_A: { status: 503 },
        RUNTIME_ERR_B: { close: 1013 },
        RUNTIME_ERR_C: {},
      }),
    ).toEqual([]);
    expect(
      catalogueProblems(doc, 'RUNTIME', {
        RUNTIME_ERR_A: { status: 500 },
        RUNTIME_ERR_B: {},
        RUNTIME_ERR_D: {},
      }),
    ).toEqual([
      'RUNTIME_ERR_A (line 5): HTTP 503, catalogue 500',
      'RUNTIME_ERR_B (line 6): close 1013, catalogue undefined',
      'RUNTIME_ERR_D is in the RUNTIME catalogue but not in its section',
      'RUNTIME_ERR_C (line 7) is documented but not in the RUNTIME catalogue',
    ]);
    expect(catalogueProblems(doc, 'PROXY', { PROXY_ERR_A: { status: 400 } })).toEqual([]);
    expect(catalogueProblems(doc, 'PROXY', { PROXY_ERR_A: {} })).toEqual([
      'PROXY_ERR_A (line 12): HTTP 400, catalogue undefined',
    ]);
  });

  it('compare a README environment table with its schema both ways', () => {
    const schema = defineEnv({
      host: env.string('HOST', '0.0.0.0', 'listen address'),
      port: env.port('PORT', 8080, 'listen port'),
      agent: env.oneOf('AGENT', ['parrot', 'echo'], 'parrot', 'built-in agent'),
      agentModule: env.optionalString('AGENT_MODULE', 'your own agent'),
    });
    const readme = [
      '### P',
      '',
      '| variable | default | meaning |',
      '|---|---|---|',
      '| `PORT` | `8081` | listen port |',
      '| `HOST` | `0.0.0.0` | listen address, a | in it |',
      '| `AGENT`, `AGENT_MODULE` | `parrot` | built-in agent |',
      '| `GONE` | — | |',
      '',
      '## Next',
    ].join('\n');
    const rows = readmeEnvRows(`\n${readme}`, '### P');
    expect(rows.map((r) => r.name)).toEqual([
      '`PORT`',
      '`HOST`',
      '`AGENT`, `AGENT_MODULE`',
      '`GONE`',
    ]);
    expect(envTableProblems(rows, schema)).toEqual([
      '`PORT`: README default `8081`, table `8080`',
      '`HOST`: README line "listen address, a | in it", table "listen address"',
      '`AGENT`, `AGENT_MODULE`: in the README but not in the table',
      '`GONE`: in the README but not in the table',
      '`AGENT`: in the table but not in the README',
      '`AGENT_MODULE`: in the table but not in the README',
    ]);
  });

  it('reads markdown table rows under their section', () => {
    const rows = entriesByName(
      '## PROXY\n\n| code | x |\n| --- | --- |\n| `PROXY_ERR_A` | HTTP 400 |\n',
    );
    expect(rows.get('PROXY_ERR_A')).toEqual([
      { section: 'PROXY', cells: ['`PROXY_ERR_A`', 'HTTP 400'], line: 5 },
    ]);
  });
});
