/**
 * One association accepted by the SCP: the service user of the upper layer. It admits or rejects
 * the association (acse/), then reassembles messages (message/) and runs each operation through
 * its thin handler (echo, store, find, move, get), one at a time, answering in order. C-CANCEL is
 * acted on as soon as it arrives. A C-GET sends its C-STORE-RQ sub-operations on this association
 * while it runs: their C-STORE-RSPs are routed back to it by Message ID Being Responded To. Each
 * association ends with one log line (no PHI).
 */
import type { Socket } from 'node:net';
import type { Archive } from '../../archive/archive.js';
import type { CallContext, Logger } from '../../archive/context.js';
import { ANONYMOUS, SYSTEM } from '../../archive/origin.js';
import { admit, type KnownNode } from '../acse/ae-filter.js';
import type { ServiceKind } from '../acse/sop-classes.js';
import { negotiate, type AcceptedContext, type NegotiationPolicy, type Negotiated } from '../acse/negotiate.js';
import { MessageAssembler, type IncomingMessage } from '../message/assembler.js';
import { CommandField, NO_DATA_SET, encodeCommandSet, type CommandSet } from '../message/command.js';
import { SendTimeSlice, fragmentPdus, sendDataSetPdus, sendPdus } from '../message/fragment.js';
import { Status, storeOutcomeOf } from '../message/status.js';
import { AbortReason, AbortSource, type AssociateRq } from '../pdu/types.js';
import { UpperLayer, type AbortIndication } from '../ul/association.js';
import { MAX_OTHER_PDU_LENGTH } from '../ul/framer.js';
import type { OperationContext } from './context.js';
import { handleEcho } from './echo.js';
import type { GetHandler, GetIo, MoveHandler, RetrieveSignals } from './retrieve.js';
import { handleStore } from './store.js';
import { loggableError } from '../../util/loggable-error.js';

export interface DimsePolicy extends NegotiationPolicy {
  /** server.ae_title */
  aeTitle: string;
  /** server.ae_whitelist_enabled */
  whitelist: boolean;
  /** server.max_associations */
  maxAssociations: number;
  /** server.dimse_timeout_secs: ARTIM and idle timeout */
  timeoutSecs: number;
}

export interface AcceptorDeps {
  archive: Archive;
  policy: DimsePolicy;
  /** The node registry (archive/nodes.ts): whitelist lookups. */
  findNode?: (ctx: CallContext, aeTitle: string) => Promise<KnownNode | undefined>;
  logger: Logger;
  /** Associations open besides this one. */
  otherAssociations(): number;
  /** C-FIND, when the find SCP is wired (absent: Q/R FIND contexts are refused with result 3). */
  find?: FindHandler;
  /** C-MOVE, when wired (scp/move.ts; absent: Q/R MOVE contexts are refused with result 3). */
  move?: MoveHandler;
  /** C-GET, when wired (scp/get.ts; absent: Q/R GET contexts are refused with result 3). */
  get?: GetHandler;
}

/** A C-FIND handler: responses to send, pending ones first, the final one last. */
export type FindHandler = (ctx: OperationContext, req: CommandSet, identifier: Buffer) => AsyncIterable<{ command: CommandSet; identifier?: Buffer }>;

type Ending = 'released' | 'aborted' | 'rejected' | 'closed';

type Response = { command: CommandSet; identifier?: Buffer };

/** Identifiers of C-FIND/C-MOVE/C-GET requests are small; a larger one is refused. */
const MAX_IDENTIFIER_LENGTH = 1024 * 1024;

/**
 * Requests not yet answered that an association may hold. We answer the asynchronous operations
 * window with 1/1 (or it is 1 by default, PS3.7 D.3.3.3): a peer that sends many more without
 * reading the responses is aborted instead of growing memory without bound.
 */
export const MAX_OUTSTANDING_OPERATIONS = 16;

