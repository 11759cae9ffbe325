import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Archive } from '../../archive/archive.js';
import { BROWSE_DEFAULT_LIMIT, BROWSE_MAX_LIMIT } from '../../archive/browse.js';
import type { CallContext } from '../../archive/context.js';
import { ArchiveError } from '../../archive/errors.js';
import type { JobService } from '../../archive/jobs.js';
import { AE_TITLE_MAX, checkText, DESCRIPTION_MAX, type NodeService } from '../../archive/nodes.js';
import type { DicomJsonDataset } from '../../dicom/types.js';
import type { NodeRecord } from '../../storage/nodes.js';
import type { InstanceRow } from '../../storage/metadata.js';
import { sendError } from '../errors.js';
import { callContext } from '../request-context.js';
import { errorResponses, errorSchema, intQuery } from '../schemas.js';
import { actionParams, answerJob, bodyUid, jobAcceptedSchema, jobDoneSchema, registerNodeRetrieveRoutes, targetOf, waitQuery, type NodeRetrieveScu } from './node-retrieve.js';
import { listSchema } from './resources.js';

/** SPEC §5: /api/nodes — the remote DICOM nodes (AE whitelist, move destinations, SCU peers). */

/** A remote AE as the SCU addresses it. */
export interface DimseTarget {
  host: string;
  port: number;
  calledAe: string;
}

/** One instance for the SCU to send (the shape of dimse/scu's StoreItem). */
export interface NodeStoreItem {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  open(): Promise<AsyncIterable<Uint8Array>>;
  label?: string;
  size?: number;
}

export interface NodeStoreProgress {
  /** The instance just finished; absent on byte-count updates. */
  result?: { sopInstanceUid?: string; outcome: 'success' | 'warning' | 'failure'; status?: number; error?: string };
}

/**
 * The DIMSE SCU as the node actions use it. main.ts passes the client of dimse/scu (createScu):
 * edges do not import each other (ARCHITECTURE rule 1). Its errors carry a string `code` and
 * `details`; INVALID_REQUEST is the caller's mistake, any other code the peer's or the network's.
 * C-MOVE and C-GET: NodeRetrieveScu (node-retrieve.ts).
 */
