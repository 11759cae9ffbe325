/**
 * Incremental PDU framing of the bytes read from a transport connection. Memory stays bounded:
 * at most one PDU header, one PDV item header and - for PDUs other than P-DATA-TF, which are
 * small - one PDU body are held. PDV data is handed on as slices of the chunks read, never
 * copied or accumulated, so a dataset flows through without being buffered here.
 */
import { PDU_HEADER_LENGTH, PDV_HEADER_LENGTH, decodePduBody, isKnownPduType } from '../pdu/codec.js';
import { AbortReason, PduError, PduType, type Pdu } from '../pdu/types.js';

export interface FramerLimits {
  /** The largest P-DATA-TF variable field we accept: the maximum length we advertised. */
  maxPDataLength: number;
  /** The largest other PDU (SPEC §4: 1 MiB). */
  maxOtherLength: number;
}

export const MAX_OTHER_PDU_LENGTH = 1024 * 1024;

export type FramerEvent =
  /** A whole PDU other than P-DATA-TF. */
  | { kind: 'pdu'; pdu: Exclude<Pdu, { type: 'P-DATA-TF' }> }
  /** A P-DATA-TF PDU starts (its PDVs follow as 'pdv' events). */
  | { kind: 'p-data'; length: number }
  /** A slice of a PDV's data; `end` on the slice that completes the PDV. */
  | { kind: 'pdv'; contextId: number; command: boolean; last: boolean; data: Buffer; end: boolean }
  /** Malformed input: the A-ABORT reason to answer with. Nothing more is emitted afterwards. */
  | { kind: 'invalid'; reason: number; message: string };

type Phase = 'pdu-header' | 'pdu-body' | 'pdv-header' | 'pdv-data' | 'failed';

export class PduFramer {
  private phase: Phase = 'pdu-header';
  private readonly header = Buffer.alloc(Math.max(PDU_HEADER_LENGTH, PDV_HEADER_LENGTH));
  private headerFill = 0;
  private pduType = 0;
  /** Bytes of the current P-DATA-TF or PDU body still to come. */
  private pduRemaining = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;
  private pdvRemaining = 0;
  private pdvContextId = 0;
  private pdvCommand = false;
  private pdvLast = false;

  constructor(private readonly limits: FramerLimits) {}

  get failed(): boolean {
    return this.phase === 'failed';
  }

  /** After this, every byte is discarded (the association is being aborted). */
  fail(): void {
    this.phase = 'failed';
    this.body = undefined;
  }

  /** Frames `chunk`, calling `emit` for each event in order. */
  push(chunk: Buffer, emit: (e: FramerEvent) => void): void {
    let o = 0;
    while (o < chunk.length && this.phase !== 'failed') {
      switch (this.phase) {
        case 'pdu-header': {
          o = this.fillHeader(chunk, o, PDU_HEADER_LENGTH);
          if (this.headerFill < PDU_HEADER_LENGTH) break;
          this.headerFill = 0;
          this.startPdu(emit);
          break;
        }
        case 'pdu-body': {
          const body = this.body as Buffer;
          const n = Math.min(chunk.length - o, body.length - this.bodyFill);
          chunk.copy(body, this.bodyFill, o, o + n);
          this.bodyFill += n;
          o += n;
          if (this.bodyFill === body.length) this.endBody(emit);
          break;
        }
        case 'pdv-header': {
          const need = PDV_HEADER_LENGTH;
          o = this.fillHeader(chunk, o, need);
          if (this.headerFill < need) break;
          this.headerFill = 0;
          const itemLength = this.header.readUInt32BE(0);
          if (itemLength < 2 || itemLength + 4 > this.pduRemaining) {
            this.invalid(emit, AbortReason.INVALID_PDU_PARAMETER_VALUE, 'PDV item length out of range');
            break;
          }
          this.pduRemaining -= 4 + itemLength;
          this.pdvRemaining = itemLength - 2;
          this.pdvContextId = this.header.readUInt8(4);
          const mch = this.header.readUInt8(5);
          this.pdvCommand = (mch & 1) === 1;
          this.pdvLast = (mch & 2) === 2;
          if (this.pdvRemaining === 0) this.emitPdv(emit, Buffer.alloc(0));
          else this.phase = 'pdv-data';
          break;
        }
        case 'pdv-data': {
          const n = Math.min(chunk.length - o, this.pdvRemaining);
          this.pdvRemaining -= n;
          const slice = chunk.subarray(o, o + n);
          o += n;
          this.emitPdv(emit, slice);
          break;
        }
      }
    }
  }