export class Acceptor {
  readonly ul: UpperLayer;
  private readonly startedAt = Date.now();
  private readonly assembler: MessageAssembler;
  private negotiated: Negotiated | undefined;
  private rq: AssociateRq | undefined;
  private rejected = false;
  private work: Promise<void> = Promise.resolve();
  private busy = 0;
  private readonly running = new Map<number, AbortController>();
  private readonly ended = new AbortController();
  /** The DIMSE timeout's timer: runs while the association is established (see onIdleTimer). */
  private idle: NodeJS.Timeout | undefined;
  /** The last PDU received, operation started or ended, or read resumed (Date.now()). */
  private lastActivity = Date.now();
  /** The transport is paused because the data set being received is not read fast enough. */
  private dataPaused = false;
  private ending: Ending = 'closed';
  private endDetail: string | undefined;
  /** The peer sent A-RELEASE-RQ: it can send nothing more (PS3.8 Sta7), so no C-GET sub-operation can be answered. */
  private releaseRequested = false;
  /** C-STOREs answered with a warning (B000, B007) count in storeWarning, failures in storeFailed. */
  private readonly operations = { echo: 0, store: 0, storeWarning: 0, storeFailed: 0, find: 0, move: 0, get: 0, cancel: 0 };
  /** Sub-operations of this association's C-MOVEs and C-GETs, from their final responses. */
  private readonly subOperations = { completed: 0, failed: 0, warning: 0 };
  /** C-GET sub-operations waiting for their C-STORE-RSP, by Message ID. */
  private readonly awaitingResponse = new Map<number, { resolve: (c: CommandSet) => void; reject: (e: Error) => void }>();
  private subMessageId = 0;
  private readonly closedPromise: Promise<void>;
  private markClosed: () => void = () => {};

