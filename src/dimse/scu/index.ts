/**
 * The DIMSE service-class user (SPEC §4): C-ECHO, C-STORE, C-FIND, C-MOVE and C-GET against a
 * remote AE, for the CLI, the /api/nodes/{ae}/* routes (through the context main.ts builds) and
 * C-MOVE sub-operations. Each call opens its own association and closes it before it settles.
 */
import type { Logger } from '../../archive/context.js';
import { silentLogger } from '../../archive/context.js';
import { normaliseAeTitle } from '../../archive/nodes.js';
import type { DicomJsonDataset } from '../../dicom/types.js';
import { IMPLICIT_VR_LE, EXPLICIT_VR_LE } from '../../dicom/transfer-syntax.js';
import { VERIFICATION } from '../acse/sop-classes.js';
import { CommandField, NO_DATA_SET } from '../message/command.js';
import { Status } from '../message/status.js';
import { ScuAssociation, type ScuTarget } from './association.js';
import { ScuError } from './errors.js';
import { findDatasets, type FindRequest } from './find.js';
import { getInstances, planGetFromPeer, type GetOptions, type GetPlan, type GetResult } from './get.js';
import { moveInstances, type MoveOptions, type RetrieveRequest, type RetrieveResult } from './move.js';
import { storeInstances, type StoreOptions, type StoreResult, type StoreSource } from './store.js';

export type { ScuTarget } from './association.js';
export { ScuError, isScuError, type ScuErrorCode } from './errors.js';
export { FIND_LEVELS, type FindLevel, type FindModel, type FindRequest } from './find.js';
export type { StoreInstanceResult, StoreItem, StoreOptions, StoreOutcome, StoreProgress, StoreResult, StoreSource } from './store.js';
export { RETRIEVE_LEVELS, type MoveOptions, type RetrieveCounts, type RetrieveLevel, type RetrieveModel, type RetrieveOptions, type RetrieveProgress, type RetrieveRequest, type RetrieveResult } from './move.js';
export {
  DEFAULT_GET_STORAGE_CONTEXTS,
  MAX_STORAGE_CONTEXTS,
  planGetFromPeer,
  planGetStorageContexts,
  type GetContentClass,
  type GetOptions,
  type GetPlan,
  type GetPlanFind,
  type GetResult,
  type GetSink,
  type GetSinkOutcome,
  type RetrievedInstance,
  type RetrievedInstanceResult,
  type StorageContextSpec,
} from './get.js';

export interface ScuOptions {
  /** Our AE title (server.ae_title unless the caller says otherwise). */
  callingAe: string;
  logger?: Logger;
  /** server.dimse_timeout_secs: connect and negotiation, and the longest wait for the peer. Default 30. */
  timeoutSecs?: number;
  /** The Maximum Length Received we announce (server.max_pdu_length). Default 65536. */
  maxPduLength?: number;
}

export interface EchoResult {
  status: number;
  durationMs: number;
}

export interface Scu {
  readonly callingAe: string;
  /** C-ECHO; rejects with a ScuError unless the peer answers 0000. */
  echo(target: ScuTarget, options?: { signal?: AbortSignal }): Promise<EchoResult>;
  /** C-STORE of Part-10 files (paths) or items, over one association; per-instance outcomes. */
  store(target: ScuTarget, sources: readonly StoreSource[], options?: StoreOptions): Promise<StoreResult>;
  /** C-FIND: the matches as they arrive; stopping early sends C-CANCEL. */
  find(target: ScuTarget, request: FindRequest): AsyncIterable<DicomJsonDataset>;
  /**
   * C-MOVE to `options.destination` (default: callingAe). Pending counts go to onProgress; resolves
   * on Success, Warning (B000) or Cancel (FE00, after the signal sent C-CANCEL); any other final
   * status rejects with DIMSE_FAILURE (details: status, counts, failedUids).
   */
  move(target: ScuTarget, request: RetrieveRequest, options?: MoveOptions): Promise<RetrieveResult>;
  /** C-GET: like move, the instances streamed into `options.sink` over the same association. */
  get(target: ScuTarget, request: RetrieveRequest, options: GetOptions): Promise<GetResult>;
  /**
   * What to propose for a C-GET of `request`: a C-FIND (find) at IMAGE level on the same peer for
   * the SOP classes that will come, and their storage contexts (planGetFromPeer; pass
   * `storageContexts` to get). Never rejects: without an answer, no storageContexts (the default list).
   */
  planGet(target: ScuTarget, request: RetrieveRequest, options?: { signal?: AbortSignal; limit?: number }): Promise<GetPlan>;
}