  private fillHeader(chunk: Buffer, o: number, need: number): number {
    const n = Math.min(chunk.length - o, need - this.headerFill);
    chunk.copy(this.header, this.headerFill, o, o + n);
    this.headerFill += n;
    return o + n;
  }

  private invalid(emit: (e: FramerEvent) => void, reason: number, message: string): void {
    this.fail();
    emit({ kind: 'invalid', reason, message });
  }

  private startPdu(emit: (e: FramerEvent) => void): void {
    const type = this.header.readUInt8(0);
    const length = this.header.readUInt32BE(2);
    if (!isKnownPduType(type)) {
      this.invalid(emit, AbortReason.UNRECOGNIZED_PDU, `unrecognized PDU type 0x${type.toString(16).padStart(2, '0')}`);
      return;
    }
    this.pduType = type;
    if (type === PduType.P_DATA_TF) {
      if (length > this.limits.maxPDataLength) {
        this.invalid(emit, AbortReason.INVALID_PDU_PARAMETER_VALUE, `P-DATA-TF of ${length} bytes exceeds the maximum length ${this.limits.maxPDataLength}`);
        return;
      }
      if (length < PDV_HEADER_LENGTH) {
        this.invalid(emit, AbortReason.INVALID_PDU_PARAMETER_VALUE, 'P-DATA-TF without a PDV item');
        return;
      }
      this.pduRemaining = length;
      this.phase = 'pdv-header';
      emit({ kind: 'p-data', length });
      return;
    }
    if (length > this.limits.maxOtherLength) {
      this.invalid(emit, AbortReason.INVALID_PDU_PARAMETER_VALUE, `PDU of ${length} bytes exceeds ${this.limits.maxOtherLength}`);
      return;
    }
    this.body = Buffer.allocUnsafe(length);
    this.bodyFill = 0;
    if (length === 0) this.endBody(emit);
    else this.phase = 'pdu-body';
  }

  private endBody(emit: (e: FramerEvent) => void): void {
    const body = this.body as Buffer;
    this.body = undefined;
    this.phase = 'pdu-header';
    let pdu: Pdu;
    try {
      pdu = decodePduBody(this.pduType, body);
    } catch (err) {
      const reason = err instanceof PduError ? err.reason : AbortReason.INVALID_PDU_PARAMETER_VALUE;
      this.invalid(emit, reason, err instanceof Error ? err.message : String(err));
      return;
    }
    if (pdu.type === 'P-DATA-TF') return; // not reached: P-DATA-TF is framed incrementally
    emit({ kind: 'pdu', pdu });
  }

  private emitPdv(emit: (e: FramerEvent) => void, data: Buffer): void {
    const end = this.pdvRemaining === 0;
    if (end) this.phase = this.pduRemaining > 0 ? 'pdv-header' : 'pdu-header';
    if (end && this.pduRemaining > 0 && this.pduRemaining < PDV_HEADER_LENGTH) {
      this.invalid(emit, AbortReason.INVALID_PDU_PARAMETER_VALUE, 'P-DATA-TF ends inside a PDV item header');
      return;
    }
    emit({ kind: 'pdv', contextId: this.pdvContextId, command: this.pdvCommand, last: this.pdvLast, data, end });
  }
}
