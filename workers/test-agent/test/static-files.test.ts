import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createParrotAgent } from '@callgate/agent';
import { silentLogger } from '@callgate/runtime';
import { describe, expect, it, onTestFinished } from 'vitest';
import { StaticFiles } from '../src/static-files.js';
import { TestAgentWorker } from '../src/test-agent-worker.js';
import { testConfig, audioModulesDir } from './helpers.js';

async function startWorker(publicDir?: string): Promise<TestAgentWorker> {
  const worker = new TestAgentWorker({
    config: testConfig(),
    logger: silentLogger,
    agent: createParrotAgent(),
    audioDir: await audioModulesDir(),
    ...(publicDir === undefined ? {} : { publicDir }),
  });
  onTestFinished(() => worker.destroy());
  await worker.start();
  return worker;
}

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request with the path exactly as given: fetch() would normalize `..` and `%2e` away. */
function rawGet(
  worker: TestAgentWorker,
  path: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<RawResponse> {
  const { port } = worker.address();
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, agent: false });
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.end();
  });
}

describe('static files', () => {
  it('serves the page at /test-agent/ with a strict content security policy', async () => {
    const worker = await startWorker();
    const res = await rawGet(worker, '/test-agent/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toContain("script-src 'self'");
    expect(res.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(res.body).toContain('<script type="module" src="app.js"></script>');
  });

  it.each([
    ['index.html', 'text/html; charset=utf-8'],
    ['app.js', 'text/javascript; charset=utf-8'],
    ['capture-worklet.js', 'text/javascript; charset=utf-8'],
    ['playback-worklet.js', 'text/javascript; charset=utf-8'],
    ['audio/halfband.js', 'text/javascript; charset=utf-8'],
    ['audio/resample.js', 'text/javascript; charset=utf-8'],
    ['audio/kaiser.js', 'text/javascript; charset=utf-8'],
    ['audio/errors.js', 'text/javascript; charset=utf-8'],
    ['style.css', 'text/css; charset=utf-8'],
  ])('serves %s as %s', async (name, type) => {
    const worker = await startWorker();
    const res = await rawGet(worker, `/test-agent/${name}`);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe(type);
    expect(Number(res.headers['content-length'])).toBe(Buffer.byteLength(res.body));
    expect(res.headers.etag).toMatch(/^"[A-Za-z0-9_-]{22}"$/);
  });

  it('answers a matching If-None-Match with 304 and HEAD without a body', async () => {
    const worker = await startWorker();
    const first = await rawGet(worker, '/test-agent/app.js');
    const again = await rawGet(worker, '/test-agent/app.js', {
      'if-none-match': String(first.headers.etag),
    });
    expect(again.status).toBe(304);
    expect(again.body).toBe('');
    const head = await rawGet(worker, '/test-agent/app.js', {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe(first.headers['content-length']);
  });

  it('redirects /test-agent to /test-agent/ so relative asset paths resolve', async () => {
    const worker = await startWorker();
    const res = await rawGet(worker, '/test-agent');
    expect(res.status).toBe(308);
    expect(res.headers.location).toBe('/test-agent/');
  });

  it.each([
    '/test-agent/../package.json',
    '/test-agent/%2e%2e/package.json',
    '/test-agent/..%2fpackage.json',
    '/test-agent/..%2Fsrc%2Fmain.ts',
    '/test-agent/%2e%2e%2f%2e%2e%2fpackage.json',
    '/test-agent/....//package.json',
    '/test-agent/..\\package.json',
    '/test-agent//etc/passwd',
    '/test-agent/app.js%00.html',
    '/test-agent/app.js/',
    '/test-agent/APP.JS',
    '/test-agent/.env',
    '/test-agent/sub/app.js',
    '/test-agent/missing.js',
    '/test-agent/audio/',
    '/test-agent/audio/../package.json',
    '/test-agent/audio/%2e%2e/%2e%2e/package.json',
    '/test-agent/audio/..%2f..%2fpackage.json',
    '/test-agent/audio/index.js',
    '/test-agent/audio/wav.js',
    '/test-agent/audio/halfband.ts',
    '/test-agent/audio/halfband.js.map',
    '/test-agent/audio//halfband.js',
    '/test-agent/audio%2fhalfband.js',
  ])('answers 404 to %s', async (path) => {
    const worker = await startWorker();
    const res = await rawGet(worker, path);
    expect(res.status).toBe(404);
    expect(res.body).not.toContain('"name"');
    expect(res.body).not.toContain('import ');
  });

  it('ignores the query string: it is never part of the file name', async () => {
    const worker = await startWorker();
    const res = await rawGet(worker, '/test-agent/index.html?x=../../package.json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
  });

  it('answers other methods on assets with 405', async () => {
    const worker = await startWorker();
    const res = await rawGet(worker, '/test-agent/app.js', {}, 'POST');
    expect(res.status).toBe(405);
    expect(res.headers.allow).toBe('GET, HEAD');
  });

  it('serves only plain files of known types from the folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'test-agent-public-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'index.html'), '<!doctype html>');
    await writeFile(join(dir, 'app.js'), 'export {};');
    await writeFile(join(dir, '.secret.js'), 'x');
    await writeFile(join(dir, 'notes.txt'), 'x');
    await writeFile(join(dir, 'Upper.js'), 'x');
    const files = new StaticFiles(dir, await audioModulesDir());
    await files.load();
    expect(files.names.filter((n) => !n.startsWith('audio/'))).toEqual(['app.js', 'index.html']);
  });

  it("serves @callgate/audio's resampler and only the modules it imports, as the page imports them", async () => {
    const worker = await startWorker();
    const res = await rawGet(worker, '/test-agent/audio/halfband.js');
    expect(res.body).toContain('export function createResampler');
    for (const worklet of ['capture-worklet.js', 'playback-worklet.js']) {
      const { body } = await rawGet(worker, `/test-agent/${worklet}`);
      expect(body).toContain("import { createResampler } from './audio/halfband.js';");
    }
    const dir = await mkdtemp(join(tmpdir(), 'test-agent-audio-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'halfband.js'), "import { a } from './a.js';\nexport const b = a;\n");
    await writeFile(join(dir, 'a.js'), "export { c as a } from './c.js';\n");
    await writeFile(join(dir, 'c.js'), 'export const c = 1;\n');
    await writeFile(join(dir, 'unused.js'), 'export {};\n');
    const files = new StaticFiles(undefined, dir);
    await files.load();
    expect(files.names.filter((n) => n.startsWith('audio/'))).toEqual([
      'audio/a.js',
      'audio/c.js',
      'audio/halfband.js',
    ]);
  });

  it.each([
    ['imports a Node module', "import { open } from 'node:fs/promises';\n"],
    ['imports a package', "import { x } from '@callgate/runtime';\n"],
    ['imports outside its folder', "import { x } from '../x.js';\n"],
    ['imports a missing module', "import { x } from './missing.js';\n"],
  ])('fails to start with TEST_AGENT_ERR_STATIC when an audio module %s', async (_name, text) => {
    const dir = await mkdtemp(join(tmpdir(), 'test-agent-audio-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'halfband.js'), text);
    await expect(new StaticFiles(undefined, dir).load()).rejects.toMatchObject({
      code: 'TEST_AGENT_ERR_STATIC',
    });
    await expect(new StaticFiles(undefined, join(dir, 'missing')).load()).rejects.toMatchObject({
      code: 'TEST_AGENT_ERR_STATIC',
    });
  });

  it('fails to start with TEST_AGENT_ERR_STATIC when the folder has no index.html', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'test-agent-public-'));
    onTestFinished(() => rm(dir, { recursive: true, force: true }));
    await expect(startWorker(dir)).rejects.toMatchObject({ code: 'TEST_AGENT_ERR_STATIC' });
    await expect(startWorker(join(dir, 'missing'))).rejects.toMatchObject({
      code: 'TEST_AGENT_ERR_STATIC',
    });
  });
});