export interface NodeScu extends NodeRetrieveScu {
  echo(target: DimseTarget): Promise<{ status: number; durationMs: number }>;
  find(
    target: DimseTarget,
    request: { level: 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE'; model: 'study' | 'patient'; keys: Record<string, string | null>; returnKeys: string[]; signal?: AbortSignal },
  ): AsyncIterable<DicomJsonDataset>;
  store(
    target: DimseTarget,
    items: readonly NodeStoreItem[],
    options: { onProgress?: (p: NodeStoreProgress) => void; signal?: AbortSignal },
  ): Promise<{ completed: number; warning: number; failed: number; cancelled: boolean }>;
}

export interface NodeRouteDeps {
  nodes: NodeService;
  /** With scu, jobs and archive, the node actions (echo, find, store, move, get) are served too. */
  scu?: NodeScu;
  jobs?: JobService;
  archive?: Archive;
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
  const { nodes, scu, jobs, archive } = deps;
  if (scu && jobs && archive) registerNodeActionRoutes(app, { nodes, scu, jobs, archive });
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

// ---------------------------------------------------------------------------------------------
// Node actions: the SCU against a registered node (SPEC §5)

interface ActionDeps {
  nodes: NodeService;
  scu: NodeScu;
  jobs: JobService;
  archive: Archive;
}

/** REST find results are bounded: a larger answer is cut with C-CANCEL. */
export const FIND_DEFAULT_LIMIT = 1000;
export const FIND_MAX_LIMIT = 10000;

const dimseErrorResponse = errorSchema.meta({
  description: 'The node could not be reached or answered with a failure (code DIMSE_ECHO_FAILED, DIMSE_FIND_FAILED; details.reason: CONNECT_FAILED, ASSOCIATION_REJECTED, TIMEOUT, ...)',
});

const echoResultSchema = z
  .object({
    ok: z.literal(true),
    ae_title: z.string(),
    duration_ms: z.number().meta({ description: 'From connecting to the C-ECHO response' }),
  })
  .meta({ id: 'NodeEchoResult' });

const findBodySchema = z
  .object({
    level: z.enum(['PATIENT', 'STUDY', 'SERIES', 'IMAGE']),
    model: z.enum(['study', 'patient']).default('study').meta({ description: 'Study Root (default) or Patient Root' }),
    keys: z
      .record(z.string(), z.string().nullable())
      .default({})
      .meta({ description: 'Matching keys by keyword or tag; an empty value asks for the attribute back', example: { PatientName: 'DOE*' } }),
    includefield: z.array(z.string()).default([]).meta({ description: 'Further attributes to return (keyword or tag)' }),
    limit: z.number().int().min(1).max(FIND_MAX_LIMIT).default(FIND_DEFAULT_LIMIT).meta({ description: `At most this many results (C-CANCEL after); 1–${FIND_MAX_LIMIT}` }),
  })
  .meta({ id: 'NodeFind' });

const storeBodySchema = z
  .object({
    level: z.enum(['STUDY', 'SERIES', 'IMAGE']),
    study_uid: bodyUid('Study Instance UID'),
    series_uid: bodyUid('Series Instance UID (SERIES, optional for IMAGE)').optional(),
    sop_uids: z.array(bodyUid('SOP Instance UID')).min(1).optional().meta({ description: 'SOP Instance UIDs (IMAGE)' }),
  })
  .meta({ id: 'NodeStore' });


function scuErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The DICOM JSON a synchronous C-FIND may collect before it answers: the route holds every match
 * until it answers (~10,000 ordinary study matches with a dozen attributes take ~5 MiB).
 */
export const FIND_RESPONSE_MAX_BYTES = 32 * 1024 * 1024;

/** An SCU failure: the caller's (400) or the node's (502). ArchiveErrors go to the error handler. */
function sendDimseError(reply: FastifyReply, err: unknown, code: string, ae: string): FastifyReply {
  if (err instanceof ArchiveError) throw err;
  const reason = scuErrorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (reason === 'INVALID_REQUEST') return sendError(reply, 400, 'INVALID_PARAMETER', message, {});
  const raw = (err as { details?: unknown }).details;
  // The SCU's details (status, counts, an A-ASSOCIATE-RJ's result/source/reason…) go along, but
  // `reason` stays our code (docs/errors.md): a DICOM reason number moves to `dicom_reason`.
  const { reason: dicomReason, ...details } = raw && typeof raw === 'object' ? (raw as Record<string, unknown>) : {};
  return sendError(reply, 502, code, message, {
    ...details,
    ...(dicomReason !== undefined ? { dicom_reason: dicomReason } : {}),
    ae_title: ae,
    ...(reason ? { reason } : {}),
  });
}

/**
 * C-FIND matching keys as sent: names and values free of control characters and unpaired
 * surrogates (INVALID_PARAMETER, details.field `keys.<name>`). Unknown names and values a VR cannot
 * hold are the SCU's to refuse.
 */
function checkFindKeys(keys: Record<string, string | null>, includefield: readonly string[]): void {
  for (const [name, value] of Object.entries(keys)) {
    checkText(name, 'keys');
    if (value !== null) checkText(value, `keys.${name}`);
  }
  includefield.forEach((name, i) => checkText(name, `includefield.${i}`));
}

/** The instances a store request names, in the archive's order; NOT_FOUND when any is missing. */
async function instancesFor(archive: Archive, ctx: CallContext, body: z.output<typeof storeBodySchema>): Promise<InstanceRow[]> {
  if (body.level === 'SERIES' && body.series_uid === undefined) throw new ArchiveError('INVALID_PARAMETER', 'series_uid is required at level SERIES', { field: 'series_uid' });
  if (body.level === 'IMAGE' && body.sop_uids === undefined) throw new ArchiveError('INVALID_PARAMETER', 'sop_uids is required at level IMAGE', { field: 'sop_uids' });
  const scope = { studyUid: body.study_uid, ...(body.level !== 'STUDY' && body.series_uid !== undefined ? { seriesUid: body.series_uid } : {}) };
  const wanted = body.level === 'IMAGE' ? new Set(body.sop_uids) : undefined;
  const rows: InstanceRow[] = [];
  for await (const row of await archive.locate(ctx, scope)) {
    if (wanted && !wanted.has(row.sopUid)) continue;
    const { header: _header, ...plain } = row;
    rows.push(plain);
  }
  if (wanted) {
    const found = new Set(rows.map((r) => r.sopUid));
    const missing = [...wanted].filter((u) => !found.has(u));
    if (missing.length > 0) throw new ArchiveError('NOT_FOUND', 'instance not found', { sop_uids: missing });
  }
  return rows;
}

function registerNodeActionRoutes(app: FastifyInstance, deps: ActionDeps): void {
  const { nodes, scu, jobs, archive } = deps;
  const r = app.withTypeProvider<ZodTypeProvider>();
  registerNodeRetrieveRoutes(app, deps);

  r.post('/api/nodes/:ae_title/echo', {
    schema: {
      tags: ['nodes'],
      operationId: 'echoNode',
      summary: 'C-ECHO a registered node',
      description: 'Synchronous. 502 DIMSE_ECHO_FAILED when the node cannot be reached, rejects the association or answers with a failure.',
      params: actionParams,
      response: { 200: echoResultSchema, ...errorResponses(404), 502: dimseErrorResponse },
    },
  }, async (request, reply) => {
    const node = await nodes.get(callContext(request, 'rest'), request.params.ae_title);
    try {
      const result = await scu.echo(targetOf(node));
      return { ok: true as const, ae_title: node.aeTitle, duration_ms: result.durationMs };
    } catch (err) {
      return sendDimseError(reply, err, 'DIMSE_ECHO_FAILED', node.aeTitle);
    }
  });

  r.post('/api/nodes/:ae_title/find', {
    schema: {
      tags: ['nodes'],
      operationId: 'findOnNode',
      summary: 'C-FIND on a registered node',
      description: 'The matches as a DICOM JSON array (each dataset as the node returned it). 502 DIMSE_FIND_FAILED when the node fails.',
      params: actionParams,
      body: findBodySchema,
      response: { 200: z.array(z.record(z.string(), z.unknown())).meta({ description: 'DICOM JSON datasets' }), ...errorResponses(400, 404), 502: dimseErrorResponse },
    },
  }, async (request, reply) => {
    const node = await nodes.get(callContext(request, 'rest'), request.params.ae_title);
    const b = request.body;
    checkFindKeys(b.keys, b.includefield);
    const out: DicomJsonDataset[] = [];
    // `limit` counts matches, not bytes: a node may answer with identifiers of megabytes each
    let bytes = 0;
    // A client that goes away before the answer ends the C-FIND (the association is aborted).
    const gone = new AbortController();
    const onClose = (): void => {
      if (!reply.raw.writableFinished) gone.abort();
    };
    reply.raw.once('close', onClose);
    try {
      for await (const ds of scu.find(targetOf(node), { level: b.level, model: b.model, keys: b.keys, returnKeys: b.includefield, signal: gone.signal })) {
        bytes += JSON.stringify(ds).length;
        if (bytes > FIND_RESPONSE_MAX_BYTES) {
          // Leaving the loop sends C-CANCEL and releases the association.
          return sendError(reply, 502, 'DIMSE_FIND_FAILED', `the matches from ${node.aeTitle} exceed ${FIND_RESPONSE_MAX_BYTES / (1024 * 1024)} MiB of DICOM JSON after ${out.length}: narrow the query, ask for fewer attributes or a lower limit`, {
            ae_title: node.aeTitle,
            reason: 'RESPONSE_TOO_LARGE',
            matches: out.length,
          });
        }
        out.push(ds);
        if (out.length >= b.limit) break;
      }
    } catch (err) {
      return sendDimseError(reply, err, 'DIMSE_FIND_FAILED', node.aeTitle);
    } finally {
      reply.raw.off('close', onClose);
    }
    return out;
  });

  r.post('/api/nodes/:ae_title/store', {
    schema: {
      tags: ['nodes'],
      operationId: 'storeToNode',
      summary: 'Send a study, series or instances to a registered node (C-STORE job)',
      description:
        'Starts a job (GET /api/jobs/{id} for progress: remaining, completed, failed, warning, failed_uids). 202 with the job id; with ?wait=true, 200 with the finished job. Instances the node refuses count as failed; when it stores none of them, the job fails with the first reason as its error. A node that cannot be reached fails the job.',
      params: actionParams,
      querystring: waitQuery,
      body: storeBodySchema,
      response: { 200: jobDoneSchema, 202: jobAcceptedSchema, ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    const ctx = callContext(request, 'rest');
    const node = await nodes.get(ctx, request.params.ae_title);
    const b = request.body;
    const rows = await instancesFor(archive, ctx, b);
    const target = targetOf(node);
    const jobRequest = {
      ae_title: node.aeTitle,
      level: b.level,
      study_uid: b.study_uid,
      ...(b.series_uid !== undefined ? { series_uid: b.series_uid } : {}),
      ...(b.sop_uids !== undefined ? { sop_uids: b.sop_uids } : {}),
    };
    const started = await jobs.startJob(ctx, 'store', jobRequest, async (run) => {
      await run.progress({ set: { remaining: rows.length } });
      const items: NodeStoreItem[] = rows.map((row) => ({
        sopClassUid: row.sopClassUid,
        sopInstanceUid: row.sopUid,
        transferSyntaxUid: row.transferSyntaxUid,
        size: row.size,
        label: row.sopUid,
        open: () => archive.openInstance(ctx, row),
      }));
      const reports: Promise<void>[] = [];
      let stored = 0;
      let firstFailure: string | undefined;
      const result = await scu.store(target, items, {
        signal: run.signal,
        onProgress: (p) => {
          const res = p.result;
          if (!res) return;
          const counter = res.outcome === 'success' ? 'completed' : res.outcome === 'warning' ? 'warning' : 'failed';
          if (res.outcome !== 'failure') stored++;
          else firstFailure ??= `${res.sopInstanceUid ?? 'an instance'}: ${res.error ?? `status 0x${(res.status ?? 0).toString(16).padStart(4, '0')}`}`;
          const failedUids = res.outcome === 'failure' && res.sopInstanceUid !== undefined ? [res.sopInstanceUid] : [];
          reports.push(run.progress({ add: { remaining: -1, [counter]: 1 }, ...(failedUids.length > 0 ? { failedUids } : {}) }));
        },
      });
      await Promise.all(reports);
      // The node took none of them: the job failed, and says why (the counts and UIDs stay).
      if (stored === 0 && firstFailure !== undefined && !result.cancelled) {
        throw new Error(`${node.aeTitle} stored none of the ${rows.length} instances; the first: ${firstFailure}`);
      }
    }, { studyUid: b.study_uid });
    return answerJob(reply, request.query.wait === 'true', started);
  });
}
