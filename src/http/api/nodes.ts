import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BROWSE_DEFAULT_LIMIT, BROWSE_MAX_LIMIT } from '../../archive/browse.js';
import { AE_TITLE_MAX, DESCRIPTION_MAX, type NodeService } from '../../archive/nodes.js';
import type { NodeRecord } from '../../storage/nodes.js';
import { callContext } from '../request-context.js';
import { errorResponses, intQuery } from '../schemas.js';
import { listSchema } from './resources.js';

/** SPEC §5: /api/nodes — the remote DICOM nodes (AE whitelist, move destinations, SCU peers). */

export interface NodeRouteDeps {
  nodes: NodeService;
}

const timestamp = z.string().meta({ format: 'date-time', description: 'ISO-8601 UTC' });
const aeTitle = z.string().meta({
  description: `AE title: leading/trailing spaces trimmed, 1–${AE_TITLE_MAX} printable ASCII characters, no backslash or control characters; case-sensitive`,
  example: 'ORTHANC',
});
const flag = (description: string) => z.boolean().meta({ description });

export const nodeSchema = z
  .object({
    ae_title: aeTitle,
    host: z.string().meta({ description: 'Host name or IP address', example: 'pacs.example.org' }),
    port: z.number().int().meta({ description: 'TCP port (1–65535)', example: 104 }),
    description: z.string().nullable(),
    allow_store: flag('May send us C-STORE (enforced while server.ae_whitelist_enabled)'),
    allow_find: flag('May query us with C-FIND (enforced while server.ae_whitelist_enabled)'),
    allow_retrieve: flag('May retrieve from us with C-MOVE/C-GET (enforced while server.ae_whitelist_enabled)'),
    move_destination: flag('Usable as a C-MOVE destination'),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Node' });

/**
 * The upsert body. Types are checked here; the rules (trimming, lengths, characters, host syntax,
 * port range) are the archive's (archive/nodes.ts), so DIMSE and the CLI get the same answers.
 */
export const nodeInputSchema = z
  .object({
    ae_title: aeTitle,
    host: z.string().meta({ description: 'Host name or IP address (IPv6 with or without brackets)', example: '192.0.2.10' }),
    port: z.number().int().min(1).max(65535).meta({ description: 'TCP port', example: 104 }),
    description: z.string().nullable().optional().meta({ description: `Free text, at most ${DESCRIPTION_MAX} characters` }),
    allow_store: flag('Default true').optional(),
    allow_find: flag('Default true').optional(),
    allow_retrieve: flag('Default true').optional(),
    move_destination: flag('Default true').optional(),
  })
  .meta({ id: 'NodeUpsert' });

export const nodeListSchema = listSchema(nodeSchema, 'NodeList');

const nodeParams = z.object({ ae_title: z.string().meta({ description: 'AE title (exact, case-sensitive)' }) });

export type NodeJson = z.output<typeof nodeSchema>;

export function nodeJson(n: NodeRecord): NodeJson {
  return {
    ae_title: n.aeTitle,
    host: n.host,
    port: n.port,
    description: n.description,
    allow_store: n.allowStore,
    allow_find: n.allowFind,
    allow_retrieve: n.allowRetrieve,
    move_destination: n.moveDestination,
    created_at: n.createdAt.toISOString(),
    updated_at: n.updatedAt.toISOString(),
  };
}

export function registerNodeRoutes(app: FastifyInstance, deps: NodeRouteDeps): void {
  const { nodes } = deps;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get('/api/nodes', {
    schema: {
      tags: ['nodes'],
      operationId: 'listNodes',
      summary: 'List remote DICOM nodes',
      description: 'Ordered by AE title.',
      querystring: z.object({
        limit: intQuery(`Page size (1–${BROWSE_MAX_LIMIT})`, { min: 1, max: BROWSE_MAX_LIMIT, default: BROWSE_DEFAULT_LIMIT }),
        offset: intQuery('Rows to skip', { min: 0, default: 0 }),
        move_destination: z
          .enum(['true', 'false'])
          .optional()
          .meta({ description: 'Only nodes with this move_destination flag' }),
      }),
      response: { 200: nodeListSchema, ...errorResponses(400) },
    },
  }, async (request) => {
    const q = request.query;
    const page = await nodes.list(callContext(request, 'rest'), {
      limit: q.limit,
      offset: q.offset,
      ...(q.move_destination !== undefined ? { moveDestination: q.move_destination === 'true' } : {}),
    });
    return { items: page.items.map(nodeJson), total: page.total, limit: page.limit, offset: page.offset };
  });

  r.get('/api/nodes/:ae_title', {
    schema: {
      tags: ['nodes'],
      operationId: 'getNode',
      summary: 'A remote DICOM node',
      params: nodeParams,
      response: { 200: nodeSchema, ...errorResponses(404) },
    },
  }, async (request) => nodeJson(await nodes.get(callContext(request, 'rest'), request.params.ae_title)));

  r.post('/api/nodes', {
    schema: {
      tags: ['nodes'],
      operationId: 'upsertNode',
      summary: 'Create or replace a remote DICOM node (by AE title)',
      description: 'Every field is replaced; omitted flags are true, an omitted description is null. 201 when created, 200 when replaced.',
      body: nodeInputSchema,
      response: { 200: nodeSchema, 201: nodeSchema, ...errorResponses(400) },
    },
  }, async (request, reply) => {
    const b = request.body;
    const { node, created } = await nodes.upsert(callContext(request, 'rest'), {
      aeTitle: b.ae_title,
      host: b.host,
      port: b.port,
      ...(b.description !== undefined ? { description: b.description } : {}),
      ...(b.allow_store !== undefined ? { allowStore: b.allow_store } : {}),
      ...(b.allow_find !== undefined ? { allowFind: b.allow_find } : {}),
      ...(b.allow_retrieve !== undefined ? { allowRetrieve: b.allow_retrieve } : {}),
      ...(b.move_destination !== undefined ? { moveDestination: b.move_destination } : {}),
    });
    return reply.code(created ? 201 : 200).send(nodeJson(node));
  });

  r.delete('/api/nodes/:ae_title', {
    schema: {
      tags: ['nodes'],
      operationId: 'deleteNode',
      summary: 'Delete a remote DICOM node',
      params: nodeParams,
      response: { 204: z.undefined().meta({ description: 'Deleted' }), ...errorResponses(404) },
    },
  }, async (request, reply) => {
    await nodes.remove(callContext(request, 'rest'), request.params.ae_title);
    return reply.code(204).send();
  });
}