function checkTarget(target: ScuTarget): ScuTarget {
  let calledAe: string;
  try {
    calledAe = normaliseAeTitle(target.calledAe, 'called AE title');
  } catch (err) {
    throw new ScuError('INVALID_REQUEST', err instanceof Error ? err.message : 'invalid called AE title');
  }
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) throw new ScuError('INVALID_REQUEST', 'port must be an integer from 1 to 65535');
  if (typeof target.host !== 'string' || target.host.trim() === '') throw new ScuError('INVALID_REQUEST', 'host must not be empty');
  return { host: target.host.trim(), port: target.port, calledAe };
}

export function createScu(options: ScuOptions): Scu {
  let callingAe: string;
  try {
    callingAe = normaliseAeTitle(options.callingAe, 'calling AE title');
  } catch (err) {
    throw new ScuError('INVALID_REQUEST', err instanceof Error ? err.message : 'invalid calling AE title');
  }
  const logger = options.logger ?? silentLogger;
  const deps = { callingAe, logger, timeoutMs: (options.timeoutSecs ?? 30) * 1000, maxPduLength: options.maxPduLength ?? 65536 };

  return {
    callingAe,

    async echo(rawTarget, echoOptions) {
      const target = checkTarget(rawTarget);
      const started = performance.now();
      const assoc = await ScuAssociation.open({
        ...deps,
        target,
        contexts: [{ id: 1, abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT_VR_LE, EXPLICIT_VR_LE] }],
        operation: 'C-ECHO',
        ...(echoOptions?.signal ? { signal: echoOptions.signal } : {}),
      });
      try {
        const ctx = assoc.contextFor(VERIFICATION);
        if (!ctx) throw new ScuError('NO_PRESENTATION_CONTEXT', `${target.calledAe} does not accept Verification`);
        const messageId = assoc.nextMessageId();
        await assoc.sendCommand(ctx.id, { commandField: CommandField.C_ECHO_RQ, commandDataSetType: NO_DATA_SET, affectedSopClassUid: VERIFICATION, messageId });
        const rsp = await assoc.receive();
        if (rsp.command.commandField !== CommandField.C_ECHO_RSP || rsp.command.messageIdBeingRespondedTo !== messageId) {
          throw new ScuError('PROTOCOL_ERROR', `unexpected message 0x${rsp.command.commandField.toString(16)} in answer to C-ECHO`);
        }
        const status = rsp.command.status ?? Status.PROCESSING_FAILURE;
        if (status !== Status.SUCCESS) throw new ScuError('DIMSE_FAILURE', `${target.calledAe} answered C-ECHO with status 0x${status.toString(16).padStart(4, '0')}`, { status });
        await assoc.release();
        return { status, durationMs: Math.round((performance.now() - started) * 10) / 10 };
      } catch (err) {
        await assoc.endAfter(err);
        throw err;
      }
    },

    async store(rawTarget, sources, storeOptions) {
      return storeInstances(deps, checkTarget(rawTarget), sources, storeOptions);
    },

    find(rawTarget, request) {
      const target = checkTarget(rawTarget);
      return findDatasets(deps, target, request);
    },

    async move(rawTarget, request, moveOptions) {
      return moveInstances(deps, checkTarget(rawTarget), request, moveOptions);
    },

    async get(rawTarget, request, getOptions) {
      return getInstances(deps, checkTarget(rawTarget), request, getOptions);
    },

    async planGet(rawTarget, request, planOptions) {
      let target: ScuTarget;
      try {
        target = checkTarget(rawTarget);
      } catch (err) {
        return { classes: [], fallback: err instanceof Error ? err.message : String(err) };
      }
      const plan = await planGetFromPeer((t, q) => findDatasets(deps, t, q), target, request, planOptions);
      if (plan.fallback !== undefined) logger.debug({ calledAe: target.calledAe, reason: plan.fallback }, 'C-GET: default storage contexts');
      else logger.debug({ calledAe: target.calledAe, classes: plan.classes.length, contexts: plan.storageContexts?.length }, 'C-GET: storage contexts from C-FIND');
      return plan;
    },
  };
}
