/**
 * Encoding and decoding of every PDU and item of PS3.8 section 9.3 (and the user information
 * sub-items of PS3.7 Annex D.3.3). Pure: bytes in, data out. Each encoder returns one Buffer so
 * that the transport can send a PDU with a single write.
 */
import {
  AbortReason,
  ItemType,
  PduError,
  PduType,
  emptyUserInformation,
  type AssociateAc,
  type AssociateRq,
  type Pdu,
  type PresentationContextAc,
  type PresentationContextRq,
  type PresentationResult,
  type UserInformation,
} from './types.js';

/** PDU header: type (1), reserved (1), length (4, big endian). */
export const PDU_HEADER_LENGTH = 6;
/** PDV item header: length (4), presentation context ID (1), message control header (1). */
export const PDV_HEADER_LENGTH = 6;

const AE_LENGTH = 16;

// ---------------------------------------------------------------------------------------------
// encoding

function ascii(s: string): Buffer {
  return Buffer.from(s, 'latin1');
}

/** AE titles occupy 16 bytes, space padded (PS3.8 9.3.2). */
function aeField(ae: string): Buffer {
  const b = Buffer.alloc(AE_LENGTH, 0x20);
  b.write(ae.slice(0, AE_LENGTH), 0, 'latin1');
  return b;
}

/** Item header: type (1), reserved (1), length (2, big endian), then the value. */
function item(type: number, value: Buffer): Buffer {
  if (value.length > 0xffff) throw new RangeError(`item 0x${type.toString(16)} longer than 65535 bytes`);
  const h = Buffer.alloc(4);
  h.writeUInt8(type, 0);
  h.writeUInt16BE(value.length, 2);
  return Buffer.concat([h, value]);
}

function uidWithLength(uid: string): Buffer {
  const u = ascii(uid);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(u.length, 0);
  return Buffer.concat([b, u]);
}

function encodeUserInformation(ui: UserInformation): Buffer {
  const parts: Buffer[] = [];
  if (ui.maxLength !== undefined) {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(ui.maxLength, 0);
    parts.push(item(ItemType.MAXIMUM_LENGTH, b));
  }
  if (ui.implementationClassUid !== undefined) parts.push(item(ItemType.IMPLEMENTATION_CLASS_UID, ascii(ui.implementationClassUid)));
  if (ui.asyncOperationsWindow !== undefined) {
    const b = Buffer.alloc(4);
    b.writeUInt16BE(ui.asyncOperationsWindow.maxInvoked, 0);
    b.writeUInt16BE(ui.asyncOperationsWindow.maxPerformed, 2);
    parts.push(item(ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW, b));
  }
  for (const r of ui.roleSelections) {
    parts.push(item(ItemType.SCP_SCU_ROLE_SELECTION, Buffer.concat([uidWithLength(r.sopClassUid), Buffer.from([r.scuRole ? 1 : 0, r.scpRole ? 1 : 0])])));
  }
  if (ui.implementationVersionName !== undefined) parts.push(item(ItemType.IMPLEMENTATION_VERSION_NAME, ascii(ui.implementationVersionName)));
  for (const e of ui.extendedNegotiations) {
    parts.push(item(ItemType.SOP_CLASS_EXTENDED_NEGOTIATION, Buffer.concat([uidWithLength(e.sopClassUid), e.info])));
  }
  for (const o of ui.otherItems) parts.push(item(o.type, o.data));
  return item(ItemType.USER_INFORMATION, Buffer.concat(parts));
}

function encodePresentationContextRq(pc: PresentationContextRq): Buffer {
  return item(
    ItemType.PRESENTATION_CONTEXT_RQ,
    Buffer.concat([
      Buffer.from([pc.id, 0, 0, 0]),
      item(ItemType.ABSTRACT_SYNTAX, ascii(pc.abstractSyntax)),
      ...pc.transferSyntaxes.map((ts) => item(ItemType.TRANSFER_SYNTAX, ascii(ts))),
    ]),
  );
}

