import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { envTableRows } from '@callgate/runtime';
import { PROXY_ENV } from '../../proxy/src/config.js';
import { MEDIA_ENV } from '../../workers/media/src/config.js';
import { TEST_AGENT_ENV } from '../../workers/test-agent/src/config.js';

// No Docker engine or cluster runs in CI, so the deployment files are checked by reading them:
// the things that, if wrong, drop calls in production (scaling, DNS membership, drain deadlines).

const root = new URL('../../', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(root, p), 'utf8');

type Env = Record<string, string>;
interface ComposeService {
  command?: string[];
  environment?: Env;
  ports?: string[];
  deploy?: { replicas?: number };
  stop_grace_period?: string;
  container_name?: string;
  healthcheck?: { test: string[] };
}

function durationMs(text: string): number {
  const m = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!m) throw new Error(`unreadable duration ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}

// The proxy's memory per tunnel and a media worker's per call depend on these flags
// (test/bench/README.md): every place that launches either passes them.
const NODE_FLAGS = ['--max-semi-space-size=1'];

describe('the proxy launch', () => {
  it('passes the same Node flags wherever a media worker is started', () => {
    const line = `node ${NODE_FLAGS.join(' ')} workers/media/dist/main.js`;
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts['start:media']).toBe(line);
    expect(read('scripts/start-stack.js')).toContain(`command: '${line}'`);
    expect(read('deploy/k8s/media.yaml')).toContain(
      `command: [${['node', ...NODE_FLAGS, 'workers/media/dist/main.js'].map((a) => `'${a}'`).join(', ')}]`,
    );
  });

  it('passes the same Node flags wherever the proxy is started', () => {
    const line = `node ${NODE_FLAGS.join(' ')} proxy/dist/main.js`;
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts['start:proxy']).toBe(line);
    expect(read('scripts/start-stack.js')).toContain(`command: '${line}'`);
    expect(read('Dockerfile')).toContain(
      `CMD [${['node', ...NODE_FLAGS, 'proxy/dist/main.js'].map((a) => `"${a}"`).join(', ')}]`,
    );
    const k8s = read('deploy/k8s/proxy.yaml');
    expect(k8s).toContain(
      `command: [${['node', ...NODE_FLAGS, 'proxy/dist/main.js'].map((a) => `'${a}'`).join(', ')}]`,
    );
    expect(read('test/bench/proxy.bench.js')).toContain(
      `const PROXY_NODE_FLAGS = [${NODE_FLAGS.map((a) => `'${a}'`).join(', ')}];`,
    );
  });
});

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as {
    services: Record<string, ComposeService>;
  };
  const { proxy, media, 'test-agent': testAgent } = compose.services;

  it('runs the three processes from the built image', () => {
    expect(proxy?.command).toEqual(['node', ...NODE_FLAGS, 'proxy/dist/main.js']);
    expect(media?.command).toEqual(['node', ...NODE_FLAGS, 'workers/media/dist/main.js']);
    expect(testAgent?.command).toEqual(['node', 'workers/test-agent/dist/main.js']);
  });

  it('lets media workers scale: no published port, no fixed container name', () => {
    expect(media?.ports).toBeUndefined();
    expect(media?.container_name).toBeUndefined();
    expect(media?.deploy?.replicas).toBeGreaterThanOrEqual(2);
    expect(testAgent?.ports).toBeUndefined();
  });

  it('points the proxy at the workers by service name (re-resolved DNS membership)', () => {
    const env = proxy!.environment!;
    expect(env.MEDIA_BACKENDS).toBe(`media:${media!.environment!.PORT}`);
    expect(env.TEST_AGENT_BACKENDS).toBe(`test-agent:${testAgent!.environment!.PORT}`);
    expect(Number(env.BACKEND_RESOLVE_INTERVAL_MS)).toBeGreaterThan(0);
    expect(media!.environment!.HOST).toBe('0.0.0.0');
  });

  it('gives live calls their whole drain deadline before a stop turns into a kill', () => {
    for (const svc of [proxy!, media!]) {
      expect(durationMs(svc.stop_grace_period!)).toBeGreaterThan(
        Number(svc.environment!.DRAIN_TIMEOUT_MS),
      );
    }
  });

  it('health-checks each service on its readiness endpoint', () => {
    expect(proxy!.healthcheck!.test.join(' ')).toContain(
      `:${proxy!.environment!.ADMIN_PORT}/readyz`,
    );
    expect(media!.healthcheck!.test.join(' ')).toContain(`:${media!.environment!.PORT}/readyz`);
  });

  it('requires the shared secrets instead of silently generating per-container ones', () => {
    expect(media!.environment!.CALL_TOKEN_SECRET).toMatch(/^\$\{CALL_TOKEN_SECRET:\?/);
    expect(testAgent!.environment!.TEST_AGENT_SECRET).toMatch(/^\$\{TEST_AGENT_SECRET:\?/);
  });
});

describe('Kubernetes manifests', () => {
  const docs = readdirSync(join(root, 'deploy/k8s'))
    .filter((f) => f.endsWith('.yaml'))
    .flatMap((f) => parseAllDocuments(read(`deploy/k8s/${f}`)).map((d) => d.toJS() as K8s));
  interface K8s {
    kind: string;
    metadata: { name: string };
    spec: Record<string, unknown> & {
      template?: { spec: { terminationGracePeriodSeconds?: number; containers: Container[] } };
    };
  }
  interface Container {
    command: string[];
    env: { name: string; value?: string }[];
    readinessProbe?: { httpGet: { path: string } };
  }
  const find = (kind: string, name: string) => {
    const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
    if (!d) throw new Error(`no ${kind}/${name}`);
    return d;
  };
  const envOf = (c: Container) => Object.fromEntries(c.env.map((e) => [e.name, e.value ?? '']));

  it('has a Deployment per role with readiness on /readyz', () => {
    for (const name of ['proxy', 'media', 'test-agent']) {
      const c = find('Deployment', name).spec.template!.spec.containers[0]!;
      expect(c.readinessProbe?.httpGet.path).toBe('/readyz');
    }
  });

  it('exposes media workers through a headless Service the proxy resolves', () => {
    const svc = find('Service', 'media');
    expect(svc.spec.clusterIP).toBe('None');
    const proxyEnv = envOf(find('Deployment', 'proxy').spec.template!.spec.containers[0]!);
    expect(proxyEnv.MEDIA_BACKENDS).toMatch(/^media\.callgate\.svc\.cluster\.local:8080$/);
  });

  it('waits for the drain deadline before killing a media worker', () => {
    const tpl = find('Deployment', 'media').spec.template!.spec;
    const env = envOf(tpl.containers[0]!);
    expect(tpl.terminationGracePeriodSeconds! * 1000).toBeGreaterThan(Number(env.DRAIN_TIMEOUT_MS));
  });

  it('autoscales media workers on active calls', () => {
    const hpa = find('HorizontalPodAutoscaler', 'media');
    expect(JSON.stringify(hpa.spec)).toContain('media_calls_active');
  });
});

describe('Dockerfile', () => {
  it('installs every workspace from the lock file', () => {
    const docker = read('Dockerfile');
    const pkg = JSON.parse(read('package.json')) as { workspaces: string[] };
    for (const ws of pkg.workspaces) expect(docker).toContain(`COPY ${ws}/package.json`);
    expect(docker).toContain('npm ci');
  });
});

describe('README', () => {
  // Every variable a process reads must be documented where users look for it. Each process reads
  // exactly the variables of its environment table (docs.test.ts also compares each row's default
  // and line).
  const readme = read('README.md');
  const names = new Set<string>();
  for (const schema of [PROXY_ENV, MEDIA_ENV, TEST_AGENT_ENV]) {
    for (const row of envTableRows(schema)) names.add(row.name);
  }

  it('finds the configuration loaders', () => {
    expect(names.size).toBeGreaterThan(10);
  });

  it.each([...names])('documents %s', (name) => {
    expect(readme).toContain(`\`${name}\``);
  });

  it('shows the two commands', () => {
    expect(readme).toContain('npm install && npm start');
    expect(readme).toContain('npm test');
  });
});

describe('README agent example', () => {
  it('is the example file, word for word, so the README never shows an agent that does not run', () => {
    const example = read('examples/agents/hello-agent.js').trimEnd();
    expect(read('README.md')).toContain(example);
  });
});
