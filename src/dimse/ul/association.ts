/**
 * One DICOM upper-layer association over a TCP connection: the executor of the PS3.8 state
 * machine in fsm.ts. Events come from the transport (PDUs framed by PduFramer, close, ARTIM
 * expiry) and from the local service user (the primitives below); each is looked up in the
 * transition table and the action it names is carried out here. Every PDU is sent with one
 * socket write; Nagle is off.
 */
import type { Socket } from 'node:net';
import { encodePdu } from '../pdu/codec.js';
import { AbortReason, AbortSource, type Abort, type AssociateAc, type AssociateRj, type AssociateRq, type Pdu, type RejectReason } from '../pdu/types.js';
import { ACTIONS, PDU_EVENTS, actionFor, type Action, type Event, type State } from './fsm.js';
import { PduFramer, type FramerEvent, type FramerLimits } from './framer.js';

/** A P-DATA write the socket did not take within UpperLayerOptions.sendTimeoutMs. */
export class SendTimeoutError extends Error {}

/** Idle time before TCP keepalive probes start on an association's socket. */
export const KEEPALIVE_IDLE_MS = 60_000;

/** A slice of a received PDV (see FramerEvent 'pdv'). */
export interface PdvFragment {
  contextId: number;
  command: boolean;
  /** The PDV carries the last fragment of its command or data set (meaningful when `end`). */
  last: boolean;
  data: Buffer;
  /** This slice completes its PDV. */
  end: boolean;
}

export interface AbortIndication {
  /** A-ABORT from the peer (true) or A-P-ABORT from the provider, local or remote (false). */
  fromPeer: boolean;
  source: number;
  reason: number;
  /** Why, for logs (no PHI). */
  detail: string;
}

/** The service user of the association (ACSE + DIMSE above): indications and confirmations. */
export interface UpperLayerUser {
  /** AE-6 (acceptor): answer with accept() or reject(). */
  associateIndication?(rq: AssociateRq): void;
  /** AE-3 / AE-4 (requestor). */
  associateConfirm?(pdu: AssociateAc | AssociateRj): void;
  /** DT-2 / AR-6: a slice of received P-DATA. */
  pData(fragment: PdvFragment): void;
  /** AR-2 / AR-8: the peer asks to release; answer with releaseResponse(). */
  releaseIndication?(): void;
  /** AR-3 / AR-10 (requestor). */
  releaseConfirm?(): void;
  /** AA-3 / AA-4 / AA-8. */
  abortIndication?(indication: AbortIndication): void;
  /** The transport connection is closed and the machine is back in Sta1. */
  closed?(): void;
}

export interface Transition {
  event: Event;
  from: State;
  action: Action;
  to: State;
}

export interface UpperLayerOptions {
  /** The association-acceptor works on an accepted socket; the requestor connects in associate(). */
  role: 'acceptor' | 'requestor';
  user: UpperLayerUser;
  /** ARTIM timer (server.dimse_timeout_secs) in milliseconds. */
  artimMs: number;
  limits: FramerLimits;
  /** Observes every transition (tests, debug logs). */
  trace?: (t: Transition) => void;
  /**
   * A P-DATA write the socket has not taken within this long (the peer stopped reading) aborts
   * the association and closes the connection. Absent: no limit.
   */
  sendTimeoutMs?: number;
}

interface EventData {
  pdu?: Pdu;
  /** Evt19: the A-ABORT reason; Evt15: the abort requested. */
  abort?: { source: number; reason: number };
  detail?: string;
}

export class UpperLayer {
  private stateValue: State = 'Sta1';
  private socket: Socket | undefined;
  private artim: NodeJS.Timeout | undefined;
  private readonly framer: PduFramer;
  private deliverPdvs = false;
  private pendingRq: AssociateRq | undefined;
  private pendingAnswer: AssociateAc | AssociateRj | undefined;
  private closedNotified = false;
  private readonly queue: [Event, EventData][] = [];
  private running = false;
  private readonly indications: (() => void)[] = [];
  private pausedByUser = false;
  bytesIn = 0;
  bytesOut = 0;

  constructor(private readonly options: UpperLayerOptions) {
    this.framer = new PduFramer(options.limits);
  }

