import { describe, expect, it } from 'vitest';
import { startProxy, startWsBackend } from './helpers/index.js';

describe('AdminServer', () => {
  it('serves the proxy metrics from the edge registry', async () => {
    const backend = await startWsBackend();
    const t = await startProxy({ MEDIA_BACKENDS: backend.hostPort });
    const res = await fetch(`${t.adminUrl}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    for (const name of [
      'proxy_upgrades_total',
      'proxy_http_requests_total',
      'proxy_tunnels_open',
      'proxy_tunnel_duration_seconds',
      'proxy_handshake_duration_seconds',
      'proxy_tunnel_bytes_total',
      'proxy_backend_state',
      'proxy_signature_checks_total',
      'proxy_errors_total',
      'proxy_draining',
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    expect(text).toContain(
      `proxy_backend_state{pool="media",backend="${backend.hostPort}",state="up"} 1`,
    );
  });

  it.each([
    ['GET', '/healthz', 200],
    ['GET', '/readyz', 200],
    ['HEAD', '/readyz', 200],
    ['GET', '/metrics?x=1', 200],
    ['GET', '/nope', 404],
    ['POST', '/metrics', 404],
    ['GET', '/media-stream/CA1', 404],
  ])('%s %s → %i', async (method, path, status) => {
    const t = await startProxy({ MEDIA_BACKENDS: '127.0.0.1:9' });
    expect((await fetch(`${t.adminUrl}${path}`, { method })).status).toBe(status);
  });
});