function encodePresentationContextAc(pc: PresentationContextAc): Buffer {
  return item(ItemType.PRESENTATION_CONTEXT_AC, Buffer.concat([Buffer.from([pc.id, 0, pc.result, 0]), item(ItemType.TRANSFER_SYNTAX, ascii(pc.transferSyntax))]));
}

function withHeader(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(PDU_HEADER_LENGTH + body.length);
  out.writeUInt8(type, 0);
  out.writeUInt8(0, 1);
  out.writeUInt32BE(body.length, 2);
  body.copy(out, PDU_HEADER_LENGTH);
  return out;
}

function encodeAssociate(pdu: AssociateRq | AssociateAc): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(pdu.protocolVersion, 0);
  if (pdu.aeFields?.length === 2 * AE_LENGTH) pdu.aeFields.copy(fixed, 4);
  else {
    aeField(pdu.calledAe).copy(fixed, 4);
    aeField(pdu.callingAe).copy(fixed, 20);
  }
  const contexts = pdu.type === 'A-ASSOCIATE-RQ'
    ? pdu.presentationContexts.map(encodePresentationContextRq)
    : pdu.presentationContexts.map(encodePresentationContextAc);
  const body = Buffer.concat([fixed, item(ItemType.APPLICATION_CONTEXT, ascii(pdu.applicationContext)), ...contexts, encodeUserInformation(pdu.userInformation)]);
  return withHeader(pdu.type === 'A-ASSOCIATE-RQ' ? PduType.A_ASSOCIATE_RQ : PduType.A_ASSOCIATE_AC, body);
}

/** The 6-byte header of a P-DATA-TF PDU whose PDV items (headers included) total `pdvTotalLength` bytes. */
export function pDataHeader(pdvTotalLength: number): Buffer {
  const h = Buffer.allocUnsafe(PDU_HEADER_LENGTH);
  h.writeUInt8(PduType.P_DATA_TF, 0);
  h.writeUInt8(0, 1);
  h.writeUInt32BE(pdvTotalLength, 2);
  return h;
}

/** A P-DATA-TF PDU with one PDV: one allocation, one copy of the data. */
export function encodeSinglePdv(contextId: number, command: boolean, last: boolean, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(PDU_HEADER_LENGTH + PDV_HEADER_LENGTH + data.length);
  out.writeUInt8(PduType.P_DATA_TF, 0);
  out.writeUInt8(0, 1);
  out.writeUInt32BE(PDV_HEADER_LENGTH + data.length, 2);
  out.writeUInt32BE(2 + data.length, 6);
  out.writeUInt8(contextId, 10);
  out.writeUInt8((command ? 1 : 0) | (last ? 2 : 0), 11);
  out.set(data, 12);
  return out;
}

export function encodePdu(pdu: Pdu): Buffer {
  switch (pdu.type) {
    case 'A-ASSOCIATE-RQ':
    case 'A-ASSOCIATE-AC':
      return encodeAssociate(pdu);
    case 'A-ASSOCIATE-RJ':
      return withHeader(PduType.A_ASSOCIATE_RJ, Buffer.from([0, pdu.result, pdu.source, pdu.reason]));
    case 'P-DATA-TF': {
      const parts: Buffer[] = [];
      for (const pdv of pdu.pdvs) {
        const h = Buffer.allocUnsafe(PDV_HEADER_LENGTH);
        h.writeUInt32BE(2 + pdv.data.length, 0);
        h.writeUInt8(pdv.contextId, 4);
        h.writeUInt8((pdv.command ? 1 : 0) | (pdv.last ? 2 : 0), 5);
        parts.push(h, pdv.data);
      }
      return withHeader(PduType.P_DATA_TF, Buffer.concat(parts));
    }
    case 'A-RELEASE-RQ':
      return withHeader(PduType.A_RELEASE_RQ, Buffer.alloc(4));
    case 'A-RELEASE-RP':
      return withHeader(PduType.A_RELEASE_RP, Buffer.alloc(4));
    case 'A-ABORT':
      return withHeader(PduType.A_ABORT, Buffer.from([0, 0, pdu.source, pdu.reason]));
  }
}

