/**
 * One association in the requestor role, for the SCU: opens it (A-ASSOCIATE-RQ, waiting for AC or
 * RJ), sends commands and data sets (a data set streamed from its source into P-DATA-TF PDUs within
 * the peer's maximum length, with the socket's backpressure), hands received messages over in
 * order, releases or aborts. Responses are handed over with their (small) data set collected;
 * requests the peer sends us on the same association (the C-STORE-RQs of a C-GET) with their data
 * set as a stream, read at the consumer's pace (the socket pauses while it is behind). Every wait
 * is bounded by the DIMSE timeout: an association on which nothing moves for that long while an
 * operation is outstanding is aborted.
 *
 * What the peer may make us do is bounded too:
 * - Time: while we send, only a PDU the socket has not taken for the DIMSE timeout counts against
 *   the peer (the UpperLayer's send timeout, and the watchdog): a peer that stops reading our data
 *   set cannot keep the association alive by sending us small messages meanwhile, and a slow
 *   source of ours (a blob store read) is not the peer's stall.
 * - Memory: received messages nobody has taken yet wait in a queue of at most MAX_QUEUED_MESSAGES
 *   (plus what one socket read already held); at that length we stop reading the socket, and TCP
 *   stops the peer. A request from the peer is only legitimate where we offered the SCP role (the
 *   C-STOREs of a C-GET): any other fails the association the moment it arrives.
 * - Negotiation (PS3.8 9.3.3.2, D.1): a context accepted with a transfer syntax we did not propose
 *   for it counts as not accepted; a Maximum Length Received below MIN_PEER_MAX_LENGTH (other than
 *   0, no limit) fails the association; a message on a context that was not accepted is a
 *   protocol error.
 */