  get state(): State {
    return this.stateValue;
  }

  get remoteAddress(): string | undefined {
    return this.socket?.remoteAddress;
  }

  // -------------------------------------------------------------------------------------------
  // local primitives

  /** Evt5 (acceptor): a transport connection was accepted. */
  attach(socket: Socket): void {
    this.bindSocket(socket);
    this.dispatch('Evt5');
  }

  /** Evt1 (requestor): connect and send the A-ASSOCIATE-RQ once connected (Evt2). */
  associate(rq: AssociateRq, connect: () => Socket): void {
    this.pendingRq = rq;
    const socket = connect();
    this.bindSocket(socket);
    socket.once('connect', () => this.dispatch('Evt2'));
    this.dispatch('Evt1');
  }

  /** Evt7: accept the association. */
  accept(ac: AssociateAc): void {
    this.pendingAnswer = ac;
    this.dispatch('Evt7');
  }

  /** Evt8: reject the association. */
  reject(reason: RejectReason): void {
    this.pendingAnswer = { type: 'A-ASSOCIATE-RJ', ...reason };
    this.dispatch('Evt8');
  }

  /**
   * Evt9: send one encoded P-DATA-TF PDU. Resolves when the socket can take more (backpressure
   * for senders of large data); rejects when the association cannot carry data any more.
   */
  async sendPData(pdu: Buffer): Promise<void> {
    const action = actionFor('Evt9', this.stateValue);
    if (action === undefined) throw new Error(`P-DATA cannot be sent in ${this.stateValue}`);
    const socket = this.socket as Socket;
    this.bytesOut += pdu.length;
    this.transition('Evt9', action, ACTIONS[action].next as State);
    if (socket.write(pdu)) return;
    const timeoutMs = this.options.sendTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const cleanup = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        socket.off('drain', done);
        socket.off('close', closed);
      };
      const done = (): void => {
        cleanup();
        resolve();
      };
      const closed = (): void => {
        cleanup();
        reject(new Error('association closed while sending'));
      };
      socket.once('drain', done);
      socket.once('close', closed);
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          cleanup();
          reject(new SendTimeoutError('the peer stopped reading'));
          this.abort({ source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED }, 'the peer stopped reading');
          this.destroy();
        }, timeoutMs);
        timer.unref();
      }
    });
  }

  /** Evt11 (requestor): ask to release. */
  release(): void {
    this.dispatch('Evt11');
  }

  /** Evt14: answer a release indication. */
  releaseResponse(): void {
    this.dispatch('Evt14');
  }

  /** Evt15: abort (service-user source unless told otherwise). Ignored when nothing is open. */
  abort(abort: { source: number; reason: number } = { source: AbortSource.SERVICE_USER, reason: AbortReason.NOT_SPECIFIED }, detail = 'local abort'): void {
    if (this.stateValue === 'Sta13') this.destroy();
    else this.dispatch('Evt15', { abort, detail });
  }

  /** Stop reading from the peer (the consumer of P-DATA is behind). */
  pause(): void {
    this.pausedByUser = true;
    if (!this.framer.failed) this.socket?.pause();
  }

  resume(): void {
    this.pausedByUser = false;
    this.socket?.resume();
  }

  get paused(): boolean {
    return this.pausedByUser;
  }

  /** Tear the connection down without protocol (shutdown after the drain timeout). */
  destroy(): void {
    this.socket?.destroy();
  }

  // -------------------------------------------------------------------------------------------
  // transport

  private bindSocket(socket: Socket): void {
    this.socket = socket;
    socket.setNoDelay(true);
    // A peer whose host vanished (no FIN, no RST) is found by TCP itself, also while we wait
    // without a timer (a C-MOVE SCU waiting for an SCP that need not send pending responses).
    socket.setKeepAlive(true, KEEPALIVE_IDLE_MS);
    socket.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      this.framer.push(chunk, (e) => this.onFrame(e));
    });
    // Half-close from the peer: finish our side; 'close' then brings Evt17.
    socket.on('end', () => socket.end());
    socket.on('error', () => {});
    socket.on('close', () => {
      if (this.stateValue !== 'Sta1') this.dispatch('Evt17', { detail: 'transport connection closed' });
      this.finish();
    });
  }

  private onFrame(e: FramerEvent): void {
    switch (e.kind) {
      case 'pdu':
        this.dispatch(PDU_EVENTS[e.pdu.type], { pdu: e.pdu });
        break;
      case 'p-data':
        this.deliverPdvs = false;
        this.dispatch('Evt10');
        break;
      case 'pdv':
        if (this.deliverPdvs) this.options.user.pData({ contextId: e.contextId, command: e.command, last: e.last, data: e.data, end: e.end });
        break;
      case 'invalid':
        this.dispatch('Evt19', { abort: { source: AbortSource.SERVICE_PROVIDER, reason: e.reason }, detail: e.message });
        break;
    }
  }

  private startArtim(): void {
    this.stopArtim();
    this.artim = setTimeout(() => {
      this.artim = undefined;
      this.dispatch('Evt18', { detail: 'ARTIM timer expired' });
    }, this.options.artimMs);
    this.artim.unref();
  }

  private stopArtim(): void {
    if (this.artim !== undefined) clearTimeout(this.artim);
    this.artim = undefined;
  }

  private send(pdu: Pdu): void {
    const bytes = encodePdu(pdu);
    this.bytesOut += bytes.length;
    this.socket?.write(bytes);
  }

  /** Close our side; the peer's close (or the ARTIM-bounded fallback) completes it. */
  private closeTransport(): void {
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    socket.end();
    const t = setTimeout(() => socket.destroy(), this.options.artimMs);
    t.unref();
    socket.once('close', () => clearTimeout(t));
  }

  private finish(): void {
    this.stopArtim();
    this.stateValue = 'Sta1';
    this.framer.fail();
    if (this.closedNotified) return;
    this.closedNotified = true;
    this.options.user.closed?.();
  }

  // -------------------------------------------------------------------------------------------
  // the state machine

  private transition(event: Event, action: Action, to: State): void {
    const from = this.stateValue;
    this.stateValue = to;
    this.options.trace?.({ event, from, action, to });
  }

  /**
   * Runs the action Table 9-10 names for this event. Events raised while an action runs (a user
   * answering an indication synchronously, say) are queued and run afterwards, so each action
   * sees the state the table expects. A local primitive the table does not allow in the current
   * state is ignored (the association has moved on, e.g. the peer aborted meanwhile).
   */
  private dispatch(event: Event, data: EventData = {}): void {
    this.queue.push([event, data]);
    if (this.running) return;
    this.running = true;
    try {
      for (let next = this.queue.shift(); next !== undefined; next = this.queue.shift()) this.step(next[0], next[1]);
    } finally {
      this.running = false;
    }
  }

  private step(event: Event, data: EventData): void {
    const action = actionFor(event, this.stateValue);
    if (action === undefined) return;
    const to = this.run(action, event, data);
    this.transition(event, action, to);
    if (to === 'Sta1') this.socket?.destroy();
    // Indications reach the user once the machine is in its next state, so that answering at once works.
    for (let f = this.indications.shift(); f !== undefined; f = this.indications.shift()) f();
    if (to === 'Sta1') this.finish();
  }

  private later(indication: () => void): void {
    this.indications.push(indication);
  }

  /** The abort PDU an action sends: what was asked for, or "unexpected PDU" from the provider. */
  private abortPdu(data: EventData): Abort {
    const a = data.abort ?? { source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.UNEXPECTED_PDU };
    return { type: 'A-ABORT', source: a.source, reason: a.reason };
  }

  private providerAbort(data: EventData, event: Event): void {
    const pdu = this.abortPdu(data);
    this.stopReading();
    this.send(pdu);
    this.startArtim();
    const detail = data.detail ?? `${event} unexpected in ${this.stateValue}`;
    this.later(() => this.options.user.abortIndication?.({ fromPeer: false, source: pdu.source, reason: pdu.reason, detail }));
  }

  /** After an abort, further bytes are discarded unread (but read, so the peer's close is seen). */
  private stopReading(): void {
    this.framer.fail();
    this.deliverPdvs = false;
    this.socket?.resume();
  }

  private run(action: Action, event: Event, data: EventData): State {
    const user = this.options.user;
    switch (action) {
      case 'AE-1':
        return 'Sta4';
      case 'AE-2':
        if (this.pendingRq) this.send(this.pendingRq);
        return 'Sta5';
      case 'AE-3':
        this.stopArtim();
        this.later(() => user.associateConfirm?.(data.pdu as AssociateAc));
        return 'Sta6';
      case 'AE-4':
        this.stopArtim();
        this.later(() => user.associateConfirm?.(data.pdu as AssociateRj));
        this.closeTransport();
        return 'Sta1';
      case 'AE-5':
        this.startArtim();
        return 'Sta2';
      case 'AE-6': {
        this.stopArtim();
        const rq = data.pdu as AssociateRq;
        // The only service-provider check: protocol version 1 (bit 0) must be supported.
        if ((rq.protocolVersion & 1) === 0) {
          this.send({ type: 'A-ASSOCIATE-RJ', result: 1, source: 2, reason: 2 });
          this.startArtim();
          return 'Sta13';
        }
        this.later(() => user.associateIndication?.(rq));
        return 'Sta3';
      }
      case 'AE-7':
        this.send(this.pendingAnswer as AssociateAc);
        this.pendingAnswer = undefined;
        return 'Sta6';
      case 'AE-8':
        this.send(this.pendingAnswer as AssociateRj);
        this.pendingAnswer = undefined;
        this.startArtim();
        return 'Sta13';
      case 'DT-1':
        return 'Sta6';
      case 'DT-2':
        this.deliverPdvs = true;
        return 'Sta6';
      case 'AR-1':
        this.send({ type: 'A-RELEASE-RQ' });
        return 'Sta7';
      case 'AR-2':
        this.later(() => user.releaseIndication?.());
        return 'Sta8';
      case 'AR-3':
        this.later(() => user.releaseConfirm?.());
        this.closeTransport();
        return 'Sta1';
      case 'AR-4':
        this.send({ type: 'A-RELEASE-RP' });
        this.startArtim();
        return 'Sta13';
      case 'AR-5':
        this.stopArtim();
        return 'Sta1';
      case 'AR-6':
        this.deliverPdvs = true;
        return 'Sta7';
      case 'AR-7':
        return 'Sta8';
      case 'AR-8':
        this.later(() => user.releaseIndication?.());
        return this.options.role === 'requestor' ? 'Sta9' : 'Sta10';
      case 'AR-9':
        this.send({ type: 'A-RELEASE-RP' });
        return 'Sta11';
      case 'AR-10':
        this.later(() => user.releaseConfirm?.());
        return 'Sta12';
      case 'AA-1': {
        // Evt15 carries the service user's abort; in Sta2 a PDU other than A-ASSOCIATE-RQ is
        // answered as SPEC §4 says: service-provider source, "unexpected PDU" (or the framer's reason).
        const pdu = this.abortPdu(data);
        this.stopReading();
        this.send(pdu);
        this.startArtim();
        const detail = data.detail ?? `${event} unexpected in ${this.stateValue}`;
        if (event !== 'Evt15') this.later(() => user.abortIndication?.({ fromPeer: false, source: pdu.source, reason: pdu.reason, detail }));
        return 'Sta13';
      }
      case 'AA-2':
        this.stopArtim();
        this.socket?.destroy();
        return 'Sta1';
      case 'AA-3': {
        const pdu = data.pdu as Abort;
        this.later(() => user.abortIndication?.({ fromPeer: true, source: pdu.source, reason: pdu.reason, detail: 'A-ABORT received' }));
        this.closeTransport();
        return 'Sta1';
      }
      case 'AA-4':
        this.later(() => user.abortIndication?.({ fromPeer: false, source: AbortSource.SERVICE_PROVIDER, reason: AbortReason.NOT_SPECIFIED, detail: data.detail ?? 'transport connection closed' }));
        return 'Sta1';
      case 'AA-5':
        this.stopArtim();
        return 'Sta1';
      case 'AA-6':
        return 'Sta13';
      case 'AA-7':
        this.send(this.abortPdu(data));
        return 'Sta13';
      case 'AA-8':
        this.providerAbort(data, event);
        return 'Sta13';
    }
  }
}