// ---------------------------------------------------------------------------------------------
// decoding

/** UIDs in items are not padded, but some implementations add a NUL or space: tolerate both. */
function uidText(b: Buffer): string {
  return b.toString('latin1').replace(/[\0 ]+$/, '');
}

/**
 * An AE title field as text: trailing NUL padding and leading/trailing spaces dropped (PS3.5 6.2:
 * spaces are not significant) — spaces only: a tab or a no-break space is part of the title, so
 * `PACSNODE<TAB>` is not our AE title, nor a registered node's.
 */
function aeText(b: Buffer): string {
  return b.toString('latin1').replace(/\0+$/, '').replace(/^ +| +$/g, '');
}

interface RawSubItem {
  type: number;
  value: Buffer;
}

function* items(buf: Buffer, where: string): Generator<RawSubItem> {
  let o = 0;
  while (o < buf.length) {
    if (o + 4 > buf.length) throw new PduError(`truncated item header in ${where}`);
    const type = buf.readUInt8(o);
    const length = buf.readUInt16BE(o + 2);
    if (o + 4 + length > buf.length) throw new PduError(`item 0x${type.toString(16)} overruns ${where}`);
    yield { type, value: buf.subarray(o + 4, o + 4 + length) };
    o += 4 + length;
  }
}

function uidWithLengthAt(value: Buffer, where: string): { uid: string; rest: Buffer } {
  if (value.length < 2) throw new PduError(`${where} too short`);
  const n = value.readUInt16BE(0);
  if (2 + n > value.length) throw new PduError(`${where}: UID length overruns the item`);
  return { uid: uidText(value.subarray(2, 2 + n)), rest: value.subarray(2 + n) };
}

function decodeUserInformation(buf: Buffer): UserInformation {
  const ui = emptyUserInformation();
  for (const sub of items(buf, 'user information')) {
    const v = sub.value;
    switch (sub.type) {
      case ItemType.MAXIMUM_LENGTH:
        if (v.length !== 4) throw new PduError('maximum length item must hold 4 bytes');
        ui.maxLength = v.readUInt32BE(0);
        break;
      case ItemType.IMPLEMENTATION_CLASS_UID:
        ui.implementationClassUid = uidText(v);
        break;
      case ItemType.IMPLEMENTATION_VERSION_NAME:
        ui.implementationVersionName = v.toString('latin1').replace(/[\0 ]+$/, '');
        break;
      case ItemType.ASYNCHRONOUS_OPERATIONS_WINDOW:
        if (v.length !== 4) throw new PduError('asynchronous operations window item must hold 4 bytes');
        ui.asyncOperationsWindow = { maxInvoked: v.readUInt16BE(0), maxPerformed: v.readUInt16BE(2) };
        break;
      case ItemType.SCP_SCU_ROLE_SELECTION: {
        const { uid, rest } = uidWithLengthAt(v, 'role selection item');
        if (rest.length !== 2) throw new PduError('role selection item must end with the SCU and SCP roles');
        ui.roleSelections.push({ sopClassUid: uid, scuRole: rest.readUInt8(0) === 1, scpRole: rest.readUInt8(1) === 1 });
        break;
      }
      case ItemType.SOP_CLASS_EXTENDED_NEGOTIATION: {
        const { uid, rest } = uidWithLengthAt(v, 'SOP class extended negotiation item');
        ui.extendedNegotiations.push({ sopClassUid: uid, info: Buffer.from(rest) });
        break;
      }
      default:
        ui.otherItems.push({ type: sub.type, data: Buffer.from(v) });
    }
  }
  return ui;
}