import { connect, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { Logger } from '../../archive/context.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../dicom/uids.js';
import { MessageAssembler } from '../message/assembler.js';
import { CommandField, encodeCommandSet, type CommandSet } from '../message/command.js';
import { MIN_PEER_MAX_LENGTH, fragmentPdus, sendDataSetPdus } from '../message/fragment.js';
import {
  DICOM_APPLICATION_CONTEXT,
  PresentationResult,
  emptyUserInformation,
  type AssociateAc,
  type AssociateRj,
  type AssociateRq,
  type PresentationContextRq,
  type RoleSelection,
} from '../pdu/types.js';
import { MAX_OTHER_PDU_LENGTH } from '../ul/framer.js';
import { SendTimeoutError, UpperLayer, type AbortIndication } from '../ul/association.js';
import { logDetail, ScuError } from './errors.js';

/** A remote application entity. */
export interface ScuTarget {
  host: string;
  port: number;
  /** The called AE title. */
  calledAe: string;
}

export interface AcceptedPresentationContext {
  id: number;
  abstractSyntax: string;
  transferSyntax: string;
}

export interface OpenAssociationOptions {
  target: ScuTarget;
  callingAe: string;
  contexts: readonly PresentationContextRq[];
  roleSelections?: readonly RoleSelection[];
  /** dimse_timeout_secs in ms: connect + negotiation, and the idle bound of every operation. */
  timeoutMs: number;
  /** The Maximum Length Received we announce (and accept). */
  maxPduLength: number;
  logger: Logger;
  /** For the log line. */
  operation: string;
  signal?: AbortSignal;
}

export interface ReceivedMessage {
  contextId: number;
  command: CommandSet;
  /** A response's data set, collected (responses carry small identifiers only). */
  dataSet?: Buffer;
  /**
   * A request's data set (a C-STORE-RQ during C-GET), as it arrives: the consumer must read it to
   * its end (or destroy it), else the association stalls.
   */
  dataStream?: Readable;
}

/** DIMSE requests have bit 15 of the Command Field clear (PS3.7 E.1). */
export function isRequest(command: CommandSet): boolean {
  return (command.commandField & 0x8000) === 0;
}

/** A response data set (a C-FIND identifier) larger than this aborts the association. */
export const MAX_RESPONSE_DATA_SET = 16 * 1024 * 1024;

/**
 * Received messages waiting for receive() beyond this many stop the reading of the socket until the
 * consumer has taken half of them (a C-FIND consumer slower than the peer, a peer flooding us).
 */
export const MAX_QUEUED_MESSAGES = 8;

/** A slot per received message, in arrival order: resolved once its data set (if any) is complete. */
type Slot = Promise<ReceivedMessage>;

export class ScuAssociation {
  readonly accepted = new Map<number, AcceptedPresentationContext>();
  /** The SCP/SCU Role Selection items the peer answered, by SOP class. */
  readonly acceptedRoles = new Map<string, RoleSelection>();
  peerMaxLength = 0;
  private readonly ul: UpperLayer;
  private readonly assembler: MessageAssembler;
  private readonly slots: Slot[] = [];
  private readonly waiters: { resolve: (s: Slot) => void; reject: (e: Error) => void; untimed: boolean }[] = [];
  private failure: ScuError | undefined;
  private messageId = 0;
  private sending = 0;
  /** Since when the socket has not taken the PDU we are writing (undefined: no write waiting). */
  private writeWaitingSince: number | undefined;
  /** When the peer last sent us something, or a wait for it began. */
  private lastReceived = Date.now();
  /** The socket is paused because the consumer of a request's data set is behind (assembler). */
  private assemblerPaused = false;
  /** The socket is paused because MAX_QUEUED_MESSAGES messages wait for receive(). */
  private backlogPaused = false;
  private readonly watchdog: NodeJS.Timeout;
  private readonly started = Date.now();
  private operations = 0;
  private endDetail = 'released';
  private closedResolve: (() => void) | undefined;
  private readonly closedPromise: Promise<void>;
  private socketError: Error | undefined;
  private onOpen: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private readonly removeAbortListener: () => void;
  /** Sends run one after the other: the PDUs of one message are never interleaved with another's. */
  private sendChain: Promise<void> = Promise.resolve();

  private constructor(private readonly options: OpenAssociationOptions) {
    this.closedPromise = new Promise((resolve) => (this.closedResolve = resolve));
    this.assembler = new MessageAssembler({
      message: (msg) => this.onMessage(msg.contextId, msg.command, msg.dataSet),
      error: (detail) => this.fail(new ScuError('PROTOCOL_ERROR', `invalid message from ${options.target.calledAe}: ${detail}`), true),
      pause: () => {
        this.assemblerPaused = true;
        this.flow();
      },
      resume: () => {
        this.assemblerPaused = false;
        this.flow();
      },
    });
    this.ul = new UpperLayer({
      role: 'requestor',
      artimMs: options.timeoutMs,
      // A P-DATA write the peer does not take within the DIMSE timeout ends the association.
      sendTimeoutMs: options.timeoutMs,
      limits: { maxPDataLength: options.maxPduLength, maxOtherLength: MAX_OTHER_PDU_LENGTH },
      user: {
        associateConfirm: (pdu) => this.onConfirm(pdu),
        pData: (f) => {
          if (this.failure) return;
          // PS3.7 9.1: a message on a context that was not accepted is a protocol error.
          if (!this.accepted.has(f.contextId)) {
            this.fail(new ScuError('PROTOCOL_ERROR', `${options.target.calledAe} sent a message on presentation context ${f.contextId}, which was not accepted`), true);
            return;
          }
          this.lastReceived = Date.now();
          this.assembler.fragment(f);
        },
        releaseIndication: () => this.ul.releaseResponse(),
        abortIndication: (a) => this.onAbort(a),
        closed: () => this.onClosed(),
      },
    });
    // One timer per association rather than one per PDU: checks that something moves while busy.
    const period = Math.max(50, Math.min(1000, Math.floor(options.timeoutMs / 4)));
    this.watchdog = setInterval(() => this.checkIdle(), period);
    this.watchdog.unref();
    const signal = options.signal;
    const onAbortSignal = (): void => this.fail(new ScuError('CANCELLED', 'cancelled'), true);
    signal?.addEventListener('abort', onAbortSignal, { once: true });
    this.removeAbortListener = () => signal?.removeEventListener('abort', onAbortSignal);
  }

  /** Opens an association; rejects with a ScuError (CONNECT_FAILED, ASSOCIATION_REJECTED, TIMEOUT, ...). */
  static async open(options: OpenAssociationOptions): Promise<ScuAssociation> {
    if (options.signal?.aborted) throw new ScuError('CANCELLED', 'cancelled');
    if (options.contexts.length === 0 || options.contexts.length > 128) throw new ScuError('INVALID_REQUEST', 'an association carries 1 to 128 presentation contexts');
    const a = new ScuAssociation(options);
    const opened = new Promise<void>((resolve, reject) => (a.onOpen = { resolve, reject }));
    const ui = emptyUserInformation();
    ui.maxLength = options.maxPduLength;
    ui.implementationClassUid = IMPLEMENTATION_CLASS_UID;
    ui.implementationVersionName = IMPLEMENTATION_VERSION_NAME;
    ui.roleSelections.push(...(options.roleSelections ?? []));
    const rq: AssociateRq = {
      type: 'A-ASSOCIATE-RQ',
      protocolVersion: 1,
      calledAe: options.target.calledAe,
      callingAe: options.callingAe,
      applicationContext: DICOM_APPLICATION_CONTEXT,
      presentationContexts: [...options.contexts],
      userInformation: ui,
    };
    a.sending++; // negotiation counts as an outstanding operation for the watchdog (bounded since `started`)
    a.ul.associate(rq, () => {
      const socket: Socket = connect({ host: options.target.host, port: options.target.port });
      socket.once('error', (err) => (a.socketError = err));
      return socket;
    });
    try {
      await opened;
    } finally {
      a.sending--;
    }
    return a;
  }

  get closed(): boolean {
    return this.failure !== undefined || this.ul.state === 'Sta1';
  }

  /** The next Message ID (1..65535). */
  nextMessageId(): number {
    this.messageId = (this.messageId % 0xffff) + 1;
    return this.messageId;
  }

  /** The accepted context for an abstract syntax, preferring one of the given transfer syntaxes in order. */
  contextFor(abstractSyntax: string, transferSyntaxes?: readonly string[]): AcceptedPresentationContext | undefined {
    const candidates = [...this.accepted.values()].filter((c) => c.abstractSyntax === abstractSyntax);
    if (transferSyntaxes === undefined) return candidates[0];
    for (const ts of transferSyntaxes) {
      const c = candidates.find((x) => x.transferSyntax === ts);
      if (c) return c;
    }
    return undefined;
  }

  async sendCommand(contextId: number, command: CommandSet): Promise<void> {
    this.operations++;
    await this.serialized(() =>
      this.guardedSend(async () => {
        for (const pdu of fragmentPdus(contextId, true, encodeCommandSet(command), this.peerMaxLength)) await this.writePdu(pdu);
      }),
    );
  }

  /**
   * Sends a data set from its source as it is read: each P-DATA-TF holds one PDV of at most the
   * peer's maximum length; the last one is marked so. Resolves with the number of bytes sent.
   */
  async sendDataSet(contextId: number, source: Uint8Array | AsyncIterable<Uint8Array>, onBytes?: (n: number) => void): Promise<number> {
    let total = 0;
    await this.serialized(() =>
      this.guardedSend(async () => {
        total = await sendDataSetPdus(
          contextId,
          source,
          this.peerMaxLength,
          async (pdu, n) => {
            await this.writePdu(pdu);
            onBytes?.(n);
          },
          () => this.throwIfFailed(),
        );
      }),
    );
    return total;
  }

  /**
   * The next received message, in order. Rejects when the association fails or times out.
   * `untimed`: the peer may rightly stay silent for longer than the DIMSE timeout meanwhile (a
   * C-MOVE SCP working on its sub-operations need not send pending responses, PS3.4 C.4.2.3.1):
   * this wait alone does not make the association idle.
   * After a failure of ours (timeout, cancel, protocol error, our abort) the messages still queued
   * are dropped: this rejects at once. When the peer ended the association (A-ABORT, closed
   * connection) the messages that arrived whole before are still handed over (a final response
   * followed at once by the peer's close is an answer); there are at most MAX_QUEUED_MESSAGES.
   */
  async receive(options: { untimed?: boolean } = {}): Promise<ReceivedMessage> {
    const slot = this.slots.shift();
    if (slot !== undefined) {
      if (this.backlogPaused && this.slots.length <= MAX_QUEUED_MESSAGES / 2) {
        this.backlogPaused = false;
        this.flow();
      }
      return slot;
    }
    if (this.failure) throw this.failure;
    this.lastReceived = Date.now();
    const untimed = options.untimed ?? false;
    const next = await new Promise<Slot>((resolve, reject) => this.waiters.push({ resolve, reject, untimed }));
    return next;
  }

  /** A-RELEASE; aborts when the peer does not answer within the timeout. */
  async release(): Promise<void> {
    if (this.closed) {
      await this.closedPromise;
      return;
    }
    this.endDetail = 'released';
    this.ul.release();
    const timer = setTimeout(() => {
      this.endDetail = 'release timed out';
      this.ul.abort(undefined, 'release timed out');
      this.ul.destroy();
    }, this.options.timeoutMs);
    try {
      await this.closedPromise;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Ends the association after an operation failed: released after a failure status (a normal
   * end of the operation), aborted otherwise (the log gets our own words, never the peer's text).
   */
  async endAfter(err: unknown): Promise<void> {
    if (this.closed) return;
    if (err instanceof ScuError && err.code === 'DIMSE_FAILURE') await this.release();
    else this.abort(logDetail(err));
  }

  /** A-ABORT (service user); the connection is torn down shortly after. */
  abort(detail = 'aborted'): void {
    this.fail(new ScuError('ASSOCIATION_ABORTED', detail), true);
  }

  // -------------------------------------------------------------------------------------------

  private serialized(fn: () => Promise<void>): Promise<void> {
    const run = this.sendChain.then(fn);
    this.sendChain = run.catch(() => {});
    return run;
  }

  private async guardedSend(fn: () => Promise<void>): Promise<void> {
    this.throwIfFailed();
    this.sending++;
    try {
      await fn();
    } catch (err) {
      // A source that failed mid data set leaves a message half sent: the association cannot go on.
      if (this.failure) throw this.failure;
      const e = err instanceof ScuError ? err : new ScuError('ASSOCIATION_ABORTED', `sending failed: ${err instanceof Error ? err.message : String(err)}`);
      this.fail(e, true);
      throw err instanceof ScuError ? err : e;
    } finally {
      this.sending--;
      // A wait for the peer that overlapped our send starts over: the peer could not answer before.
      this.lastReceived = Date.now();
    }
  }

  /** One P-DATA-TF PDU, with backpressure; the socket taking it is progress of ours. */
  private async writePdu(pdu: Buffer): Promise<void> {
    this.writeWaitingSince = Date.now();
    try {
      await this.ul.sendPData(pdu);
    } catch (err) {
      if (this.failure) throw this.failure;
      if (err instanceof SendTimeoutError) throw this.sendTimeout();
      throw err;
    } finally {
      this.writeWaitingSince = undefined;
    }
  }

  private noAnswer(): ScuError {
    return new ScuError('TIMEOUT', `no answer from ${this.options.target.calledAe} within ${this.options.timeoutMs} ms`);
  }

  private sendTimeout(): ScuError {
    return new ScuError('TIMEOUT', `${this.options.target.calledAe} took nothing we sent within ${this.options.timeoutMs} ms (it stopped reading)`);
  }

  /** The socket is read unless the assembler's consumer or receive()'s consumer is behind. */
  private flow(): void {
    if (this.assemblerPaused || this.backlogPaused) this.ul.pause();
    else this.ul.resume();
  }

  /**
   * Whether the peer may send us this request here: only a C-STORE-RQ on a context whose SOP
   * class we offered to serve as SCP (SCP/SCU Role Selection: the sub-operations of a C-GET).
   */
  private mayReceiveRequest(contextId: number, command: CommandSet): boolean {
    if (command.commandField !== CommandField.C_STORE_RQ) return false;
    const ctx = this.accepted.get(contextId);
    return ctx !== undefined && (this.options.roleSelections ?? []).some((r) => r.scpRole && r.sopClassUid === ctx.abstractSyntax);
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }

  private checkIdle(): void {
    if (this.failure) return;
    const now = Date.now();
    const { timeoutMs } = this.options;
    if (this.sending > 0) {
      // The negotiation must end in time; then, while we send, only a PDU the socket has not taken
      // counts against the peer (what it sends us meanwhile does not help): time spent waiting for
      // our own source (a slow blob store) is not the peer's stall.
      if (this.onOpen) {
        if (now - this.started >= timeoutMs) this.fail(this.noAnswer(), true);
        return;
      }
      if (this.writeWaitingSince !== undefined && now - this.writeWaitingSince >= timeoutMs) this.fail(this.sendTimeout(), true);
      return;
    }
    // A data set in progress is waited for too; while we hold the socket paused (our consumer is
    // behind), the peer is not the one idle.
    if (this.assemblerPaused || this.backlogPaused) this.lastReceived = now;
    const waiting = this.waiters.some((w) => !w.untimed) || this.assembler.receivingDataSet;
    if (!waiting || now - this.lastReceived < timeoutMs) return;
    this.fail(this.noAnswer(), true);
  }

  private onConfirm(pdu: AssociateAc | AssociateRj): void {
    if (pdu.type === 'A-ASSOCIATE-RJ') {
      const err = new ScuError('ASSOCIATION_REJECTED', `${this.options.target.calledAe} rejected the association (result ${pdu.result}, source ${pdu.source}, reason ${pdu.reason})`, {
        result: pdu.result,
        source: pdu.source,
        reason: pdu.reason,
      });
      this.endDetail = 'rejected';
      this.fail(err, false);
      return;
    }
    const calledAe = this.options.target.calledAe;
    const maxLength = pdu.userInformation.maxLength ?? 0;
    if (maxLength !== 0 && maxLength < MIN_PEER_MAX_LENGTH) {
      // One data byte per tiny PDU would cost many times the bytes and a system call per few bytes.
      this.fail(new ScuError('PROTOCOL_ERROR', `${calledAe} announced a Maximum Length Received of ${maxLength}, below the ${MIN_PEER_MAX_LENGTH} we work with`), true);
      return;
    }
    this.peerMaxLength = maxLength;
    const proposed = new Map(this.options.contexts.map((c) => [c.id, c]));
    for (const pc of pdu.presentationContexts) {
      const rq = proposed.get(pc.id);
      if (pc.result !== PresentationResult.ACCEPTANCE || rq === undefined) continue;
      // PS3.8 9.3.3.2: the transfer syntax accepted must be one of those proposed for the context.
      if (!rq.transferSyntaxes.includes(pc.transferSyntax)) {
        this.options.logger.warn({ calledAe, contextId: pc.id, transferSyntax: pc.transferSyntax }, 'SCU: context accepted with a transfer syntax we did not propose, not used');
        continue;
      }
      this.accepted.set(pc.id, { id: pc.id, abstractSyntax: rq.abstractSyntax, transferSyntax: pc.transferSyntax });
    }
    for (const r of pdu.userInformation.roleSelections) this.acceptedRoles.set(r.sopClassUid, r);
    this.lastReceived = Date.now();
    const open = this.onOpen;
    this.onOpen = undefined;
    open?.resolve();
  }

  private onMessage(contextId: number, command: CommandSet, dataSet: Readable | undefined): void {
    if (isRequest(command) && !this.mayReceiveRequest(contextId, command)) {
      // Not when it is dequeued: a peer could otherwise fill the queue with such requests.
      this.fail(new ScuError('PROTOCOL_ERROR', `${this.options.target.calledAe} sent a request (command field 0x${command.commandField.toString(16).padStart(4, '0')}) that has no place on this association`), true);
      return;
    }
    this.lastReceived = Date.now();
    let slot: Slot;
    if (dataSet === undefined) slot = Promise.resolve({ contextId, command });
    else if (isRequest(command)) slot = Promise.resolve({ contextId, command, dataStream: dataSet });
    else {
      slot = new Promise<ReceivedMessage>((resolve, reject) => {
        const parts: Buffer[] = [];
        let length = 0;
        dataSet.on('data', (c: Buffer) => {
          length += c.length;
          if (length > MAX_RESPONSE_DATA_SET) {
            this.fail(new ScuError('PROTOCOL_ERROR', `response data set over ${MAX_RESPONSE_DATA_SET} bytes`), true);
            return;
          }
          parts.push(c);
        });
        dataSet.on('end', () => resolve({ contextId, command, dataSet: Buffer.concat(parts, length) }));
        dataSet.on('error', () => reject(this.failure ?? new ScuError('ASSOCIATION_ABORTED', 'association ended within a data set')));
      });
      // A slot nobody awaits any more (the association failed) must not be an unhandled rejection.
      slot.catch(() => {});
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(slot);
    else {
      this.slots.push(slot);
      if (this.slots.length >= MAX_QUEUED_MESSAGES && !this.backlogPaused) {
        this.backlogPaused = true;
        this.flow();
      }
    }
  }

  private onAbort(a: AbortIndication): void {
    this.endDetail = a.fromPeer ? `aborted by peer (source ${a.source}, reason ${a.reason})` : `aborted: ${a.detail}`;
    const cause = this.socketError;
    if (!this.failure && this.onOpen && !a.fromPeer && cause) {
      this.endDetail = 'connect failed';
      this.fail(new ScuError('CONNECT_FAILED', `cannot connect to ${this.options.target.host}:${this.options.target.port}: ${(cause as NodeJS.ErrnoException).code ?? cause.message}`), false);
      return;
    }
    if (!this.failure) {
      this.fail(
        new ScuError('ASSOCIATION_ABORTED', a.fromPeer ? `${this.options.target.calledAe} aborted the association (source ${a.source}, reason ${a.reason})` : `association aborted: ${a.detail}`, {
          source: a.source,
          reason: a.reason,
        }),
        false,
      );
    }
  }

  private onClosed(): void {
    clearInterval(this.watchdog);
    this.removeAbortListener();
    this.assembler.close('association closed');
    if (!this.failure && this.onOpen) {
      const cause = this.socketError;
      this.failure = cause
        ? new ScuError('CONNECT_FAILED', `cannot connect to ${this.options.target.host}:${this.options.target.port}: ${(cause as NodeJS.ErrnoException).code ?? cause.message}`)
        : new ScuError('ASSOCIATION_ABORTED', 'connection closed during association negotiation');
    }
    if (!this.failure) this.failure = new ScuError('ASSOCIATION_ABORTED', 'association closed');
    this.rejectWaiters();
    const { target, operation, logger } = this.options;
    logger.info(
      {
        calledAe: target.calledAe,
        callingAe: this.options.callingAe,
        peer: `${target.host}:${target.port}`,
        operation,
        operations: this.operations,
        contexts: this.accepted.size,
        bytesIn: this.ul.bytesIn,
        bytesOut: this.ul.bytesOut,
        durationMs: Date.now() - this.started,
        end: this.endDetail,
      },
      'SCU association closed',
    );
    this.closedResolve?.();
  }

  /**
   * Records the first failure, rejects everything waiting, and (when asked) aborts the association.
   * A failure of ours (`abort`) drops the queued messages: nothing is handed over after it.
   */
  private fail(err: ScuError, abort: boolean): void {
    if (this.failure) return;
    this.failure = err;
    if (abort) this.slots.length = 0;
    if (err.code !== 'ASSOCIATION_REJECTED' && this.endDetail === 'released') this.endDetail = logDetail(err);
    this.rejectWaiters();
    this.assembler.close(logDetail(err));
    if (abort) {
      this.ul.abort(undefined, logDetail(err));
      // Do not wait for the peer to close after our A-ABORT longer than needed.
      const t = setTimeout(() => this.ul.destroy(), Math.min(1000, this.options.timeoutMs));
      this.closedPromise.then(() => clearTimeout(t), () => {});
    }
  }

  private rejectWaiters(): void {
    const err = this.failure as ScuError;
    const open = this.onOpen;
    this.onOpen = undefined;
    open?.reject(err);
    for (let w = this.waiters.shift(); w !== undefined; w = this.waiters.shift()) w.reject(err);
  }
}
