import cors from '@fastify/cors';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Archive } from '../archive/archive.js';
import type { Config } from '../config/schema.js';
import { registerHealth } from './api/health.js';
import { dicomwebRoutes } from './dicomweb/index.js';
import { PhiSafeLogController } from './request-log.js';
import { errorHandler, HttpErrorCode, notFoundHandler, sendError } from './errors.js';

export interface HttpAppOptions {
  archive: Archive;
  config: Config;
  /** A pino logger (Fastify's loggerInstance). */
  logger?: FastifyBaseLogger;
  /** True once an auth plugin authenticates requests (lifts the loopback-only rule). */
  authEnabled?: boolean;
}

export const DICOMWEB_ROOTS = ['/wado', '/dicom-web'] as const;

function isLoopback(ip: string): boolean {
  return ip === '::1' || ip.startsWith('127.') || ip.startsWith('::ffff:127.');
}

/** Builds the HTTP edge. Never listens: main.ts does, tests use inject() or listen on port 0. */
export async function buildHttpApp(opts: HttpAppOptions): Promise<FastifyInstance> {
  const { archive, config } = opts;
  const server = config.server;
  const app = Fastify({
    loggerInstance: opts.logger ?? silentFastifyLogger(),
    trustProxy: server.trust_proxy,
    // STOW bodies are streamed to the archive; limits are enforced there (bodyLimit does not apply to streams).
    bodyLimit: 1024 * 1024,
    routerOptions: { maxParamLength: 1024, ignoreTrailingSlash: true },
    logController: new PhiSafeLogController(),
  });
  app.decorateRequest('principal', null);
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

  registerHealth(app, archive);
  for (const root of DICOMWEB_ROOTS) {
    await app.register(dicomwebRoutes, {
      prefix: root,
      root,
      archive,
      baseUrl: { publicBaseUrl: server.public_base_url, trustProxy: server.trust_proxy },
      maxRequestBytes: server.max_request_bytes,
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
