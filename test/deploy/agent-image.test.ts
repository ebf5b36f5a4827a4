import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

// Shipping your agent in the image (README "Ship your agent"): the Dockerfile's AGENT_MODULE build
// argument, an image FROM callgate for an agent project kept elsewhere, and a compose file that
// mounts one. No Docker engine runs in CI, so these read the files; test/e2e/agent-image.e2e.test.ts
// runs the build-time agent check they contain.

const root = new URL('../../', import.meta.url).pathname;
const read = (p: string) => readFileSync(join(root, p), 'utf8');

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(dockerfile: string): string[] {
  return dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The instructions of the last stage (from its FROM on). */
function finalStage(dockerfile: string): string[] {
  const all = instructions(dockerfile);
  const from = all.map((l) => l.startsWith('FROM ')).lastIndexOf(true);
  return all.slice(from);
}

type Service = { environment?: Record<string, string>; volumes?: string[] };
const services = (file: string) =>
  (parse(read(file), { merge: true }) as { services: Record<string, Service> }).services;

describe('Dockerfile AGENT_MODULE build argument', () => {
  const docker = read('Dockerfile');
  const stage = finalStage(docker);

  it('is declared in the final stage, empty by default, and becomes the workers’ default', () => {
    expect(stage).toContain('ARG AGENT_MODULE=""');
    const arg = stage.indexOf('ARG AGENT_MODULE=""');
    const env = stage.indexOf('ENV AGENT_MODULE=${AGENT_MODULE}');
    expect(env).toBeGreaterThan(arg);
    // Set before the user switch and the CMD, so every process of the image sees it.
    expect(env).toBeLessThan(stage.findIndex((l) => l.startsWith('USER ')));
  });

  it('checks the module at build time, and only when one is given', () => {
    const check = stage.find((l) => l.startsWith('RUN ') && l.includes('loadAgent'));
    expect(check).toMatch(/^RUN if \[ -n "\$AGENT_MODULE" \]; then/);
    expect(stage.indexOf(check!)).toBeGreaterThan(
      stage.indexOf('ENV AGENT_MODULE=${AGENT_MODULE}'),
    );
  });

  it('can name the example agents: they are in the image', () => {
    expect(instructions(docker)).toContain('COPY examples examples');
    for (const m of docker.matchAll(/AGENT_MODULE=(examples\/\S+\.js)/g)) {
      expect(existsSync(join(root, m[1]!)), m[1]).toBe(true);
    }
  });

  it('is not shadowed by the compose file (which would set AGENT_MODULE for every worker)', () => {
    const { media, 'test-agent': testAgent } = services('docker-compose.yml');
    for (const svc of [media!, testAgent!]) {
      const value = svc.environment?.AGENT_MODULE;
      if (value !== undefined) expect(value).toMatch(/^\$\{AGENT_MODULE(:?-[^}]*)?\}$/);
    }
  });
});

describe('an agent project kept outside the repository', () => {
  it('gets an image FROM callgate with the agent added and made the default', () => {
    const stage = finalStage(read('examples/agents/agent.Dockerfile'));
    expect(stage[0]).toBe('FROM ${CALLGATE_IMAGE}');
    expect(stage).toContain('COPY --chown=node:node . /agent');
    expect(stage).toContain('ENV AGENT_MODULE=/agent/${AGENT_ENTRY}');
    expect(stage.some((l) => l.startsWith('RUN ') && l.includes('loadAgent'))).toBe(true);
  });

  it('or is mounted read-only into both worker kinds by the compose override', () => {
    const base = services('docker-compose.yml');
    const override = services('examples/agents/docker-compose.agent.yml');
    for (const name of ['media', 'test-agent']) {
      // Only services the base file defines: an override of a missing one would start a new one.
      expect(base[name], name).toBeDefined();
      const svc = override[name]!;
      expect(svc.volumes).toEqual([expect.stringMatching(/^\$\{AGENT_DIR:\?[^}]+\}:\/agent:ro$/)]);
      expect(svc.environment?.AGENT_MODULE).toMatch(/^\/agent\//);
    }
    expect(Object.keys(override).sort()).toEqual(['media', 'test-agent']);
  });
});

describe('README', () => {
  it('says how to ship an agent in the image', () => {
    const readme = read('README.md');
    expect(readme).toContain('--build-arg AGENT_MODULE=');
    expect(readme).toContain('examples/agents/agent.Dockerfile');
    expect(readme).toContain('examples/agents/docker-compose.agent.yml');
    expect(readme).toContain('npm run pack:agent');
  });
});