/**
 * What makes the presentation context list of an A-ASSOCIATE-RQ invalid, if anything: PS3.8
 * 9.3.2 requires one or more presentation context items, and 9.3.2.2 context IDs that are odd
 * integers between 1 and 255, unique within the association. Such a request cannot be answered
 * unambiguously (the A-ASSOCIATE-AC names its results by ID): it is an invalid PDU, answered with
 * A-ABORT (service provider, invalid PDU parameter value) like every other malformed request
 * (PS3.8 9.2, Evt19 in Sta2).
 */
export function presentationContextIdProblem(ids: readonly number[]): string | undefined {
  if (ids.length === 0) return 'A-ASSOCIATE-RQ without presentation context';
  const seen = new Set<number>();
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 1 || id > 255 || id % 2 === 0) return `presentation context ID ${id} is not an odd integer 1-255`;
    if (seen.has(id)) return `presentation context ID ${id} proposed more than once`;
    seen.add(id);
  }
  return undefined;
}

function decodeAssociate(type: number, body: Buffer): AssociateRq | AssociateAc {
  const rq = type === PduType.A_ASSOCIATE_RQ;
  const name = rq ? 'A-ASSOCIATE-RQ' : 'A-ASSOCIATE-AC';
  if (body.length < 68) throw new PduError(`${name} shorter than its fixed fields`);
  const protocolVersion = body.readUInt16BE(0);
  const calledAe = aeText(body.subarray(4, 20));
  const callingAe = aeText(body.subarray(20, 36));
  let applicationContext: string | undefined;
  const pcsRq: PresentationContextRq[] = [];
  const pcsAc: PresentationContextAc[] = [];
  let userInformation: UserInformation | undefined;
  for (const it of items(body.subarray(68), name)) {
    const v = it.value;
    if (it.type === ItemType.APPLICATION_CONTEXT) {
      applicationContext = uidText(v);
    } else if (rq && it.type === ItemType.PRESENTATION_CONTEXT_RQ) {
      if (v.length < 4) throw new PduError('presentation context item too short');
      let abstractSyntax: string | undefined;
      const transferSyntaxes: string[] = [];
      for (const sub of items(v.subarray(4), 'presentation context')) {
        if (sub.type === ItemType.ABSTRACT_SYNTAX) {
          // One abstract syntax sub-item per presentation context (PS3.8 9.3.2.2).
          if (abstractSyntax !== undefined) throw new PduError('presentation context with more than one abstract syntax');
          abstractSyntax = uidText(sub.value);
        } else if (sub.type === ItemType.TRANSFER_SYNTAX) transferSyntaxes.push(uidText(sub.value));
        else throw new PduError(`unexpected sub-item 0x${sub.type.toString(16)} in a presentation context`, AbortReason.UNRECOGNIZED_PDU_PARAMETER);
      }
      if (abstractSyntax === undefined) throw new PduError('presentation context without abstract syntax');
      pcsRq.push({ id: v.readUInt8(0), abstractSyntax, transferSyntaxes });
    } else if (!rq && it.type === ItemType.PRESENTATION_CONTEXT_AC) {
      if (v.length < 4) throw new PduError('presentation context item too short');
      let transferSyntax = '';
      for (const sub of items(v.subarray(4), 'presentation context')) {
        if (sub.type === ItemType.TRANSFER_SYNTAX) transferSyntax = uidText(sub.value);
      }
      const result = v.readUInt8(2);
      if (result > 4) throw new PduError(`presentation context result ${result} is not defined`);
      pcsAc.push({ id: v.readUInt8(0), result: result as PresentationResult, transferSyntax });
    } else if (it.type === ItemType.USER_INFORMATION) {
      userInformation = decodeUserInformation(v);
    } else {
      throw new PduError(`unexpected item 0x${it.type.toString(16)} in ${name}`, AbortReason.UNRECOGNIZED_PDU_PARAMETER);
    }
  }
  if (applicationContext === undefined) throw new PduError(`${name} without application context`);
  if (rq) {
    const problem = presentationContextIdProblem(pcsRq.map((pc) => pc.id));
    if (problem !== undefined) throw new PduError(problem, AbortReason.INVALID_PDU_PARAMETER_VALUE);
  }
  const common = { protocolVersion, calledAe, callingAe, applicationContext, userInformation: userInformation ?? emptyUserInformation() };
  // The AE fields as received: an A-ASSOCIATE-AC returns them unchanged (PS3.8 9.3.3).
  return rq
    ? { type: 'A-ASSOCIATE-RQ', ...common, aeFields: Buffer.from(body.subarray(4, 36)), presentationContexts: pcsRq }
    : { type: 'A-ASSOCIATE-AC', ...common, presentationContexts: pcsAc };
}

