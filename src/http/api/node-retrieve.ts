import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Archive } from '../../archive/archive.js';
import type { CallContext } from '../../archive/context.js';
import { ArchiveError } from '../../archive/errors.js';
import type { IngestOutcome } from '../../archive/ingest/outcome.js';
import type { JobRunContext, JobService, StartedJob } from '../../archive/jobs.js';
import { checkText, normaliseAeTitle, type NodeService } from '../../archive/nodes.js';
import type { JsonObject } from '../../storage/jobs.js';
import type { NodeRecord } from '../../storage/nodes.js';
import { callContext } from '../request-context.js';
import { isAddressableUid } from '../../dicom/uid.js';
import { errorResponses, UID_ISSUE } from '../schemas.js';
import { jobJson, jobSchema } from './jobs.js';
import type { DimseTarget, NodeScu } from './nodes.js';

/**
 * SPEC §5: POST /api/nodes/{ae}/move and /get — C-MOVE and C-GET against a registered node, run
 * as jobs like /store. Their counters are the sub-operation counts of the node's responses and
 * their failed UIDs its Failed SOP Instance UID List; cancelling the job sends C-CANCEL. C-GET
 * ingests what the node sends into our archive through archive.ingest, as C-STORE and STOW do.
 */

export type RetrieveLevel = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

/** What to retrieve (the shape of dimse/scu's RetrieveRequest). */
export interface NodeRetrieveRequest {
  level: RetrieveLevel;
  model?: 'study' | 'patient';
  patientId?: string;
  studyUid?: string;
  seriesUid?: string;
  sopUids?: readonly string[];
}

/** Sub-operation counts of a response; remaining is absent when the node does not say. */
export interface NodeRetrieveCounts {
  remaining?: number;
  completed: number;
  failed: number;
  warning: number;
}

export interface NodeRetrieveResult extends NodeRetrieveCounts {
  status: number;
  failedUids: string[];
  cancelled: boolean;
}

/** One instance the node sends during C-GET: Part-10 bytes, File Meta built by the SCU. */
export interface NodeRetrievedInstance {
  sopClassUid: string;
  sopInstanceUid: string;
  part10: AsyncIterable<Uint8Array>;
}

export interface NodeRetrieveOptions {
  signal?: AbortSignal;
  onProgress?: (progress: NodeRetrieveCounts & { status: number }) => void;
}

/** A storage context a C-GET proposes (dimse/scu's StorageContextSpec). */
export interface NodeStorageContext {
  sopClassUid: string;
  transferSyntaxes: readonly string[];
}

/** The C-MOVE and C-GET part of the SCU port (NodeScu in nodes.ts). */
export interface NodeRetrieveScu {
  /** Our AE title: the default move destination. */
  readonly callingAe: string;
  move(target: DimseTarget, request: NodeRetrieveRequest, options: NodeRetrieveOptions & { destination?: string }): Promise<NodeRetrieveResult>;
  /**
   * Before a C-GET: a C-FIND at IMAGE level on the node for what the request names, and the storage
   * contexts for the SOP classes found (dimse/scu planGetFromPeer; never rejects). No
   * storageContexts: the SCU's default list.
   */
  planGet?(target: DimseTarget, request: NodeRetrieveRequest, options: { signal?: AbortSignal }): Promise<{ storageContexts?: readonly NodeStorageContext[] }>;
  /** storageContexts: what to propose instead of the SCU's default list (the plan of planGet). */
  get(
    target: DimseTarget,
    request: NodeRetrieveRequest,
    options: NodeRetrieveOptions & { sink: (instance: NodeRetrievedInstance) => Promise<IngestOutcome>; storageContexts?: readonly NodeStorageContext[] },
  ): Promise<NodeRetrieveResult>;
}

export interface NodeRetrieveDeps {
  nodes: NodeService;
  scu: NodeScu;
  jobs: JobService;
  archive: Archive;
}

