import type { FastifyInstance } from 'fastify';
import type { Archive } from '../../archive/archive.js';

/** GET /health (SPEC §5): {"status":"ok"} after checking the database and the blob store; 503 otherwise. */
export function registerHealth(app: FastifyInstance, archive: Archive): void {
  app.get('/health', async (_request, reply) => {
    const report = await archive.health();
    if (report.ok) return reply.code(200).send({ status: 'ok' });
    return reply.code(503).send({
      status: 'unavailable',
      error: { code: 'UNHEALTHY', message: 'a dependency is not available', details: { database: report.database, storage: report.storage } },
    });
  });
}
