/**
 * One association accepted by the SCP: the service user of the upper layer. It admits or rejects
 * the association (acse/), then reassembles messages (message/) and runs each operation through
 * its thin handler (echo, store, find), one at a time, answering in order. C-CANCEL is acted on
 * as soon as it arrives. Each association ends with one log line (no PHI).
 */
import type { Socket } from 'node:net';
import type { Archive } from '../../archive/archive.js';
import type { CallContext, Logger } from '../../archive/context.js';
import { ANONYMOUS, SYSTEM } from '../../archive/origin.js';
import { admit, type KnownNode } from '../acse/ae-filter.js';
import type { ServiceKind } from '../acse/sop-classes.js';
import { negotiate, type AcceptedContext, type NegotiationPolicy, type Negotiated } from '../acse/negotiate.js';
import { MessageAssembler, type IncomingMessage } from '../message/assembler.js';
import { CommandField, encodeCommandSet, type CommandSet } from '../message/command.js';
import { fragmentPdus } from '../message/fragment.js';
import { Status } from '../message/status.js';
import { AbortReason, AbortSource, type AssociateRq } from '../pdu/types.js';
import { UpperLayer, type AbortIndication } from '../ul/association.js';
import { MAX_OTHER_PDU_LENGTH } from '../ul/framer.js';
import type { OperationContext } from './context.js';
import { handleEcho } from './echo.js';
import { handleStore } from './store.js';

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
}

/** A C-FIND handler: responses to send, pending ones first, the final one last. */
export type FindHandler = (ctx: OperationContext, req: CommandSet, identifier: Buffer) => AsyncIterable<{ command: CommandSet; identifier?: Buffer }>;

type Ending = 'released' | 'aborted' | 'rejected' | 'closed';

/** Identifiers of C-FIND requests are small; a larger one is refused. */
const MAX_IDENTIFIER_LENGTH = 1024 * 1024;

