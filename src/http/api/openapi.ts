import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';
import { z } from 'zod';

/**
 * The OpenAPI 3 document of every HTTP route, generated from the route schemas (zod through
 * fastify-type-provider-zod), served at /api/openapi.json and browsable at /api/docs (Swagger UI,
 * assets served from the package: no CDN).
 */

export const OPENAPI_PATH = '/api/openapi.json';
export const DOCS_PREFIX = '/api/docs';

/** Must run before any route is added: @fastify/swagger collects routes as they are registered. */
export async function registerOpenApiCollector(app: FastifyInstance, info: { version: string }): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'pacsnode',
        version: info.version,
        description:
          'PACS (DICOM archive): DICOMweb (PS3.18) under /wado and /dicom-web, the JSON management API under /api, /health. NOT FOR CLINICAL USE.',
      },
      tags: [
        { name: 'studies', description: 'Browse and delete studies' },
        { name: 'series', description: 'Browse and delete series' },
        { name: 'instances', description: 'Browse and delete instances' },
        { name: 'statistics', description: 'Archive figures' },
        { name: 'nodes', description: 'Remote DICOM nodes (AE whitelist, move destinations)' },
        { name: 'jobs', description: 'Long operations: progress and cancellation' },
        { name: 'dicomweb', description: 'DICOMweb: STOW-RS, QIDO-RS, WADO-RS (PS3.18)' },
        { name: 'system', description: 'Health and this document' },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
}

/** GET /api/openapi.json and the Swagger UI under /api/docs. */
export async function registerOpenApiRoutes(app: FastifyInstance): Promise<void> {
  app.get(OPENAPI_PATH, {
    schema: {
      tags: ['system'],
      operationId: 'getOpenApi',
      summary: 'This OpenAPI document',
      response: { 200: z.record(z.string(), z.unknown()).meta({ description: 'OpenAPI 3.1 document' }) },
    },
  }, async () => app.swagger());
  // The UI's own routes (index, static assets, its copy of the document) are hidden from the document.
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX, uiConfig: { deepLinking: true } });
}
