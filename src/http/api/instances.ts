import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { callContext } from '../request-context.js';
import { errorResponses, uidParam } from '../schemas.js';
import { instanceJson, instanceSchema, type RestDeps } from './resources.js';

/** SPEC §5: /api/instances/{instance} (detail, DELETE). */

const instanceParams = z.object({ instance: uidParam('SOP Instance UID') });

export function registerInstanceRoutes(app: FastifyInstance, deps: RestDeps): void {
  const { archive } = deps;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/api/instances/:instance', {
    schema: {
      tags: ['instances'],
      operationId: 'getInstance',
      summary: 'An instance',
      params: instanceParams,
      response: { 200: instanceSchema, ...errorResponses(400, 404) },
    },
  }, async (request) => instanceJson(await archive.instanceRow(callContext(request, 'rest'), request.params.instance)));

  r.delete('/api/instances/:instance', {
    schema: {
      tags: ['instances'],
      operationId: 'deleteInstance',
      summary: 'Delete an instance',
      description: 'Removes the instance (index row and stored file); emptied series and study go too.',
      params: instanceParams,
      response: { 204: z.undefined().meta({ description: 'Deleted' }), ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    await archive.remove(callContext(request, 'rest'), { level: 'instance', sopUid: request.params.instance });
    return reply.code(204).send();
  });
}