  constructor(private readonly deps: AcceptorDeps) {
    this.closedPromise = new Promise((resolve) => {
      this.markClosed = resolve;
    });
    const { policy } = deps;
    this.assembler = new MessageAssembler({
      message: (m) => this.onMessage(m),
      error: (detail) => this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, detail),
      pause: () => {
        this.dataPaused = true;
        this.ul.pause();
      },
      resume: () => {
        const was = this.dataPaused;
        this.dataPaused = false;
        this.ul.resume();
        if (was) this.touch();
      },
    });
    this.ul = new UpperLayer({
      role: 'acceptor',
      artimMs: policy.timeoutSecs * 1000,
      sendTimeoutMs: policy.timeoutSecs * 1000,
      limits: { maxPDataLength: policy.maxPduLength, maxOtherLength: MAX_OTHER_PDU_LENGTH },
      user: {
        associateIndication: (rq) =>
          void this.onAssociate(rq).catch((err: unknown) => {
            // Never an unhandled rejection (it would end the process): this association only.
            this.deps.logger.error({ callingAe: rq.callingAe, err: loggableError(err) }, 'association could not be answered');
            this.endDetail ??= 'association could not be answered';
            this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, 'association could not be answered');
          }),
        pData: (f) => {
          this.touch();
          this.assembler.fragment(f);
        },
        releaseIndication: () => {
          if (this.assembler.incomplete) {
            // No P-DATA may follow an A-RELEASE-RQ (PS3.8: P-DATA-TF in Sta8 is AA-8), so the
            // message in progress can never complete: waiting for it held the association (and
            // its max_associations slot) forever. Abort; a partial data set stores nothing.
            this.endDetail = 'A-RELEASE-RQ before the message in progress was complete';
            this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, this.endDetail);
            return;
          }
          if (this.awaitingResponse.size > 0) {
            // A C-GET sub-operation waits for its C-STORE-RSP, which can no longer come (PS3.8:
            // no P-DATA from the peer after its A-RELEASE-RQ): abort now, not after the DIMSE timeout.
            this.endDetail = 'A-RELEASE-RQ while a C-GET sub-operation awaited its C-STORE-RSP';
            this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, this.endDetail);
            return;
          }
          this.releaseRequested = true;
          this.ending = 'released';
          // Answer once the operations in progress have sent their responses (Sta8 allows P-DATA).
          void this.work.then(() => this.ul.releaseResponse());
        },
        abortIndication: (a) => this.onAbort(a),
        closed: () => this.onClosed(),
      },
    });
  }

  /** Resolves once the transport connection is closed. */
  get closed(): Promise<void> {
    return this.closedPromise;
  }

  get established(): boolean {
    return this.negotiated !== undefined;
  }

  attach(socket: Socket): void {
    this.ul.attach(socket);
  }

  /** Shutdown: A-ABORT now (the caller waited for the drain timeout first). */
  abort(detail: string): void {
    this.ul.abort(undefined, detail);
  }

  private callContext(): CallContext {
    const rq = this.rq;
    const remoteIp = this.ul.remoteAddress;
    return {
      principal: ANONYMOUS,
      origin: {
        protocol: 'dimse',
        ...(remoteIp !== undefined ? { remoteIp } : {}),
        ...(rq ? { callingAe: rq.callingAe, calledAe: rq.calledAe } : {}),
      },
    };
  }

  private async onAssociate(rq: AssociateRq): Promise<void> {
    this.rq = rq;
    const { policy } = this.deps;
    const findNode = this.deps.findNode;
    const lookupCtx: CallContext = { principal: SYSTEM, origin: this.callContext().origin };
    let admission;
    try {
      admission = await admit(rq, {
        aeTitle: policy.aeTitle,
        whitelist: policy.whitelist,
        ...(findNode ? { findNode: (ae: string) => findNode(lookupCtx, ae) } : {}),
        maxAssociations: policy.maxAssociations,
        activeAssociations: this.deps.otherAssociations(),
      });
    } catch (err) {
      this.deps.logger.error({ callingAe: rq.callingAe, err: loggableError(err) }, 'association admission failed');
      admission = { ok: false as const, reject: { result: 2 as const, source: 1 as const, reason: 1 }, detail: 'admission check failed' };
    }
    if (!admission.ok) {
      this.rejected = true;
      this.ending = 'rejected';
      this.endDetail = admission.detail;
      this.ul.reject(admission.reject);
      return;
    }
    const services = new Set<ServiceKind>(['verification', 'storage']);
    if (this.deps.find) services.add('find');
    if (this.deps.move) services.add('move');
    if (this.deps.get) services.add('get');
    const negotiated = negotiate(rq, policy, admission.permissions, services);
    this.negotiated = negotiated;
    this.ul.accept(negotiated.ac);
    this.touch();
  }

  /** Activity on the association: the DIMSE timeout counts from now (one timer, re-armed lazily). */
  private touch(): void {
    this.lastActivity = Date.now();
    if (this.idle === undefined && !this.ended.signal.aborted) this.armIdle(this.deps.policy.timeoutSecs * 1000);
  }

  private armIdle(ms: number): void {
    this.idle = setTimeout(() => this.onIdleTimer(), ms);
    this.idle.unref();
  }

  /**
   * The DIMSE timeout (server.dimse_timeout_secs): A-ABORT when the association waits for its
   * peer that long — no PDU and no operation at all (idle), or a data set announced by a command
   * whose bytes stop coming (while we read: a transport we paused ourselves does not count). An
   * operation that is working on our side (a long query, C-MOVE sub-operations) is not idle; a
   * peer that stops reading our responses is caught by the upper layer's send timeout.
   */
  private onIdleTimer(): void {
    this.idle = undefined;
    if (this.ended.signal.aborted) return;
    const timeoutMs = this.deps.policy.timeoutSecs * 1000;
    const waited = Date.now() - this.lastActivity;
    if (waited < timeoutMs) return this.armIdle(timeoutMs - waited);
    if (this.ul.state !== 'Sta6') return this.armIdle(timeoutMs);
    const dataStalled = this.assembler.receivingDataSet && !this.dataPaused;
    if (this.busy > 0 && !dataStalled) return this.armIdle(timeoutMs);
    const detail = this.busy === 0 ? 'idle timeout' : 'no data set bytes within the DIMSE timeout';
    this.endDetail = detail;
    this.ul.abort(undefined, detail);
  }

  private onMessage(msg: IncomingMessage): void {
    const { command } = msg;
    if (command.commandField === CommandField.C_CANCEL_RQ) {
      this.operations.cancel++;
      const id = command.messageIdBeingRespondedTo;
      if (id !== undefined) this.running.get(id)?.abort();
      return;
    }
    const presentation = this.negotiated?.contexts.get(msg.contextId);
    if (presentation === undefined) {
      // PS3.7 9.1: a message on a context that was not accepted is a protocol error.
      msg.dataSet?.destroy();
      this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.UNEXPECTED_PDU_PARAMETER }, 'message on a presentation context not accepted');
      return;
    }
    if ((command.commandField & 0x8000) !== 0) {
      this.onResponse(msg);
      return;
    }
    if (command.messageId === undefined) {
      // Message ID (0000,0110) is required in every request (PS3.7 9.3): without it no response
      // can name the request it answers, so the association cannot go on.
      msg.dataSet?.destroy();
      this.endDetail = 'request without Message ID (0000,0110)';
      this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, this.endDetail);
      return;
    }
    if (this.busy >= MAX_OUTSTANDING_OPERATIONS) {
      msg.dataSet?.destroy();
      this.endDetail = `more than ${MAX_OUTSTANDING_OPERATIONS} operations outstanding (the negotiated window is 1)`;
      this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, this.endDetail);
      return;
    }
    const controller = new AbortController();
    // A Message ID already in use by an operation still running: 0210 duplicate invocation
    // (PS3.7 C.5.1), without performing it, so that a C-CANCEL still names one operation.
    const duplicate = this.running.has(command.messageId);
    if (!duplicate) this.running.set(command.messageId, controller);
    this.busy++;
    this.touch();
    // The combined signal only when an operation reads it (C-FIND): AbortSignal.any costs ~10 µs
    // and leaves a dependant on the association's long-lived signal for every C-STORE otherwise.
    const ended = this.ended.signal;
    let signal: AbortSignal | undefined;
    const ctx: OperationContext = {
      call: this.callContext(),
      callingAe: this.rq?.callingAe ?? '',
      presentation,
      get signal() {
        signal ??= AbortSignal.any([controller.signal, ended]);
        return signal;
      },
      logger: this.deps.logger,
    };
    const signals: RetrieveSignals = { cancelled: controller.signal, ended: this.ended.signal };
    // A store starts reading its data set at once (it is arriving now); the response waits its turn.
    const result = duplicate ? this.refuseDuplicate(msg) : this.perform(ctx, msg, presentation, signals);
    result.catch(() => {}); // observed through the chain below; this only marks it handled early
    this.work = this.work
      .then(() => result)
      .then(async (responses) => {
        for await (const r of responses) {
          this.countSubOperations(r.command);
          await this.send(msg.contextId, r.command, r.identifier);
        }
      })
      .catch((err: unknown) => {
        if (!this.ended.signal.aborted) {
          this.deps.logger.error({ callingAe: ctx.callingAe, err: loggableError(err) }, 'DIMSE operation failed');
          this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, 'operation failed');
        }
      })
      .finally(() => {
        if (command.messageId !== undefined && this.running.get(command.messageId) === controller) this.running.delete(command.messageId);
        this.busy--;
        this.touch();
      });
  }

  private async refuseDuplicate(msg: IncomingMessage): Promise<AsyncIterable<Response>> {
    msg.dataSet?.resume();
    return single(refusal(msg.command, Status.DUPLICATE_INVOCATION, 'Message ID in use by an operation still running'));
  }

  /** A response from the peer: only the C-STORE-RSP of a C-GET sub-operation is expected. */
  private onResponse(msg: IncomingMessage): void {
    msg.dataSet?.resume();
    const { command } = msg;
    const id = command.messageIdBeingRespondedTo;
    const waiter = command.commandField === CommandField.C_STORE_RSP && id !== undefined ? this.awaitingResponse.get(id) : undefined;
    if (waiter === undefined) {
      this.deps.logger.debug({ callingAe: this.rq?.callingAe, commandField: command.commandField, messageIdBeingRespondedTo: id }, 'unexpected DIMSE response ignored');
      return;
    }
    this.awaitingResponse.delete(id as number);
    waiter.resolve(command);
  }

  /** Final C-MOVE/C-GET responses carry the sub-operation counts: summed for the log line. */
  private countSubOperations(command: CommandSet): void {
    if (command.commandField !== CommandField.C_MOVE_RSP && command.commandField !== CommandField.C_GET_RSP) return;
    if (command.status === Status.PENDING) return;
    this.subOperations.completed += command.numberOfCompletedSuboperations ?? 0;
    this.subOperations.failed += command.numberOfFailedSuboperations ?? 0;
    this.subOperations.warning += command.numberOfWarningSuboperations ?? 0;
  }

  private async perform(ctx: OperationContext, msg: IncomingMessage, presentation: AcceptedContext, signals: RetrieveSignals): Promise<AsyncIterable<Response>> {
    const { command } = msg;
    switch (command.commandField) {
      case CommandField.C_ECHO_RQ:
        this.operations.echo++;
        // A C-ECHO-RQ has no data set (PS3.7 9.3.5); one sent anyway is read and discarded.
        msg.dataSet?.resume();
        return single(handleEcho(command));
      case CommandField.C_STORE_RQ: {
        if (presentation.kind !== 'storage') break;
        if (msg.dataSet === undefined) return single(refusal(command, Status.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, 'no data set'));
        this.operations.store++;
        if (presentation.requestorScu === false) {
          // Accepted for the requestor's C-GET only (SCP role): it may not store here.
          msg.dataSet.resume();
          this.operations.storeFailed++;
          return single(refusal(command, Status.NOT_AUTHORIZED, 'storage SCU role not accepted on this context'));
        }
        const r = await handleStore(this.deps.archive, ctx, command, msg.dataSet);
        const outcome = storeOutcomeOf(r.response.status ?? Status.PROCESSING_FAILURE);
        if (outcome === 'warning') this.operations.storeWarning++;
        else if (outcome === 'failure') this.operations.storeFailed++;
        ctx.logger.debug({ callingAe: ctx.callingAe, sopInstanceUid: r.sopInstanceUid, status: r.response.status, bytes: r.bytes }, 'C-STORE');
        return single(r.response);
      }
      case CommandField.C_FIND_RQ: {
        if (presentation.kind !== 'find' || this.deps.find === undefined) break;
        if (msg.dataSet === undefined) return single(refusal(command, Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, 'no identifier'));
        this.operations.find++;
        const identifier = await collect(msg.dataSet, MAX_IDENTIFIER_LENGTH);
        return this.deps.find(ctx, command, identifier);
      }
      case CommandField.C_MOVE_RQ: {
        if (presentation.kind !== 'move' || this.deps.move === undefined) break;
        if (msg.dataSet === undefined) return single(refusal(command, Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, 'no identifier'));
        this.operations.move++;
        const identifier = await collect(msg.dataSet, MAX_IDENTIFIER_LENGTH);
        return this.deps.move(ctx, command, identifier, signals);
      }
      case CommandField.C_GET_RQ: {
        if (presentation.kind !== 'get' || this.deps.get === undefined) break;
        if (msg.dataSet === undefined) return single(refusal(command, Status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, 'no identifier'));
        this.operations.get++;
        const identifier = await collect(msg.dataSet, MAX_IDENTIFIER_LENGTH);
        return this.deps.get(ctx, command, identifier, this.getIo(signals));
      }
    }
    if (msg.dataSet) msg.dataSet.resume();
    return single(refusal(command, Status.UNRECOGNIZED_OPERATION));
  }

  private async send(contextId: number, command: CommandSet, dataSet?: Buffer): Promise<void> {
    const max = this.negotiated?.peerMaxLength ?? 0;
    // One time slice for the whole message: the event loop gets a turn during a long one (ADR 0023).
    const slice = new SendTimeSlice();
    const sendPData = (pdu: Buffer): Promise<void> => this.ul.sendPData(pdu);
    await sendPdus(fragmentPdus(contextId, true, encodeCommandSet(command), max), sendPData, slice);
    if (dataSet !== undefined) await sendPdus(fragmentPdus(contextId, false, dataSet, max), sendPData, slice);
  }

  /** What a C-GET handler may do on this association: send C-STORE-RQs on the storage contexts the requestor serves. */
  private getIo(signals: RetrieveSignals): GetIo {
    const storageContexts = [...(this.negotiated?.contexts.values() ?? [])].filter((c) => c.kind === 'storage' && c.requestorScp === true);
    return {
      ...signals,
      storageContexts,
      nextMessageId: () => {
        this.subMessageId = (this.subMessageId % 0xffff) + 1;
        return this.subMessageId;
      },
      store: (contextId, command, dataSet) => this.subStore(contextId, command, dataSet),
    };
  }

  /**
   * A C-STORE-RQ of a C-GET sub-operation, its data set streamed, then its C-STORE-RSP (routed by
   * onResponse). A data set that cannot be completed, or no response within the DIMSE timeout,
   * leaves the association unusable: it is aborted.
   */
  private async subStore(contextId: number, command: CommandSet, dataSet: AsyncIterable<Uint8Array>): Promise<CommandSet> {
    const id = command.messageId;
    if (id === undefined) throw new Error('C-STORE-RQ without Message ID');
    if (this.ended.signal.aborted) throw new Error('association ended');
    if (this.releaseRequested) {
      // The C-GET goes on after the peer's A-RELEASE-RQ: its next sub-operation could get no response.
      this.endDetail ??= 'A-RELEASE-RQ during a C-GET';
      this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, 'A-RELEASE-RQ during a C-GET');
      throw new Error('the peer released the association during the C-GET');
    }
    let settle: { resolve: (c: CommandSet) => void; reject: (e: Error) => void } | undefined;
    const response = new Promise<CommandSet>((resolve, reject) => {
      settle = { resolve, reject };
    });
    response.catch(() => {});
    this.awaitingResponse.set(id, settle as { resolve: (c: CommandSet) => void; reject: (e: Error) => void });
    let timer: NodeJS.Timeout | undefined;
    try {
      await this.send(contextId, command);
      try {
        await this.sendDataSet(contextId, dataSet);
      } catch (err) {
        if (!this.ended.signal.aborted) {
          this.endDetail ??= 'C-GET sub-operation data set could not be completed';
          this.ul.abort(undefined, 'C-GET sub-operation data set could not be completed');
        }
        throw err;
      }
      const timeoutMs = this.deps.policy.timeoutSecs * 1000;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          if (!this.ended.signal.aborted) {
            this.endDetail ??= 'no C-STORE-RSP within the DIMSE timeout';
            this.ul.abort(undefined, 'no C-STORE-RSP within the DIMSE timeout');
          }
          reject(new Error('no C-STORE-RSP within the DIMSE timeout'));
        }, timeoutMs);
      });
      timeout.catch(() => {});
      return await Promise.race([response, timeout]);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      this.awaitingResponse.delete(id);
    }
  }

  /**
   * A data set from its source into P-DATA-TF PDUs of one PDV each, at most the peer's maximum
   * length, the last one marked so; each PDU waits for the socket (backpressure), so the source is
   * read only as fast as the peer takes it.
   */
  private async sendDataSet(contextId: number, source: AsyncIterable<Uint8Array>): Promise<void> {
    // No PDU sent for the DIMSE timeout: the peer stopped reading (the upper layer's send timeout
    // catches that too), or the stored instance stopped coming from the blob store; either would
    // hold the association and the blob stream.
    const timeoutMs = this.deps.policy.timeoutSecs * 1000;
    let progress = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - progress < timeoutMs || this.ended.signal.aborted) return;
      this.endDetail ??= 'peer stopped reading a C-GET sub-operation data set';
      this.ul.abort(undefined, 'peer stopped reading');
      this.ul.destroy();
    }, Math.max(50, Math.min(1000, Math.floor(timeoutMs / 4))));
    watchdog.unref();
    try {
      await sendDataSetPdus(
        contextId,
        source,
        this.negotiated?.peerMaxLength ?? 0,
        async (pdu) => {
          await this.ul.sendPData(pdu);
          progress = Date.now();
        },
        () => {
          if (this.ended.signal.aborted) throw new Error('association ended');
        },
      );
    } finally {
      clearInterval(watchdog);
    }
  }

  private onAbort(a: AbortIndication): void {
    this.ending = 'aborted';
    this.endDetail ??= a.detail;
    this.stop(a.detail);
  }

  private stop(reason: string): void {
    if (this.idle !== undefined) clearTimeout(this.idle);
    this.idle = undefined;
    this.ended.abort();
    this.assembler.close(reason);
    for (const [id, waiter] of this.awaitingResponse) {
      this.awaitingResponse.delete(id);
      waiter.reject(new Error(reason));
    }
  }

  /** Counts against max_associations: requested and not rejected (being admitted, or established). */
  get holdsSlot(): boolean {
    return this.rq !== undefined && !this.rejected;
  }

  private onClosed(): void {
    this.stop('association closed');
    const rq = this.rq;
    const accepted = this.negotiated ? [...this.negotiated.contexts.values()] : [];
    const contexts = {
      proposed: rq?.presentationContexts.length ?? 0,
      accepted: accepted.length,
      transferSyntaxes: [...new Set(accepted.map((c) => c.transferSyntax))],
    };
    this.deps.logger.info(
      {
        callingAe: rq?.callingAe,
        calledAe: rq?.calledAe,
        peer: this.ul.remoteAddress,
        ending: this.ending,
        ...(this.endDetail !== undefined ? { detail: this.endDetail } : {}),
        contexts,
        operations: this.operations,
        ...(this.operations.move + this.operations.get > 0 ? { subOperations: this.subOperations } : {}),
        bytesIn: this.ul.bytesIn,
        bytesOut: this.ul.bytesOut,
        durationMs: Date.now() - this.startedAt,
      },
      'DIMSE association ended',
    );
    this.markClosed();
  }
}

