import type { FastifyInstance } from 'fastify';
import type { Archive } from '../../archive/archive.js';
import { sendError } from '../errors.js';

/** GET /health (SPEC §5): {"status":"ok"} after checking the database and the blob store; 503 otherwise. */
export function registerHealth(app: FastifyInstance, archive: Archive): void {
  app.get('/health', async (_request, reply) => {
    const report = await archive.health();
    if (report.ok) return reply.code(200).send({ status: 'ok' });
    return sendError(reply, 503, 'UNHEALTHY', 'a dependency is not available', { database: report.database, storage: report.storage });
  });
}
