/**
 * Query/Retrieve MOVE SCP (PS3.4 C.4.2), Study Root and Patient Root, at every level. The Move
 * Destination must be a registered node with move_destination (else A801, no sub-operations). The
 * identifier selects instances exactly as C-FIND/QIDO-RS would match them (scp/retrieve.ts); they
 * go to the destination over one association of our C-STORE SCU (scu/store.ts: stored bytes
 * unchanged, else re-encoded between native syntaxes, else that sub-operation fails), each C-STORE-RQ
 * naming the requester as Move Originator. A pending response follows each sub-operation; C-CANCEL
 * lets the one in flight finish and ends with FE00.
 */
import type { Archive } from '../../archive/archive.js';
import type { CallContext } from '../../archive/context.js';
import { SYSTEM } from '../../archive/origin.js';
import { CommandField, type CommandSet } from '../message/command.js';
import { storeInstances, type StoreDeps, type StoreItem, type StoreProgress, type StoreResult } from '../scu/store.js';
import type { OperationContext } from './context.js';
import { loggableError } from '../../util/loggable-error.js';
import {
  planAndSelect,
  retrieveFailure,
  retrieveResponse,
  RetrieveStatus,
  SubOperations,
  type MoveHandler,
  type RetrieveResponse,
  type RetrieveSignals,
} from './retrieve.js';

/** A registered node as far as a move needs it (archive/nodes.ts NodeRecord). */
export interface MoveDestination {
  aeTitle: string;
  host: string;
  port: number;
  moveDestination: boolean;
}

export interface MoveDeps {
  archive: Pick<Archive, 'query' | 'locate' | 'openInstance' | 'settings'>;
  /** The node registry (archive/nodes.ts `find`). */
  destinations: { find(ctx: CallContext, aeTitle: string): Promise<MoveDestination | undefined> };
  /** The C-STORE SCU of the sub-operations: callingAe = server.ae_title, timeout, max PDU length, logger. */
  scu: StoreDeps;
}

export function createMoveHandler(deps: MoveDeps): MoveHandler {
  const { archive } = deps;

  return async function* move(ctx: OperationContext, req: CommandSet, identifier: Buffer, signals: RetrieveSignals): AsyncGenerator<RetrieveResponse> {
    const started = Date.now();
    const respond = (status: number, o: Parameters<typeof retrieveResponse>[4] = {}): RetrieveResponse => retrieveResponse(CommandField.C_MOVE_RSP, req, ctx, status, o);
    const destinationAe = (req.moveDestination ?? '').trim();
    const log = (status: number, extra: Record<string, unknown> = {}): void => {
      ctx.logger.info(
        { callingAe: ctx.callingAe, destination: destinationAe, sopClassUid: ctx.presentation.abstractSyntax, status: status.toString(16).padStart(4, '0'), durationMs: Date.now() - started, ...extra },
        'C-MOVE',
      );
    };

    if (req.affectedSopClassUid !== undefined && req.affectedSopClassUid !== ctx.presentation.abstractSyntax) {
      log(RetrieveStatus.SOP_CLASS_NOT_SUPPORTED);
      yield respond(RetrieveStatus.SOP_CLASS_NOT_SUPPORTED, { errorComment: 'Affected SOP Class differs from the presentation context' });
      return;
    }

    let destination: MoveDestination | undefined;
    try {
      destination = destinationAe === '' ? undefined : await deps.destinations.find({ principal: SYSTEM, origin: ctx.call.origin }, destinationAe);
    } catch (err) {
      const f = retrieveFailure(err);
      ctx.logger.error({ callingAe: ctx.callingAe, destination: destinationAe, err: loggableError(err) }, 'C-MOVE destination lookup failed');
      log(f.status);
      yield respond(f.status, { errorComment: 'move destination lookup failed' });
      return;
    }
    if (destination === undefined || !destination.moveDestination) {
      log(RetrieveStatus.MOVE_DESTINATION_UNKNOWN);
      yield respond(RetrieveStatus.MOVE_DESTINATION_UNKNOWN, { errorComment: 'Move Destination unknown' });
      return;
    }

    const selected = await planAndSelect(archive, ctx, identifier, signals.ended, 'C-MOVE');
    if (!selected.ok) {
      log(selected.status, selected.level !== undefined ? { queryLevel: selected.level } : {});
      yield respond(selected.status, { errorComment: selected.errorComment, ...(selected.offending !== undefined ? { offending: selected.offending } : {}) });
      return;
    }
    const { instances } = selected;
    if (signals.ended.aborted) return;

    const sub = new SubOperations(instances.length);
    const done = (cancelled: boolean): RetrieveResponse => {
      const status = sub.finalStatus(cancelled);
      log(status, { queryLevel: selected.level, total: sub.total, completed: sub.completed, failed: sub.failed, warning: sub.warning });
      return respond(status, { counts: sub, remaining: cancelled });
    };
    if (instances.length === 0 || signals.cancelled.aborted) {
      yield done(signals.cancelled.aborted);
      return;
    }

    const items: StoreItem[] = instances.map((row) => ({
      sopClassUid: row.sopClassUid,
      sopInstanceUid: row.sopUid,
      transferSyntaxUid: row.transferSyntaxUid,
      label: row.sopUid,
      size: row.size,
      open: async () => archive.openInstance(ctx.call, row),
    }));

    // storeInstances reports each finished sub-operation through a callback; the pending responses
    // are sent from here, in order, while the next sub-operation is already under way.
    const finished: StoreProgress[] = [];
    let wake: (() => void) | undefined;
    let outcome: { result: StoreResult } | { error: unknown } | undefined;
    // Set when this generator is closed early (its responses can no longer be sent).
    const abandoned = new AbortController();
    const run = storeInstances(deps.scu, { host: destination.host, port: destination.port, calledAe: destination.aeTitle }, items, {
      signal: AbortSignal.any([signals.ended, abandoned.signal]),
      stopSignal: signals.cancelled,
      ...(req.messageId !== undefined ? { moveOriginator: { aeTitle: ctx.callingAe, messageId: req.messageId } } : {}),
      onProgress: (p) => {
        if (p.result === undefined) return;
        finished.push(p);
        wake?.();
      },
    }).then(
      (result) => {
        outcome = { result };
        wake?.();
      },
      (error: unknown) => {
        outcome = { error };
        wake?.();
      },
    );

    try {
      for (;;) {
        const p = finished.shift();
        if (p !== undefined) {
          const r = p.result;
          if (r !== undefined) sub.record(r.outcome, r.sopInstanceUid ?? r.label);
          if (sub.remaining > 0 && !signals.ended.aborted) yield respond(RetrieveStatus.PENDING, { counts: sub });
          continue;
        }
        if (outcome !== undefined) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      // The consumer stopped early (the association failed): stop the sub-operations, let them wind down.
      if (outcome === undefined) abandoned.abort();
      await run;
    }
    if (signals.ended.aborted) return;

    if ('error' in outcome) {
      // Not even the first association to the destination could be opened: nothing was sent.
      const message = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
      ctx.logger.warn({ callingAe: ctx.callingAe, destination: destination.aeTitle, err: message }, 'C-MOVE destination unreachable');
      for (const row of instances.slice(sub.completed + sub.failed + sub.warning)) sub.record('failure', row.sopUid);
      const status = RetrieveStatus.UNABLE_TO_PERFORM_SUBOPERATIONS;
      log(status, { queryLevel: selected.level, total: sub.total, failed: sub.failed });
      yield respond(status, { counts: sub, errorComment: `cannot store to ${destination.aeTitle}` });
      return;
    }
    yield done(outcome.result.cancelled);
  };
}