/** 202 of every node job route (store, move, get). */
export const jobAcceptedSchema = z.object({ job_id: z.string().meta({ format: 'uuid' }) }).meta({ id: 'JobAccepted' });
/** 200 of a node job route with ?wait=true. */
export const jobDoneSchema = jobSchema.extend({ job_id: z.string() }).meta({ id: 'JobDone' });

/**
 * A UID in a node action body: valid as a UID in a path is, but without the trailing NUL or space
 * padding that rule forgives in DICOM values — a JSON string has no padding, and the value goes to
 * the database (the job's request, the archive lookup) as given: PostgreSQL stores no NUL.
 */
export function bodyUid(description: string) {
  return z
    .string()
    .refine((v) => isAddressableUid(v), { message: 'not a valid UID', params: { errorCode: UID_ISSUE } })
    .meta({ description, pattern: '^[0-9]+(\\.[0-9]+)*$', maxLength: 64, example: '1.2.840.113619.2.55.3.604688119.969.1268071029.320' });
}

const retrieveLevels = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'] as const;

const retrieveFields = {
  level: z.enum(retrieveLevels).meta({ description: 'Query/Retrieve Level (0008,0052)' }),
  model: z.enum(['study', 'patient']).optional().meta({ description: 'Study Root (default) or Patient Root (implied by level PATIENT)' }),
  patient_id: z.string().min(1).max(64).optional().meta({ description: 'PatientID (0010,0020): required at level PATIENT and with model "patient"' }),
  study_uid: bodyUid('Study Instance UID: required at STUDY, SERIES and IMAGE').optional(),
  series_uid: bodyUid('Series Instance UID: required at SERIES and IMAGE').optional(),
  sop_uids: z.array(bodyUid('SOP Instance UID')).min(1).max(1000).optional().meta({ description: 'SOP Instance UIDs: required at IMAGE' }),
};

const moveBodySchema = z
  .object({
    ...retrieveFields,
    destination: z.string().optional().meta({ description: 'Move Destination AE title (default: our own AE title, server.ae_title)', example: 'PACSNODE' }),
  })
  .meta({ id: 'NodeMove' });

const getBodySchema = z.object(retrieveFields).meta({ id: 'NodeGet' });

type RetrieveBody = z.output<typeof getBodySchema>;

/** Shared by every node action route (here and in nodes.ts). */
export const actionParams = z.object({ ae_title: z.string().meta({ description: 'AE title of a registered node (exact, case-sensitive)' }) });
export const waitQuery = z.object({ wait: z.enum(['true', 'false']).optional().meta({ description: 'Answer when the job has finished' }) });

export function targetOf(node: NodeRecord): DimseTarget {
  return { host: node.host, port: node.port, calledAe: node.aeTitle };
}

/** A job route's answer: 202 with the job id, or (?wait=true) 200 with the finished job. */
export async function answerJob(reply: FastifyReply, waitForIt: boolean, started: StartedJob): Promise<FastifyReply> {
  if (!waitForIt) return reply.code(202).send({ job_id: started.job.id });
  const done = await started.done;
  return reply.code(200).send({ job_id: done.id, ...jobJson(done) });
}

function invalid(field: string, message: string): ArchiveError {
  return new ArchiveError('INVALID_PARAMETER', message, { field });
}

/** The body's keys as the SCU wants them; INVALID_PARAMETER (400) for a key missing at its level. */
export function retrieveRequestOf(body: RetrieveBody): NodeRetrieveRequest {
  const depth = retrieveLevels.indexOf(body.level);
  const model = body.level === 'PATIENT' ? 'patient' : (body.model ?? 'study');
  if (model === 'patient' && body.patient_id === undefined) throw invalid('patient_id', `patient_id is required ${body.level === 'PATIENT' ? 'at level PATIENT' : 'with model "patient"'}`);
  if (depth >= 1 && body.study_uid === undefined) throw invalid('study_uid', `study_uid is required at level ${body.level}`);
  if (depth >= 2 && body.series_uid === undefined) throw invalid('series_uid', `series_uid is required at level ${body.level}`);
  if (depth >= 3 && body.sop_uids === undefined) throw invalid('sop_uids', 'sop_uids is required at level IMAGE');
  if (body.patient_id !== undefined && body.patient_id.includes('\\')) throw invalid('patient_id', 'patient_id must not contain a backslash');
  // PatientID is LO: no control characters (the request is stored with the job, as jsonb on PostgreSQL).
  if (body.patient_id !== undefined) checkText(body.patient_id, 'patient_id');
  return {
    level: body.level,
    model,
    ...(body.patient_id !== undefined && model === 'patient' ? { patientId: body.patient_id } : {}),
    ...(depth >= 1 && body.study_uid !== undefined ? { studyUid: body.study_uid } : {}),
    ...(depth >= 2 && body.series_uid !== undefined ? { seriesUid: body.series_uid } : {}),
    ...(depth >= 3 && body.sop_uids !== undefined ? { sopUids: body.sop_uids } : {}),
  };
}

