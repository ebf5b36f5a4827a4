import { describe, expect, it } from 'vitest';
import { isLoopback, tokenMatches } from '../src/admin.js';
import type { ProxyStatus } from '../src/status.js';
import { eventually, openWs, startProxy, startWsBackend } from './helpers/index.js';

const TOKEN = 'admin-token-0123456789abcdef';

async function status(adminUrl: string): Promise<ProxyStatus> {
  const res = await fetch(`${adminUrl}/status`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/json');
  return (await res.json()) as ProxyStatus;
}

function post(url: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, { method: 'POST', headers, redirect: 'manual' });
}

describe('admin status page', () => {
  it('shows every pool and backend with state, tunnels, last probe and totals, as HTML and JSON', async () => {
    const a = await startWsBackend({ name: 'a' });
    const b = await startWsBackend({ name: 'b', readyStatus: 503 });
    const t = await startProxy({
      MEDIA_BACKENDS: `${a.hostPort},${b.hostPort}`,
      HEALTH_CHECK_INTERVAL_MS: '50',
    });
    await eventually(() => t.proxy.backends('media').every((x) => x.active === 0));
    await eventually(async () =>
      (await status(t.adminUrl)).pools[0]!.backends.every((x) => x.lastProbe),
    );
    const s = await status(t.adminUrl);
    expect(s.service).toBe('proxy');
    expect(s.pools.map((p) => p.name)).toEqual(['media', 'test-agent']);
    const [ba, bb] = [a.hostPort, b.hostPort].map((id) =>
      s.pools[0]!.backends.find((x) => x.id === id)!,
    );
    expect(ba).toMatchObject({ state: 'up', drainedByOperator: false, tunnels: 0 });
    expect(ba!.lastProbe).toMatchObject({ result: 'ready', detail: '200' });
    expect(ba!.lastProbe!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(bb).toMatchObject({
      state: 'draining',
      lastProbe: { result: 'draining', detail: '503' },
    });
    expect(s.totals.backends).toEqual({ up: 1, draining: 1, down: 0 });
    // No such metric in this build yet: shown as unknown, not 0.
    expect(s.totals.callsMoved === null || typeof s.totals.callsMoved === 'number').toBe(true);

    // A refused upgrade shows in the recent error codes and the totals.
    const refused = await fetch(`${t.httpUrl}/nowhere`);
    expect(refused.status).toBe(404);
    const after = await status(t.adminUrl);
    expect(after.recentErrors[0]).toMatchObject({ code: 'PROXY_ERR_NO_ROUTE', count: 1 });
    expect(after.errorTotals.PROXY_ERR_NO_ROUTE).toBe(1);

    const page = await fetch(`${t.adminUrl}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
    const html = await page.text();
    expect(html).toMatch(/<meta http-equiv="refresh" content="\d+">/);
    expect(html).not.toContain('<script');
    expect(html).toContain(`data-backend="${a.hostPort}" data-state="up"`);
    expect(html).toContain(`data-backend="${b.hostPort}" data-state="draining"`);
    expect(html).toContain('PROXY_ERR_NO_ROUTE');
    expect(html).toContain(`action="/backends/media/${encodeURIComponent(a.hostPort)}/drain"`);
  });

  it('drains a backend for the operator: no new tunnels, no probe undoes it, undrain brings it back', async () => {
    const a = await startWsBackend({ name: 'a' });
    const b = await startWsBackend({ name: 'b' });
    const t = await startProxy({
      MEDIA_BACKENDS: `${a.hostPort},${b.hostPort}`,
      HEALTH_CHECK_INTERVAL_MS: '50',
    });
    const res = await post(`${t.adminUrl}/backends/media/${a.hostPort}/drain`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      pool: 'media',
      backend: a.hostPort,
      action: 'drain',
      changed: true,
    });
    const drainedAt = Date.now();
    // Probes keep saying 200; the backend stays drained.
    await eventually(async () => {
      const probe = (await status(t.adminUrl)).pools[0]!.backends.find((x) => x.id === a.hostPort)!;
      return probe.lastProbe !== null && Date.parse(probe.lastProbe.at) > drainedAt + 100;
    });
    const s = await status(t.adminUrl);
    expect(s.pools[0]!.backends.find((x) => x.id === a.hostPort)).toMatchObject({
      state: 'draining',
      drainedByOperator: true,
    });
    for (let i = 0; i < 4; i++) {
      const ws = await openWs(`${t.wsUrl}/media-stream/CA${i}`);
      ws.close();
    }
    expect(a.upgrades).toHaveLength(0);
    expect(b.upgrades).toHaveLength(4);
    expect(t.logs.some((l) => l.msg === 'backend drained by operator')).toBe(true);

    const again = await post(`${t.adminUrl}/backends/media/${a.hostPort}/drain`);
    expect(await again.json()).toMatchObject({ changed: false });
    const undrain = await post(
      `${t.adminUrl}/backends/media/${encodeURIComponent(a.hostPort)}/undrain`,
    );
    expect(await undrain.json()).toMatchObject({ action: 'undrain', changed: true });
    expect(t.proxy.backends('media').find((x) => x.id === a.hostPort)!.state).toBe('up');
  });

  it("moves a backend's live calls to another worker now", async () => {
    const backends = await Promise.all(
      ['a', 'b'].map((name) =>
        startWsBackend({
          name,
          onMessage: (ws, data) => {
            if (data.toString() !== 'connected') ws.send(`${name}:${data.toString()}`);
          },
        }),
      ),
    );
    const t = await startProxy({
      MEDIA_BACKENDS: backends.map((x) => x.hostPort).join(','),
      CALL_TOKEN_SECRET: 'status-test-secret-0123456789',
    });
    const ws = await openWs(`${t.wsUrl}/media-stream/CA1`);
    const received: string[] = [];
    ws.on('message', (data: Buffer) => received.push(data.toString()));
    ws.send('connected');
    ws.send('start');
    await eventually(() => received.length === 1);
    const [from, to] = received[0]!.startsWith('a:') ? backends : [...backends].reverse();
    const res = await post(`${t.adminUrl}/backends/media/${from!.hostPort}/move`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      pool: 'media',
      backend: from!.hostPort,
      action: 'move',
      moved: 1,
    });
    ws.send('after the move');
    await eventually(() => received.includes(`${to!.name}:after the move`));
    await eventually(() => from!.clients.size === 0);
    expect(ws.readyState).toBe(ws.OPEN);
  });

  it('answers a form POST from the page with a redirect back to it', async () => {
    const a = await startWsBackend({ name: 'a' });
    const t = await startProxy({ MEDIA_BACKENDS: a.hostPort });
    const res = await fetch(`${t.adminUrl}/backends/media/${a.hostPort}/drain`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: t.adminUrl,
        'sec-fetch-site': 'same-origin',
      },
      body: 'action=drain',
      redirect: 'manual',
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/');
    expect(t.proxy.backends('media')[0]!.state).toBe('draining');
  });

  it.each<[string, string, Record<string, string>, number]>([
    ['GET has no side effect', 'GET', {}, 405],
    ['a cross-site browser POST', 'POST', { origin: 'http://evil.example' }, 403],
    ['a POST with Sec-Fetch-Site cross-site', 'POST', { 'sec-fetch-site': 'cross-site' }, 403],
    ['a POST with Origin null', 'POST', { origin: 'null' }, 403],
    ['a DNS-rebound Host on the loopback listener', 'POST', { host: 'evil.example:9090' }, 403],
  ])('refuses %s', async (_what, method, headers, expected) => {
    const a = await startWsBackend({ name: 'a' });
    const t = await startProxy({ MEDIA_BACKENDS: a.hostPort });
    // fetch() will not let a test set Host; a raw request will.
    const { request } = await import('node:http');
    const statusCode = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${t.adminUrl}/backends/media/${a.hostPort}/drain`,
        { method, headers },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(statusCode).toBe(expected);
    expect(t.proxy.backends('media')[0]!.state).toBe('up');
  });

  it('answers 404 for an unknown pool, backend or action', async () => {
    const a = await startWsBackend({ name: 'a' });
    const t = await startProxy({ MEDIA_BACKENDS: a.hostPort });
    for (const path of [
      `/backends/nope/${a.hostPort}/drain`,
      '/backends/media/10.9.9.9:1/drain',
      `/backends/media/${a.hostPort}/explode`,
    ]) {
      expect((await post(`${t.adminUrl}${path}`)).status, path).toBe(404);
    }
  });

  it('needs ADMIN_TOKEN as a bearer token when the admin listener is not on loopback', async () => {
    const a = await startWsBackend({ name: 'a' });
    const t = await startProxy({
      MEDIA_BACKENDS: a.hostPort,
      ADMIN_HOST: '0.0.0.0',
      ADMIN_TOKEN: TOKEN,
    });
    const url = `${t.adminUrl}/backends/media/${a.hostPort}/drain`;
    expect((await post(url)).status).toBe(403);
    expect((await post(url, { authorization: 'Bearer wrong-token-0123456789' })).status).toBe(403);
    expect(t.proxy.backends('media')[0]!.state).toBe('up');
    // The page shows no buttons without the token, and reading it needs none.
    expect(await (await fetch(`${t.adminUrl}/`)).text()).toContain('token required');
    expect((await post(url, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
    expect(t.proxy.backends('media')[0]!.state).toBe('draining');
    const basic = `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`;
    const undrain = await post(url.replace(/drain$/, 'undrain'), { authorization: basic });
    expect(undrain.status).toBe(200);
  });

  it('refuses every action on a non-loopback listener without ADMIN_TOKEN', async () => {
    const a = await startWsBackend({ name: 'a' });
    const t = await startProxy({ MEDIA_BACKENDS: a.hostPort, ADMIN_HOST: '0.0.0.0' });
    const res = await post(`${t.adminUrl}/backends/media/${a.hostPort}/drain`, {
      authorization: 'Bearer anything-at-all-0123',
    });
    expect(res.status).toBe(403);
  });
});

describe('admin helpers', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.8.9.10', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['0.0.0.0', false],
    ['::', false],
    ['10.0.0.1', false],
  ])('isLoopback(%s) → %s', (address, expected) => {
    expect(isLoopback(address)).toBe(expected);
  });

  it('compares tokens whatever their length, and never matches without a configured token', () => {
    expect(tokenMatches(TOKEN, TOKEN)).toBe(true);
    expect(tokenMatches(`${TOKEN}x`, TOKEN)).toBe(false);
    expect(tokenMatches('', TOKEN)).toBe(false);
    expect(tokenMatches(undefined, TOKEN)).toBe(false);
    expect(tokenMatches('', '')).toBe(false);
    expect(tokenMatches('x', undefined)).toBe(false);
  });
});