/** C-STORE-RSP 0124: the requestor was not accepted as storage SCU on this context. */
/**
 * A single response to a request that is not performed, with its status (and Error Comment): e.g.
 * A900 when a known operation came without its data set or identifier (PS3.4 B.2.3, C.4), 0211
 * when the context does not support the operation at all.
 */
function refusal(req: CommandSet, status: number, errorComment?: string): CommandSet {
  return {
    commandField: (req.commandField | 0x8000) & 0xffff,
    commandDataSetType: NO_DATA_SET,
    ...(req.affectedSopClassUid !== undefined ? { affectedSopClassUid: req.affectedSopClassUid } : {}),
    ...(req.commandField === CommandField.C_STORE_RQ && req.affectedSopInstanceUid !== undefined ? { affectedSopInstanceUid: req.affectedSopInstanceUid } : {}),
    ...(req.messageId !== undefined ? { messageIdBeingRespondedTo: req.messageId } : {}),
    status,
    ...(errorComment !== undefined ? { errorComment } : {}),
  };
}

/** Responses of one message (the async iterable an operation answers with). */
function single(command: CommandSet): AsyncIterable<Response> {
  return (async function* () {
    yield { command };
  })();
}

async function collect(stream: AsyncIterable<Buffer>, max: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of stream) {
    n += chunk.length;
    if (n > max) throw new Error('identifier too large');
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}
