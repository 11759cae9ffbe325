/**
 * Query/Retrieve GET SCP (PS3.4 C.4.3), Study Root and Patient Root, at every level. The identifier
 * selects instances exactly as C-FIND/QIDO-RS would match them (scp/retrieve.ts); each goes back to
 * the requester as a C-STORE-RQ on the same association, on a storage context it proposed and for
 * which it accepted the SCP role: the stored data set bytes unchanged when that context's transfer
 * syntax is the stored one, else re-encoded on the fly between native syntaxes (dicom/reencode.ts),
 * else the sub-operation fails (no transcoding of compressed syntaxes). Bytes stream from the blob
 * store with the socket's backpressure. A pending response follows each sub-operation; C-CANCEL
 * lets the one in flight finish and ends with FE00.
 */
import type { Archive } from '../../archive/archive.js';
import { canReencode, reencodeDataSet } from '../../dicom/reencode.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../dicom/transfer-syntax.js';
import type { AcceptedContext } from '../acse/negotiate.js';
import { CommandField, DATA_SET_PRESENT, Priority, type CommandSet } from '../message/command.js';
import { Status, storeOutcomeOf } from '../message/status.js';
import { openPart10, type OpenedPart10 } from '../scu/part10.js';
import type { OperationContext } from './context.js';
import {
  planAndSelect,
  retrieveResponse,
  RetrieveStatus,
  SubOperations,
  type GetHandler,
  type GetIo,
  type RetrieveInstance,
  type RetrieveResponse,
  type SubOperationOutcome,
} from './retrieve.js';

export interface GetDeps {
  archive: Pick<Archive, 'query' | 'locate' | 'openInstance' | 'settings'>;
}

/**
 * The context a data set in `ts` goes out on: one that accepted `ts` itself (bytes unchanged), else
 * one whose syntax it can be re-encoded to (Explicit VR LE first, then Implicit VR LE, then any).
 */
export function chooseStorageContext(contexts: readonly AcceptedContext[], sopClassUid: string, ts: string): AcceptedContext | undefined {
  const candidates = contexts.filter((c) => c.abstractSyntax === sopClassUid);
  const exact = candidates.find((c) => c.transferSyntax === ts);
  if (exact) return exact;
  const order = (c: AcceptedContext): number => (c.transferSyntax === EXPLICIT_VR_LE ? 0 : c.transferSyntax === IMPLICIT_VR_LE ? 1 : 2);
  return candidates.filter((c) => canReencode(ts, c.transferSyntax)).sort((a, b) => order(a) - order(b))[0];
}

export function createGetHandler(deps: GetDeps): GetHandler {
  const { archive } = deps;

  return async function* get(ctx: OperationContext, req: CommandSet, identifier: Buffer, io: GetIo): AsyncGenerator<RetrieveResponse> {
    const started = Date.now();
    const respond = (status: number, o: Parameters<typeof retrieveResponse>[4] = {}): RetrieveResponse => retrieveResponse(CommandField.C_GET_RSP, req, ctx, status, o);
    const log = (status: number, extra: Record<string, unknown> = {}): void => {
      ctx.logger.info({ callingAe: ctx.callingAe, sopClassUid: ctx.presentation.abstractSyntax, status: status.toString(16).padStart(4, '0'), durationMs: Date.now() - started, ...extra }, 'C-GET');
    };

    if (req.affectedSopClassUid !== undefined && req.affectedSopClassUid !== ctx.presentation.abstractSyntax) {
      log(RetrieveStatus.SOP_CLASS_NOT_SUPPORTED);
      yield respond(RetrieveStatus.SOP_CLASS_NOT_SUPPORTED, { errorComment: 'Affected SOP Class differs from the presentation context' });
      return;
    }
    const selected = await planAndSelect(archive, ctx, identifier, io.ended, 'C-GET');
    if (!selected.ok) {
      log(selected.status, selected.level !== undefined ? { queryLevel: selected.level } : {});
      yield respond(selected.status, { errorComment: selected.errorComment, ...(selected.offending !== undefined ? { offending: selected.offending } : {}) });
      return;
    }
    const { instances } = selected;
    if (io.ended.aborted) return;

    const sub = new SubOperations(instances.length);
    let bytes = 0;
    let reencoded = 0;
    for (const row of instances) {
      if (io.cancelled.aborted || io.ended.aborted) break;
      const r = await storeOne(row);
      sub.record(r, row.sopUid);
      if (io.ended.aborted) return;
      if (sub.remaining > 0) yield respond(RetrieveStatus.PENDING, { counts: sub });
    }
    if (io.ended.aborted) return;
    const cancelled = io.cancelled.aborted && sub.remaining > 0;
    const status = sub.finalStatus(cancelled);
    log(status, { queryLevel: selected.level, total: sub.total, completed: sub.completed, failed: sub.failed, warning: sub.warning, reencoded, bytes });
    yield respond(status, { counts: sub, remaining: cancelled });

    /** One sub-operation: a failure before anything is sent fails it alone; a broken association ends the C-GET. */
    async function storeOne(row: RetrieveInstance): Promise<SubOperationOutcome> {
      const planned = chooseStorageContext(io.storageContexts, row.sopClassUid, row.transferSyntaxUid);
      if (planned === undefined) {
        ctx.logger.debug({ callingAe: ctx.callingAe, sopInstanceUid: row.sopUid, sopClassUid: row.sopClassUid, transferSyntax: row.transferSyntaxUid }, 'C-GET sub-operation: no usable storage context');
        return 'failure';
      }
      let opened: OpenedPart10;
      try {
        opened = await openPart10(await archive.openInstance(ctx.call, row));
      } catch (err) {
        ctx.logger.error({ callingAe: ctx.callingAe, sopInstanceUid: row.sopUid, err: err instanceof Error ? err.message : String(err) }, 'C-GET sub-operation: stored instance unreadable');
        return 'failure';
      }
      try {
        // The File Meta of the blob is the truth about its bytes.
        const from = opened.meta.transferSyntaxUid;
        const target = from === row.transferSyntaxUid ? planned : chooseStorageContext(io.storageContexts, row.sopClassUid, from);
        if (target === undefined) return 'failure';
        const recode = target.transferSyntax !== from;
        if (recode) reencoded++;
        let sent = 0;
        async function* counted(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
          for await (const chunk of source) {
            sent += chunk.length;
            yield chunk;
          }
        }
        const dataSet = counted(recode ? reencodeDataSet(opened.dataset, from, target.transferSyntax) : opened.dataset);
        const rsp = await io.store(target.id, {
          commandField: CommandField.C_STORE_RQ,
          commandDataSetType: DATA_SET_PRESENT,
          affectedSopClassUid: row.sopClassUid,
          affectedSopInstanceUid: row.sopUid,
          messageId: io.nextMessageId(),
          priority: req.priority ?? Priority.MEDIUM,
        }, dataSet);
        bytes += sent;
        return storeOutcomeOf(rsp.status ?? Status.PROCESSING_FAILURE);
      } finally {
        await opened.close().catch(() => {});
      }
    }
  };
}
