import { describe, expect, it } from 'vitest';
import { metricValue, startProxy, startWsBackend } from './helpers/index.js';

describe('ProxyServer plain HTTP', () => {
  it('forwards webhooks and the page with their bodies, and redirects /test-agent', async () => {
    const media = await startWsBackend({ name: 'media' });
    const agent = await startWsBackend({ name: 'agent' });
    const t = await startProxy({
      MEDIA_BACKENDS: media.hostPort,
      TEST_AGENT_BACKENDS: agent.hostPort,
    });
    const twiml = await fetch(`${t.httpUrl}/media-stream/twiml?x=1`, {
      method: 'POST',
      body: 'CallSid=CA1&From=%2B1555',
    });
    expect(await twiml.json()).toEqual({
      backend: 'media',
      url: '/media-stream/twiml?x=1',
      body: 'CallSid=CA1&From=%2B1555',
    });
    const page = await fetch(`${t.httpUrl}/test-agent/`);
    expect(await page.json()).toMatchObject({ backend: 'agent', url: '/test-agent/' });
    const redirect = await fetch(`${t.httpUrl}/test-agent?lang=en`, { redirect: 'manual' });
    expect(redirect.status).toBe(308);
    expect(redirect.headers.get('location')).toBe('/test-agent/?lang=en');
    expect(
      await metricValue(t.adminUrl, 'proxy_http_requests_total', {
        route: 'media-http',
        outcome: 'ok',
      }),
    ).toBe(1);
    expect(t.logs.find((l) => l.msg === 'request' && l.route === 'media-http')).toMatchObject({
      pool: 'media',
      backend: media.hostPort,
      status: 200,
      outcome: 'ok',
    });
  });

  it('answers /healthz and /readyz itself', async () => {
    const t = await startProxy({ MEDIA_BACKENDS: '127.0.0.1:9' });
    expect(await (await fetch(`${t.httpUrl}/healthz`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${t.httpUrl}/readyz`)).json()).toEqual({ status: 'ready' });
  });
});