/** The request stored with the job (what the caller asked for, in the API's words). */
function jobRequestOf(node: NodeRecord, body: RetrieveBody, extra: Record<string, string> = {}): JsonObject {
  return {
    ae_title: node.aeTitle,
    level: body.level,
    ...(body.model !== undefined ? { model: body.model } : {}),
    ...(body.patient_id !== undefined ? { patient_id: body.patient_id } : {}),
    ...(body.study_uid !== undefined ? { study_uid: body.study_uid } : {}),
    ...(body.series_uid !== undefined ? { series_uid: body.series_uid } : {}),
    ...(body.sop_uids !== undefined ? { sop_uids: body.sop_uids } : {}),
    ...extra,
  };
}

function counters(c: NodeRetrieveCounts): { remaining?: number; completed: number; failed: number; warning: number } {
  return { ...(c.remaining !== undefined ? { remaining: c.remaining } : {}), completed: c.completed, failed: c.failed, warning: c.warning };
}

/**
 * Runs one retrieve inside a job: each pending response sets the job's counters, the final one
 * sets them and appends the failed UIDs. A failure status fails the job (after recording the counts
 * the node reported with it).
 */
export async function runRetrieve(run: JobRunContext, call: (onProgress: (p: NodeRetrieveCounts) => void) => Promise<NodeRetrieveResult>): Promise<void> {
  // Only the latest report is held (the job service writes them in order and coalesces them): a
  // node may send pending responses for as long as it likes, one promise each would pile up.
  let reported: Promise<void> = Promise.resolve();
  let reportFailure: { err: unknown } | undefined;
  const onProgress = (p: NodeRetrieveCounts): void => {
    reported = run.progress({ set: counters(p) }).catch((err: unknown) => {
      reportFailure ??= { err };
    });
  };
  try {
    const r = await call(onProgress);
    await reported;
    if (reportFailure) throw reportFailure.err;
    await run.progress({ set: counters(r), ...(r.failedUids.length > 0 ? { failedUids: r.failedUids } : {}) });
  } catch (err) {
    await reported;
    const details = (err as { details?: Record<string, unknown> } | null)?.details;
    if (details && typeof details['completed'] === 'number') {
      const failedUids = Array.isArray(details['failedUids']) ? details['failedUids'].filter((u): u is string => typeof u === 'string') : [];
      await run.progress({
        set: counters({
          ...(typeof details['remaining'] === 'number' ? { remaining: details['remaining'] } : {}),
          completed: details['completed'],
          failed: typeof details['failed'] === 'number' ? details['failed'] : 0,
          warning: typeof details['warning'] === 'number' ? details['warning'] : 0,
        }),
        ...(failedUids.length > 0 ? { failedUids } : {}),
      });
    }
    throw err;
  }
}

