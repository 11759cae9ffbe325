import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Archive } from '../../archive/archive.js';
import { sendError } from '../errors.js';
import { errorResponses } from '../schemas.js';

/** GET /health (SPEC §5): {"status":"ok"} after checking the database and the blob store; 503 otherwise. */
export function registerHealth(app: FastifyInstance, archive: Archive): void {
  app.get('/health', {
    schema: {
      tags: ['system'],
      operationId: 'getHealth',
      summary: 'Health: database and blob store reachable',
      response: { 200: z.object({ status: z.literal('ok') }), ...errorResponses(503) },
    },
  }, async (_request, reply) => {
    const report = await archive.health();
    if (report.ok) return reply.code(200).send({ status: 'ok' });
    return sendError(reply, 503, 'UNHEALTHY', 'a dependency is not available', { database: report.database, storage: report.storage });
  });
}