export class Acceptor {
  readonly ul: UpperLayer;
  private readonly startedAt = Date.now();
  private readonly assembler: MessageAssembler;
  private negotiated: Negotiated | undefined;
  private rq: AssociateRq | undefined;
  private work: Promise<void> = Promise.resolve();
  private busy = 0;
  private readonly running = new Map<number, AbortController>();
  private readonly ended = new AbortController();
  private idle: NodeJS.Timeout | undefined;
  private ending: Ending = 'closed';
  private endDetail: string | undefined;
  private readonly operations = { echo: 0, store: 0, storeFailed: 0, find: 0, cancel: 0 };
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
      pause: () => this.ul.pause(),
      resume: () => this.ul.resume(),
    });
    this.ul = new UpperLayer({
      role: 'acceptor',
      artimMs: policy.timeoutSecs * 1000,
      limits: { maxPDataLength: policy.maxPduLength, maxOtherLength: MAX_OTHER_PDU_LENGTH },
      user: {
        associateIndication: (rq) => void this.onAssociate(rq),
        pData: (f) => {
          this.touch();
          this.assembler.fragment(f);
        },
        releaseIndication: () => {
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
      this.deps.logger.error({ callingAe: rq.callingAe, err: err instanceof Error ? err.message : String(err) }, 'association admission failed');
      admission = { ok: false as const, reject: { result: 2 as const, source: 1 as const, reason: 1 }, detail: 'admission check failed' };
    }
    if (!admission.ok) {
      this.ending = 'rejected';
      this.endDetail = admission.detail;
      this.ul.reject(admission.reject);
      return;
    }
    const services = new Set<ServiceKind>(['verification', 'storage', ...(this.deps.find ? (['find'] as const) : [])]);
    const negotiated = negotiate(rq, policy, admission.permissions, services);
    this.negotiated = negotiated;
    this.ul.accept(negotiated.ac);
    this.touch();
  }

  /** The DIMSE idle timeout: no PDU and no operation for timeoutSecs -> A-ABORT. */
  private touch(): void {
    if (this.idle !== undefined) clearTimeout(this.idle);
    this.idle = undefined;
    if (this.busy > 0 || this.ul.state !== 'Sta6') return;
    this.idle = setTimeout(() => {
      if (this.busy > 0) return;
      this.endDetail = 'idle timeout';
      this.ul.abort(undefined, 'idle timeout');
    }, this.deps.policy.timeoutSecs * 1000);
    this.idle.unref();
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
    const controller = new AbortController();
    if (command.messageId !== undefined) this.running.set(command.messageId, controller);
    this.busy++;
    this.touch();
    const ctx: OperationContext = {
      call: this.callContext(),
      callingAe: this.rq?.callingAe ?? '',
      presentation,
      signal: AbortSignal.any([controller.signal, this.ended.signal]),
      logger: this.deps.logger,
    };
    // A store starts reading its data set at once (it is arriving now); the response waits its turn.
    const result = this.perform(ctx, msg, presentation);
    result.catch(() => {}); // observed through the chain below; this only marks it handled early
    this.work = this.work
      .then(() => result)
      .then(async (responses) => {
        for await (const r of responses) await this.send(msg.contextId, r.command, r.identifier);
      })
      .catch((err: unknown) => {
        if (!this.ended.signal.aborted) {
          this.deps.logger.error({ callingAe: ctx.callingAe, err: err instanceof Error ? err.message : String(err) }, 'DIMSE operation failed');
          this.ul.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, 'operation failed');
        }
      })
      .finally(() => {
        if (command.messageId !== undefined && this.running.get(command.messageId) === controller) this.running.delete(command.messageId);
        this.busy--;
        this.touch();
      });
  }

  private async perform(ctx: OperationContext, msg: IncomingMessage, presentation: AcceptedContext): Promise<AsyncIterable<{ command: CommandSet; identifier?: Buffer }>> {
    const { command } = msg;
    const one = (c: CommandSet): AsyncIterable<{ command: CommandSet }> => (async function* () {
      yield { command: c };
    })();
    switch (command.commandField) {
      case CommandField.C_ECHO_RQ:
        this.operations.echo++;
        return one(handleEcho(command));
      case CommandField.C_STORE_RQ: {
        if (presentation.kind !== 'storage' || msg.dataSet === undefined) break;
        this.operations.store++;
        const r = await handleStore(this.deps.archive, ctx, command, msg.dataSet);
        if (r.response.status !== Status.SUCCESS) this.operations.storeFailed++;
        ctx.logger.debug({ callingAe: ctx.callingAe, sopInstanceUid: r.sopInstanceUid, status: r.response.status, bytes: r.bytes }, 'C-STORE');
        return one(r.response);
      }
      case CommandField.C_FIND_RQ: {
        if (presentation.kind !== 'find' || msg.dataSet === undefined || this.deps.find === undefined) break;
        this.operations.find++;
        const identifier = await collect(msg.dataSet, MAX_IDENTIFIER_LENGTH);
        return this.deps.find(ctx, command, identifier);
      }
    }
    if (msg.dataSet) msg.dataSet.resume();
    return one(unrecognized(command));
  }

  private async send(contextId: number, command: CommandSet, dataSet?: Buffer): Promise<void> {
    const max = this.negotiated?.peerMaxLength ?? 0;
    for (const pdu of fragmentPdus(contextId, true, encodeCommandSet(command), max)) await this.ul.sendPData(pdu);
    if (dataSet !== undefined) for (const pdu of fragmentPdus(contextId, false, dataSet, max)) await this.ul.sendPData(pdu);
  }

  private onAbort(a: AbortIndication): void {
    this.ending = 'aborted';
    this.endDetail ??= a.detail;
    this.stop(a.detail);
  }

  private stop(reason: string): void {
    if (this.idle !== undefined) clearTimeout(this.idle);
    this.ended.abort();
    this.assembler.close(reason);
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
        bytesIn: this.ul.bytesIn,
        bytesOut: this.ul.bytesOut,
        durationMs: Date.now() - this.startedAt,
      },
      'DIMSE association ended',
    );
    this.markClosed();
  }
}

function unrecognized(req: CommandSet): CommandSet {
  return {
    commandField: (req.commandField | 0x8000) & 0xffff,
    commandDataSetType: 0x0101,
    ...(req.affectedSopClassUid !== undefined ? { affectedSopClassUid: req.affectedSopClassUid } : {}),
    ...(req.messageId !== undefined ? { messageIdBeingRespondedTo: req.messageId } : {}),
    status: Status.UNRECOGNIZED_OPERATION,
  };
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
