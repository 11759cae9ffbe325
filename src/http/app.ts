import cors from '@fastify/cors';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifySchema } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Archive } from '../archive/archive.js';
import type { JobService } from '../archive/jobs.js';
import type { NodeService } from '../archive/nodes.js';
import type { Config } from '../config/schema.js';
import { registerDownloadRoutes } from './api/download.js';
import { registerHealth } from './api/health.js';
import { registerInstanceRoutes } from './api/instances.js';
import { registerJobRoutes } from './api/jobs.js';
import { registerNodeRoutes, type NodeScu } from './api/nodes.js';
import { registerOpenApiCollector, registerOpenApiRoutes } from './api/openapi.js';
import type { RestDeps } from './api/resources.js';
import { registerSeriesRoutes } from './api/series.js';
import { registerStatisticsRoutes } from './api/statistics.js';
import { registerStudyRoutes } from './api/studies.js';
import { dicomwebRoutes } from './dicomweb/index.js';
import { PhiSafeLogController } from './request-log.js';
import { clientErrorHandler, errorHandler, frameworkErrorHandler, HttpErrorCode, notFoundHandler, sendError } from './errors.js';

export interface HttpAppOptions {
  archive: Archive;
  config: Config;
  /** A pino logger (Fastify's loggerInstance). */
  logger?: FastifyBaseLogger;
  /** True once an auth plugin authenticates requests (lifts the loopback-only rule). */
  authEnabled?: boolean;
  /** Shown in the OpenAPI document. */
  version?: string;
  /** /api/nodes (SPEC §5). */
  nodes: NodeService;
  /** /api/jobs (SPEC §5). */
  jobs: JobService;
  /** The DIMSE SCU behind POST /api/nodes/{ae}/echo|find|store (omitted: those routes are not served). */
  scu?: NodeScu;
  /** STOW-RS body stall timeout (default STOW_STALL_MS; tests shorten it). */
  stowStallMs?: number;
}

/**
 * A STOW-RS body from which no byte arrives for this long, while pacsnode is waiting to read it,
 * is abandoned (the connection destroyed, the part in flight fails and stores nothing): a client
 * gone silent must not hold its request, nor a large-header permit (ADR 0021), forever. Time
 * during which pacsnode itself does not read (storage behind, a permit awaited) does not count.
 */
export const STOW_STALL_MS = 60_000;

export const DICOMWEB_ROOTS = ['/wado', '/dicom-web'] as const;

/**
 * URL limits (docs/errors.md). One path segment (a `:param`) may be 64 KiB: a WADO-RS frame list of
 * thousands of frame numbers is a single segment (frames 1..10000 take 48,893 characters). Beyond it:
 * 414 URI_TOO_LONG. The request line and all header fields together may be 80 KiB (Node's
 * maxHeaderSize; Node's default is 16 KiB): that 64 KiB segment plus the 16 KiB Node allows by
 * default for everything else. Beyond it: 431 HEADERS_TOO_LARGE. Both bound what one connection can
 * make the server buffer before a route runs.
 */
export const MAX_PARAM_LENGTH = 64 * 1024;
export const MAX_HEADER_BYTES = 80 * 1024;

export interface RouteEntry {
  method: string;
  url: string;
  schema: FastifySchema | undefined;
}

const ROUTES = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Every route of an app built by buildHttpApp, as registered (the OpenAPI test compares it with the document). */
export function routeTable(app: FastifyInstance): readonly RouteEntry[] {
  return ROUTES.get(app) ?? [];
}

function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.') || ip.startsWith('::ffff:127.');
}

/** Builds the HTTP edge. Never listens: main.ts does, tests use inject() or listen on port 0. */
export async function buildHttpApp(opts: HttpAppOptions): Promise<FastifyInstance> {
  const { archive, config } = opts;
  const server = config.server;
  const app = Fastify({
    loggerInstance: opts.logger ?? silentFastifyLogger(),
    // One hop: the proxy in front of us. request.ip is then the address that proxy appended to
    // X-Forwarded-For, not the leftmost entry, which the client writes itself (`127.0.0.1, …`
    // would otherwise pass the loopback-only rule below).
    trustProxy: server.trust_proxy ? (_address: string, hop: number) => hop === 0 : false,
    // STOW bodies are streamed to the archive; limits are enforced there (bodyLimit does not apply to streams).
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH, ignoreTrailingSlash: true },
    http: { maxHeaderSize: MAX_HEADER_BYTES },
    // Errors raised before a route runs get the SPEC §3 error shape too.
    frameworkErrors: frameworkErrorHandler(MAX_PARAM_LENGTH),
    clientErrorHandler: clientErrorHandler(MAX_HEADER_BYTES),
    logController: new PhiSafeLogController(),
  });
  app.decorateRequest('principal', null);
  const routes: RouteEntry[] = [];
  ROUTES.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push({ method, url: route.url, schema: route.schema });
  });
  // Route schemas are zod: they validate requests, serialize JSON responses and make the OpenAPI document.
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

  // Raw body pass-through: STOW-RS streams request bodies part by part, never buffering them.
  app.addContentTypeParser(['multipart/related', 'application/dicom'], (_request, payload, done) => done(null, payload));

  // CORS first: its headers must be on every response, the 403 below included.
  if (server.cors_origins.length > 0) {
    await app.register(cors, {
      origin: server.cors_origins.includes('*') ? true : [...server.cors_origins],
      credentials: server.cors_credentials,
      exposedHeaders: ['Warning', 'Content-Type', 'ETag', 'Content-Length'],
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'],
    });
  }

  if (!server.http_remote_access && !opts.authEnabled) {
    app.addHook('onRequest', async (request, reply) => {
      if (!isLoopback(request.ip)) {
        return sendError(reply, 403, HttpErrorCode.REMOTE_ACCESS_DISABLED, 'remote HTTP access is disabled: set server.http_remote_access = true or enable an auth plugin');
      }
      return undefined;
    });
  }

  // Before any route: the OpenAPI collector sees the routes registered after it.
  await registerOpenApiCollector(app, { version: opts.version ?? '0.1.0' });

  registerHealth(app, archive);
  await registerOpenApiRoutes(app);

  // ---- REST API (/api, SPEC §5) ----
  const deps: RestDeps = { archive };
  registerStudyRoutes(app, deps);
  registerSeriesRoutes(app, deps);
  registerInstanceRoutes(app, deps);
  registerStatisticsRoutes(app, deps);
  registerDownloadRoutes(app, deps);
  // Nodes and jobs live in the database next to the index; main.ts builds their services.
  registerNodeRoutes(app, { nodes: opts.nodes, jobs: opts.jobs, archive, ...(opts.scu ? { scu: opts.scu } : {}) });
  registerJobRoutes(app, { jobs: opts.jobs });

  // ---- DICOMweb (SPEC §3) ----
  for (const root of DICOMWEB_ROOTS) {
    await app.register(dicomwebRoutes, {
      prefix: root,
      root,
      archive,
      baseUrl: { publicBaseUrl: server.public_base_url, trustProxy: server.trust_proxy },
      maxRequestBytes: server.max_request_bytes,
      stowStallMs: opts.stowStallMs ?? STOW_STALL_MS,
    });
  }
  return app;
}

function silentFastifyLogger(): FastifyBaseLogger {
  const noop = (): void => {};
  const logger: FastifyBaseLogger = {
    level: 'silent',
    fatal: noop,
    error: noop,
    warn: noop,
    info: noop,
    debug: noop,
    trace: noop,
    silent: noop,
    child: () => logger,
  };
  return logger;
}