function fourBytes(body: Buffer, name: string): Buffer {
  if (body.length !== 4) throw new PduError(`${name} must have a length of 4`);
  return body;
}

/** Decodes the body (after the 6-byte header) of a PDU of the given type. */
export function decodePduBody(type: number, body: Buffer): Pdu {
  switch (type) {
    case PduType.A_ASSOCIATE_RQ:
    case PduType.A_ASSOCIATE_AC:
      return decodeAssociate(type, body);
    case PduType.A_ASSOCIATE_RJ: {
      const b = fourBytes(body, 'A-ASSOCIATE-RJ');
      const result = b.readUInt8(1);
      const source = b.readUInt8(2);
      if ((result !== 1 && result !== 2) || (source !== 1 && source !== 2 && source !== 3)) throw new PduError('A-ASSOCIATE-RJ result or source out of range');
      return { type: 'A-ASSOCIATE-RJ', result, source, reason: b.readUInt8(3) };
    }
    case PduType.P_DATA_TF: {
      const pdvs = [];
      let o = 0;
      while (o < body.length) {
        if (o + PDV_HEADER_LENGTH > body.length) throw new PduError('truncated PDV item');
        const length = body.readUInt32BE(o);
        if (length < 2 || o + 4 + length > body.length) throw new PduError('PDV item length out of range');
        const mch = body.readUInt8(o + 5);
        pdvs.push({ contextId: body.readUInt8(o + 4), command: (mch & 1) === 1, last: (mch & 2) === 2, data: Buffer.from(body.subarray(o + 6, o + 4 + length)) });
        o += 4 + length;
      }
      return { type: 'P-DATA-TF', pdvs };
    }
    case PduType.A_RELEASE_RQ:
      fourBytes(body, 'A-RELEASE-RQ');
      return { type: 'A-RELEASE-RQ' };
    case PduType.A_RELEASE_RP:
      fourBytes(body, 'A-RELEASE-RP');
      return { type: 'A-RELEASE-RP' };
    case PduType.A_ABORT: {
      const b = fourBytes(body, 'A-ABORT');
      return { type: 'A-ABORT', source: b.readUInt8(2), reason: b.readUInt8(3) };
    }
    default:
      throw new PduError(`unrecognized PDU type 0x${type.toString(16).padStart(2, '0')}`, AbortReason.UNRECOGNIZED_PDU);
  }
}

/** Decodes one whole PDU (header included); the length must match exactly. */
export function decodePdu(buf: Buffer): Pdu {
  if (buf.length < PDU_HEADER_LENGTH) throw new PduError('truncated PDU header');
  const length = buf.readUInt32BE(2);
  if (buf.length !== PDU_HEADER_LENGTH + length) throw new PduError('PDU length does not match its bytes');
  return decodePduBody(buf.readUInt8(0), buf.subarray(PDU_HEADER_LENGTH));
}

export function isKnownPduType(type: number): boolean {
  return type >= PduType.A_ASSOCIATE_RQ && type <= PduType.A_ABORT;
}
