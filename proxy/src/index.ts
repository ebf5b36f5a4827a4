export {
  ProxyServer,
  type ProxyServerConfig,
  type ProxyServerOptions,
  type BackendSnapshot,
} from './proxy-server.js';
export {
  loadProxyConfig,
  PROXY_ENV,
  POOL_NAMES,
  type PoolName,
  type ProxyConfig,
  type BackendEntry,
  type SignatureMode,
} from './config.js';
export {
  PROXY_ERRORS,
  ERROR_CODES,
  ProxyError,
  hasRetryAfter,
  outcomeOf,
  type ProxyErrorCode,
} from './errors.js';
export { RouteTable, canonicalizeUrl, type RouteMatch, type RouteName } from './route-table.js';
export { leastTunnels, rendezvous, type Candidate } from './balancer.js';
export { SignatureCheck, type SignatureVerdict } from './signature.js';
export { dnsResolver, type Resolver } from './membership.js';
export type { BackendState } from './backend.js';
