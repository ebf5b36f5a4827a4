#!/usr/bin/env node
// Runs every benchmark in this folder, one after another (they measure; running them together
// would measure each other). Each prints its own figures and ratios against a same-run baseline.
// Usage: npm run bench [-- name-filter [options passed to each benchmark, e.g. --quick]]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('.', import.meta.url));
const filter = process.argv[2]?.startsWith('--') ? '' : (process.argv[2] ?? '');
const passOn = process.argv.slice(2).filter((a) => a.startsWith('--'));
const benches = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.js') && f.includes(filter))
  .sort();
if (benches.length === 0) {
  console.error(`no benchmark matches "${filter}"`);
  process.exit(1);
}
let failed = 0;
for (const file of benches) {
  console.log(`\n=== ${file}`);
  const r = spawnSync(process.execPath, [`${dir}${file}`, ...passOn], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`=== ${file} failed (exit ${r.status ?? r.signal})`);
  }
}
process.exit(failed === 0 ? 0 : 1);
