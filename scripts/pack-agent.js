#!/usr/bin/env node
// `npm run pack:agent`: packs @callgate/agent into one self-contained tarball, for agents written
// outside this repository:
//
//   npm run pack:agent                       # writes callgate-agent-<version>.tgz to the repo root
//   node scripts/pack-agent.js --out /some/dir
//   cd ../my-agent && npm install /path/to/callgate-agent-<version>.tgz
//
// The agent package imports two other workspaces (@callgate/audio, @callgate/runtime), which are
// not published, and @callgate/runtime needs `ws` and `prom-client`. A plain `npm pack -w
// packages/agent` leaves all of them out (npm does not bundle workspace links), so the tarball would
// not install. This script stages the package with those dependencies copied into its own
// node_modules and listed in `bundleDependencies`, then runs `npm pack` there: the tarball installs
// with `npm install <tgz> --offline`, and its .d.ts files resolve every type they name.
//
// It packs what `npm run build` produced; it does not build.
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const readJson = (path) => JSON.parse(readFileSync(path, 'utf8'));

/** The workspaces the agent package imports, by package name, and where they live. */
const WORKSPACES = {
  '@callgate/agent': 'packages/agent',
  '@callgate/audio': 'packages/audio',
  '@callgate/runtime': 'packages/runtime',
};

function parseArgs(argv) {
  let out = repoRoot;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' && argv[i + 1]) out = resolve(argv[++i]);
    else if (argv[i] === '--help') {
      console.log('usage: node scripts/pack-agent.js [--out DIR]   (run npm run build first)');
      process.exit(0);
    } else {
      console.error(`pack-agent: unknown argument ${argv[i]}`);
      process.exit(2);
    }
  }
  return { out };
}