export function registerNodeRetrieveRoutes(app: FastifyInstance, deps: NodeRetrieveDeps): void {
  const { nodes, scu, jobs, archive } = deps;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.post('/api/nodes/:ae_title/move', {
    schema: {
      tags: ['nodes'],
      operationId: 'moveFromNode',
      summary: 'C-MOVE a patient, study, series or instances from a registered node to a destination (job)',
      description:
        'Starts a job (GET /api/jobs/{id}: remaining, completed, failed, warning as the node reports them; failed_uids from its Failed SOP Instance UID List). 202 with the job id; with ?wait=true, 200 with the finished job. The destination defaults to our own AE title (the node must know it). A node that cannot be reached or answers with a failure status (e.g. 0xa801, move destination unknown) fails the job; DELETE /api/jobs/{id} sends C-CANCEL.',
      params: actionParams,
      querystring: waitQuery,
      body: moveBodySchema,
      response: { 200: jobDoneSchema, 202: jobAcceptedSchema, ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    const ctx = callContext(request, 'rest');
    const node = await nodes.get(ctx, request.params.ae_title);
    const b = request.body;
    const retrieve = retrieveRequestOf(b);
    const destination = normaliseAeTitle(b.destination ?? scu.callingAe, 'destination');
    const target = targetOf(node);
    const started = await jobs.startJob(
      ctx,
      'move',
      jobRequestOf(node, b, { destination }),
      (run) => runRetrieve(run, (onProgress) => scu.move(target, retrieve, { destination, signal: run.signal, onProgress })),
      b.study_uid !== undefined ? { studyUid: b.study_uid } : undefined,
    );
    return answerJob(reply, request.query.wait === 'true', started);
  });

  r.post('/api/nodes/:ae_title/get', {
    schema: {
      tags: ['nodes'],
      operationId: 'getFromNode',
      summary: 'C-GET a patient, study, series or instances from a registered node into this archive (job)',
      description:
        'Starts a job like /move; the instances the node sends on the association are stored in this archive as received (behind a File Meta we build), each answered with the C-STORE status of its ingest. A C-FIND at IMAGE level on the node first finds the SOP classes that will come, so that the C-GET proposes for each its native context and one context per compressed transfer syntax (compressed instances then arrive unchanged); without an answer, a default list of storage contexts. At STUDY, SERIES and IMAGE level an instance of another study is refused (A901). DELETE /api/jobs/{id} sends C-CANCEL.',
      params: actionParams,
      querystring: waitQuery,
      body: getBodySchema,
      response: { 200: jobDoneSchema, 202: jobAcceptedSchema, ...errorResponses(400, 404) },
    },
  }, async (request, reply) => {
    const ctx = callContext(request, 'rest');
    const node = await nodes.get(ctx, request.params.ae_title);
    const b = request.body;
    const retrieve = retrieveRequestOf(b);
    const target = targetOf(node);
    const ingestCtx: CallContext = { principal: ctx.principal, origin: { ...ctx.origin, callingAe: node.aeTitle, calledAe: scu.callingAe } };
    const expectedStudyUid = retrieve.level === 'PATIENT' ? undefined : retrieve.studyUid;
    const sink = (instance: NodeRetrievedInstance): Promise<IngestOutcome> =>
      archive.ingest(ingestCtx, {
        body: instance.part10,
        // As the C-STORE SCP: the data set must name the SOP Instance the C-STORE-RQ announced,
        // and hold no File Meta of its own behind the one built for it.
        expectedIdentity: { sopClassUid: instance.sopClassUid, sopInstanceUid: instance.sopInstanceUid },
        builtFileMeta: true,
        ...(expectedStudyUid !== undefined ? { expectedStudyUid } : {}),
      });
    const started = await jobs.startJob(
      ctx,
      'get',
      jobRequestOf(node, b),
      (run) =>
        runRetrieve(run, async (onProgress) => {
          // A C-FIND first: the SOP classes that will come, each with a context per compressed
          // syntax (the SCP accepts one syntax per context); the default list if it finds nothing.
          const plan = scu.planGet ? await scu.planGet(target, retrieve, { signal: run.signal }) : {};
          return scu.get(target, retrieve, { sink, signal: run.signal, onProgress, ...(plan.storageContexts ? { storageContexts: plan.storageContexts } : {}) });
        }),
      b.study_uid !== undefined ? { studyUid: b.study_uid } : undefined,
    );
    return answerJob(reply, request.query.wait === 'true', started);
  });
}
