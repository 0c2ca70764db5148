// buildApp(deps): the Fastify application (plugins, hooks, routes). Never listens;
// main.ts and the tests do that.

import { existsSync } from 'node:fs';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import fastifyStatic from '@fastify/static';
import { ApiError } from './errors.js';
import type { EventBus } from './events/bus.js';
import type { Mesh } from './mesh/mesh.js';
import type { TransferService } from './transfer/service.js';
import { transferRoutes } from './api/routes-transfers.js';
import { bearerToken, Guard } from './api/auth.js';
import { attachEventStream } from './api/events-ws.js';
import { routes } from './api/routes.js';

const JSON_BODY_LIMIT = 64 * 1024;
const DOWNLOAD_ROUTE = '/api/peers/:port/files/:name';
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'",
  "form-action 'self'",
].join('; ');

export interface AppDeps {
  mesh: Mesh;
  transfers: TransferService;
  bus: EventBus;
  token: string;
  /** True when the API listens on loopback: enables the Host/Origin checks. */
  loopbackOnly: boolean;
  /** Built dashboard (dist/web); when missing, / explains how to build it. */
  webRoot: string;
  version: string;
  peerHost: string;
  logger?: FastifyServerOptions['logger'];
  now?: () => number;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: JSON_BODY_LIMIT,
    // Slow clients must not hold sockets forever (slowloris).
    connectionTimeout: 60_000,
    requestTimeout: 60_000,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  });
  const guard = new Guard({ token: deps.token, loopbackOnly: deps.loopbackOnly, now: deps.now });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('Content-Security-Policy', CSP);
    reply.header('X-Frame-Options', 'DENY');
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Referrer-Policy', 'no-referrer');
    reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    guard.checkHostAndOrigin({ host: req.headers.host, origin: req.headers.origin });
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send({ error: { code: err.code, message: err.message } });
    if (err.validation) {
      return reply.code(400).send({ error: { code: 'bad_request', message: `invalid request: ${err.message}` } });
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      // Fastify's own client errors: bad JSON, wrong content type, body too large...
      return reply.code(err.statusCode).send({ error: { code: 'bad_request', message: err.message } });
    }
    req.log.error(err);
    return reply.code(500).send({ error: { code: 'internal', message: 'internal error; see the daemon log' } });
  });

  app.setNotFoundHandler((req, reply) => {
    reply.code(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } });
  });

  // The token check belongs to the routes themselves (an encapsulated plugin hook), not to
  // the URL text: the router decodes %-escapes and accepts absolute URLs, so a prefix test
  // on req.url could be walked around.
  await app.register(async (api) => {
    api.addHook('onRequest', async (req, reply) => {
      reply.header('Cache-Control', 'no-store');
      // Download links in the page cannot set headers; that one read-only route also takes ?token=.
      const query = req.query as Record<string, unknown> | undefined;
      const linkToken = req.method === 'GET' && req.routeOptions.url === DOWNLOAD_ROUTE && typeof query?.token === 'string' ? query.token : undefined;
      guard.checkToken(bearerToken(req.headers.authorization) ?? linkToken, req.ip);
    });
    await routes(api, { mesh: deps.mesh, bus: deps.bus, version: deps.version, peerHost: deps.peerHost });
    await transferRoutes(api, { transfers: deps.transfers, webRoot: deps.webRoot });
  });

  if (existsSync(deps.webRoot)) {
    await app.register(fastifyStatic, { root: deps.webRoot, index: ['index.html'], wildcard: false });
  } else {
    app.get('/', async (_req, reply) =>
      reply.type('text/plain').send('The dashboard is not built. Run `npm run build` (or `npm start`, which builds it).\n'),
    );
  }

  const events = attachEventStream({ server: app.server, bus: deps.bus, guard });
  // preClose, not onClose: Fastify waits for open sockets before onClose, and an upgraded
  // WebSocket would hold the shutdown until the deadline.
  app.addHook('preClose', async () => events.close());
  return app;
}