/** Copies a workspace's shippable files (package.json, dist without build info, src) to `to`. */
function copyWorkspace(dir, to, manifest) {
  const from = join(repoRoot, dir);
  if (
    !existsSync(join(from, 'dist', 'index.js')) ||
    !existsSync(join(from, 'dist', 'index.d.ts'))
  ) {
    throw new Error(`${dir}/dist is not built: run \`npm run build\` first`);
  }
  mkdirSync(to, { recursive: true });
  const skip = (src) => src.endsWith('.tsbuildinfo');
  cpSync(join(from, 'dist'), join(to, 'dist'), { recursive: true, filter: (src) => !skip(src) });
  // The source maps point at ../src: ship it so stack traces and debuggers show TypeScript.
  cpSync(join(from, 'src'), join(to, 'src'), { recursive: true });
  for (const extra of ['README.md', 'LICENSE']) {
    if (existsSync(join(from, extra))) cpSync(join(from, extra), join(to, extra));
  }
  writeFileSync(join(to, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Node's lookup: the nearest node_modules/<name> from `fromDir` upwards, inside the repository. */
function findPackageDir(name, fromDir) {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === repoRoot || dirname(dir) === dir) break;
  }
  throw new Error(
    `cannot find ${name} (needed from ${relative(repoRoot, fromDir) || '.'}): run npm ci`,
  );
}

/**
 * Node's own types are the consumer's: a second copy of @types/node in one program declares every
 * global twice. Bundled type packages that depend on it get it as an optional peer instead.
 */
const CONSUMER_TYPES = new Set(['@types/node']);

/**
 * Copies the third-party packages `deps` (and theirs, transitively) into the staged package's
 * node_modules, keeping the layout they have in the repository's node_modules.
 */
function copyThirdParty(deps, fromDir, stagedModules, copied) {
  for (const name of Object.keys(deps)) {
    if (name in WORKSPACES || CONSUMER_TYPES.has(name)) continue;
    const dir = findPackageDir(name, fromDir);
    if (copied.has(dir)) continue;
    copied.add(dir);
    const rel = relative(join(repoRoot, 'node_modules'), dir);
    if (rel.startsWith('..')) throw new Error(`${name} is not under node_modules/: ${dir}`);
    const to = join(stagedModules, rel);
    if (!existsSync(to)) cpSync(dir, to, { recursive: true });
    const manifest = readJson(join(dir, 'package.json'));
    const peers = Object.keys(manifest.dependencies ?? {}).filter((d) => CONSUMER_TYPES.has(d));
    if (peers.length > 0) {
      for (const peer of peers) {
        manifest.peerDependencies = {
          ...manifest.peerDependencies,
          [peer]: manifest.dependencies[peer],
        };
        manifest.peerDependenciesMeta = {
          ...manifest.peerDependenciesMeta,
          [peer]: { optional: true },
        };
        delete manifest.dependencies[peer];
      }
      writeFileSync(join(to, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    }
    copyThirdParty(
      { ...manifest.dependencies, ...manifest.optionalDependencies },
      dir,
      stagedModules,
      copied,
    );
  }
}

/**
 * The DefinitelyTyped packages of the bundled workspaces' untyped dependencies (`ws`): their .d.ts
 * files import them, so a consumer type-checking without skipLibCheck needs them.
 */
function typePackagesOf(deps, fromDir) {
  const types = {};
  for (const name of Object.keys(deps)) {
    if (name in WORKSPACES) continue;
    const manifest = readJson(join(findPackageDir(name, fromDir), 'package.json'));
    if (manifest.types || manifest.typings) continue;
    const typesName = `@types/${name.replace(/^@/, '').replace('/', '__')}`;
    try {
      const dir = findPackageDir(typesName, fromDir);
      types[typesName] = readJson(join(dir, 'package.json')).version;
    } catch {
      // No DefinitelyTyped package in the repository: the .d.ts files do not name this module.
    }
  }
  return types;
}

export function packAgent({ out }) {
  const agentManifest = readJson(join(repoRoot, WORKSPACES['@callgate/agent'], 'package.json'));
  const bundled = Object.keys(agentManifest.dependencies ?? {}).filter((d) => d in WORKSPACES);
  const stage = mkdtempSync(join(tmpdir(), 'callgate-pack-agent-'));
  try {
    const modules = join(stage, 'node_modules');
    const copied = new Set();
    const dependencies = { ...agentManifest.dependencies };
    for (const name of [...bundled]) {
      const dir = WORKSPACES[name];
      const manifest = readJson(join(repoRoot, dir, 'package.json'));
      dependencies[name] = manifest.version;
      copyWorkspace(dir, join(modules, ...name.split('/')), manifest);
      copyThirdParty(manifest.dependencies ?? {}, join(repoRoot, dir), modules, copied);
      const types = typePackagesOf(manifest.dependencies ?? {}, join(repoRoot, dir));
      Object.assign(dependencies, types);
      copyThirdParty(types, join(repoRoot, dir), modules, copied);
      bundled.push(...Object.keys(types).filter((t) => !bundled.includes(t)));
    }
    const rest = { ...agentManifest };
    delete rest.private;
    const manifest = {
      ...rest,
      dependencies,
      bundleDependencies: bundled,
      // Node's types come from the agent's own project (see CONSUMER_TYPES).
      peerDependencies: { '@types/node': '>=20' },
      peerDependenciesMeta: { '@types/node': { optional: true } },
    };
    copyWorkspace(WORKSPACES['@callgate/agent'], stage, manifest);

    mkdirSync(out, { recursive: true });
    const output = execFileSync(
      'npm',
      ['pack', '--json', '--pack-destination', out, '--ignore-scripts'],
      { cwd: stage, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const [result] = JSON.parse(output);
    return { tarball: join(out, result.filename), files: result.files.length, size: result.size };
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const { tarball, files, size } = packAgent(parseArgs(process.argv.slice(2)));
    console.error(`pack-agent: ${files} files, ${(size / 1024).toFixed(0)} kB`);
    console.log(tarball.split(sep).join('/'));
  } catch (err) {
    console.error(`pack-agent: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  }
}
