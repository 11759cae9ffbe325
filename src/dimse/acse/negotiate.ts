/**
 * Presentation-context negotiation (SPEC §4, PS3.8 9.3.3.2, PS3.7 Annex D): which contexts we
 * accept with which transfer syntax, and the user information we answer with. Pure.
 */
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, EXPLICIT_VR_LE, IMPLICIT_VR_LE, isKnownTransferSyntax } from '../../dicom/transfer-syntax.js';
import { isValidUid } from '../../dicom/uid.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../dicom/uids.js';
import { presentationContextIdProblem } from '../pdu/codec.js';
import {
  PduError,
  PresentationResult,
  emptyUserInformation,
  type AssociateAc,
  type AssociateRq,
  type ExtendedNegotiation,
  type PresentationContextAc,
  type RoleSelection,
} from '../pdu/types.js';
import type { Permissions } from './ae-filter.js';
import { FIND_SOP_CLASSES, GET_SOP_CLASSES, MOVE_SOP_CLASSES, VERIFICATION, isNonStorageService, isStorageSopClass, type ServiceKind } from './sop-classes.js';

export interface NegotiationPolicy {
  /** server.accept_all_transfer_syntaxes */
  acceptAll: boolean;
  /** server.accepted_transfer_syntaxes (used when acceptAll is off) */
  accepted: readonly string[];
  /** server.preferred_transfer_syntaxes; empty = the SCU's order */
  preferred: readonly string[];
  /** server.accept_unknown_sop_classes */
  acceptUnknownSopClasses: boolean;
  /** server.max_pdu_length: the Maximum Length Received we announce */
  maxPduLength: number;
}

export interface AcceptedContext {
  id: number;
  abstractSyntax: string;
  transferSyntax: string;
  kind: ServiceKind;
  /**
   * Storage contexts: the requestor may invoke C-STORE on it (it acts as SCU). Absent = true; false
   * when the context was accepted only for the requestor's C-GET (SCP role) or its SCU role was refused.
   */
  requestorScu?: boolean;
  /** Storage contexts: the requestor accepted the SCP role (PS3.7 D.3.3.4), so C-GET sub-operations may use it. */
  requestorScp?: boolean;
}

export interface Negotiated {
  ac: AssociateAc;
  /** Accepted contexts by presentation context ID. */
  contexts: Map<number, AcceptedContext>;
  /** The peer's Maximum Length Received (0 = unlimited): the bound of what we send. */
  peerMaxLength: number;
}

/** Q/R and Verification speak only the two little-endian native syntaxes (SPEC §4). */
const NATIVE_LE: readonly string[] = [IMPLICIT_VR_LE, EXPLICIT_VR_LE];
/** Syntaxes whose data we send in little endian just as well (re-encoded), and nothing else in them. */
const REENCODED_TO_LE: readonly string[] = [EXPLICIT_VR_BE, DEFLATED_EXPLICIT_VR_LE];

/** The service of an abstract syntax, or why it is refused. */
function classify(
  uid: string,
  policy: NegotiationPolicy,
  permissions: Permissions,
  services: ReadonlySet<ServiceKind>,
  roles: ReadonlyMap<string, RoleSelection>,
): ServiceKind | PresentationResult {
  // An abstract syntax name is a UID (PS3.8 9.3.2.2.1, PS3.5 9.1: digits and dots, at most 64
  // characters); anything else names no SOP class we could support. This also bounds every item
  // of our answer that repeats it (role selection).
  if (!isValidUid(uid)) return PresentationResult.ABSTRACT_SYNTAX_NOT_SUPPORTED;
  if (uid === VERIFICATION) return 'verification';
  const qr = FIND_SOP_CLASSES.has(uid) ? 'find' : MOVE_SOP_CLASSES.has(uid) ? 'move' : GET_SOP_CLASSES.has(uid) ? 'get' : undefined;
  if (qr !== undefined) {
    if (!services.has(qr)) return PresentationResult.ABSTRACT_SYNTAX_NOT_SUPPORTED;
    const allowed = qr === 'find' ? permissions.find : permissions.retrieve;
    return allowed ? qr : PresentationResult.USER_REJECTION;
  }
  if (isStorageSopClass(uid) || (!isNonStorageService(uid) && policy.acceptUnknownSopClasses)) {
    if (permissions.store) return 'storage';
    // A node without allow_store may still receive its C-GET sub-operations on the context.
    return getScpRole(uid, permissions, services, roles) ? 'storage' : PresentationResult.USER_REJECTION;
  }
  // Other services of the standard are not implemented.
  return PresentationResult.ABSTRACT_SYNTAX_NOT_SUPPORTED;
}

/** Whether the requestor may act as storage SCP for this SOP class: it proposed the role, and may retrieve. */
function getScpRole(uid: string, permissions: Permissions, services: ReadonlySet<ServiceKind>, roles: ReadonlyMap<string, RoleSelection>): boolean {
  return services.has('get') && permissions.retrieve && roles.get(uid)?.scpRole === true;
}

function acceptable(kind: ServiceKind, ts: string, policy: NegotiationPolicy): boolean {
  if (kind !== 'storage') return NATIVE_LE.includes(ts);
  // A UID we do not know is never accepted, even when the allow-list names it: nothing could
  // read what arrives (every C-STORE on the context would end in C122).
  if (!isKnownTransferSyntax(ts)) return false;
  return policy.acceptAll || policy.accepted.includes(ts);
}

/**
 * Our preference first (when configured), else the first the SCU proposed that we accept.
 * `weSend`: a storage context on which the requestor takes the SCP role (C-GET sub-operations go
 * out on it). There Explicit VR Big Endian and Deflated Explicit VR LE give way to Explicit or
 * Implicit VR LE when the context offers one of those too: an instance stored in either of them
 * can be re-encoded to little endian (dicom/reencode.ts), but no other instance can be sent in
 * them, so accepting the requestor's first choice would fail the sub-operations of every instance
 * not stored in exactly that syntax (DCMTK's getscu +xb or +xd). A compressed syntax stays where
 * the requestor put it: it is the only way to send what is stored in it (no transcoding of
 * compressed data), as little endian is for the rest.
 */
export function chooseTransferSyntax(kind: ServiceKind, proposed: readonly string[], policy: NegotiationPolicy, weSend = false): string | undefined {
  let candidates = proposed.filter((ts) => acceptable(kind, ts, policy));
  if (weSend && candidates.some((ts) => NATIVE_LE.includes(ts))) candidates = candidates.filter((ts) => !REENCODED_TO_LE.includes(ts));
  return policy.preferred.find((ts) => candidates.includes(ts)) ?? candidates[0];
}

/**
 * SOP Class Extended Negotiation for Q/R (PS3.4 C.5.1.1.4 ff., C.5.2.1.1 ff.). FIND: relational
 * queries 0, combined date-time matching 0, fuzzy semantic person-name matching 0, timezone
 * adjustment 0 - as many bytes as the SCU proposed (1-4). MOVE/GET: relational retrieval 0,
 * enhanced multi-frame image conversion 0 (1-2 bytes). Other SOP classes get no item (allowed by
 * PS3.7 D.3.3.5).
 */
function answerExtendedNegotiation(proposal: ExtendedNegotiation, accepted: ReadonlySet<string>): ExtendedNegotiation | undefined {
  if (!accepted.has(proposal.sopClassUid)) return undefined;
  const max = FIND_SOP_CLASSES.has(proposal.sopClassUid) ? 4 : MOVE_SOP_CLASSES.has(proposal.sopClassUid) || GET_SOP_CLASSES.has(proposal.sopClassUid) ? 2 : 0;
  if (max === 0) return undefined;
  const n = Math.min(Math.max(proposal.info.length, 1), max);
  return { sopClassUid: proposal.sopClassUid, info: Buffer.alloc(n, 0) };
}

/** The roles of the requestor on the contexts of one SOP class, as we answer its role selection item. */
interface RequestorRoles {
  scu: boolean;
  scp: boolean;
}

/**
 * SCP/SCU Role Selection (PS3.7 D.3.3.4): "The Association-acceptor, for each SCP/SCU Role
 * Selection item offered, either accepts the Association-requestor proposal by returning the same
 * value (1) or turns down the proposal by returning the value (0). The Association-acceptor shall
 * not return the value (1) if the Association-requestor has not proposed the role".
 *
 * Storage SOP classes: the requestor's SCU role is accepted when the node may store, and its SCP
 * role (receiving C-GET sub-operations) when it may retrieve and C-GET is offered. Other SOP
 * classes (Verification, Q/R): we act only as SCP, so the requestor's SCU role is accepted when
 * proposed and its SCP role is always turned down. Undefined: no proposal, the default roles
 * apply (requestor SCU, acceptor SCP) and no item is answered.
 */
function requestorRoles(kind: ServiceKind, proposal: RoleSelection | undefined, permissions: Permissions, services: ReadonlySet<ServiceKind>): RequestorRoles | undefined {
  if (proposal === undefined) return undefined;
  if (kind === 'storage') {
    return { scu: proposal.scuRole && permissions.store, scp: proposal.scpRole && services.has('get') && permissions.retrieve };
  }
  return { scu: proposal.scuRole, scp: false };
}

/** The services the SCP offers; a context for any other is refused (result 3). */
export const ALL_SERVICES: ReadonlySet<ServiceKind> = new Set<ServiceKind>(['verification', 'storage', 'find', 'move', 'get']);

export function negotiate(rq: AssociateRq, policy: NegotiationPolicy, permissions: Permissions, services: ReadonlySet<ServiceKind> = ALL_SERVICES): Negotiated {
  // The decoder refuses such a request (A-ABORT 2/6); a caller that built one itself gets no
  // ambiguous answer either.
  const problem = presentationContextIdProblem(rq.presentationContexts.map((pc) => pc.id));
  if (problem !== undefined) throw new PduError(problem);
  const contexts = new Map<number, AcceptedContext>();
  const answers: PresentationContextAc[] = [];
  // The first role proposal of a SOP class counts (PS3.7 D.3.3.4: one item per SOP class).
  const roles = new Map<string, RoleSelection>();
  for (const r of rq.userInformation.roleSelections) if (!roles.has(r.sopClassUid)) roles.set(r.sopClassUid, r);
  // The roles we answer, by SOP class: only classes with an accepted context get an item.
  const answeredRoles = new Map<string, RequestorRoles>();
  for (const pc of rq.presentationContexts) {
    const kind = classify(pc.abstractSyntax, policy, permissions, services, roles);
    if (typeof kind === 'number') {
      answers.push({ id: pc.id, result: kind, transferSyntax: '' });
      continue;
    }
    const role = requestorRoles(kind, roles.get(pc.abstractSyntax), permissions, services);
    if (role !== undefined && !role.scu && !role.scp) {
      // The requestor proposed roles of which we accept none (e.g. SCP only for a class we
      // only serve as SCP): neither party would have a role, so the context is refused rather
      // than accepted unusable (the default roles apply only when no item is exchanged).
      answers.push({ id: pc.id, result: PresentationResult.USER_REJECTION, transferSyntax: '' });
      continue;
    }
    const ts = chooseTransferSyntax(kind, pc.transferSyntaxes, policy, kind === 'storage' && role?.scp === true);
    if (ts === undefined) {
      answers.push({ id: pc.id, result: PresentationResult.TRANSFER_SYNTAXES_NOT_SUPPORTED, transferSyntax: '' });
      continue;
    }
    const accepted: AcceptedContext = { id: pc.id, abstractSyntax: pc.abstractSyntax, transferSyntax: ts, kind };
    if (role !== undefined) {
      answeredRoles.set(pc.abstractSyntax, role);
      if (kind === 'storage') {
        accepted.requestorScu = role.scu;
        accepted.requestorScp = role.scp;
      }
    }
    contexts.set(pc.id, accepted);
    answers.push({ id: pc.id, result: PresentationResult.ACCEPTANCE, transferSyntax: ts });
  }

  const acceptedClasses = new Set([...contexts.values()].map((c) => c.abstractSyntax));
  const ui = emptyUserInformation();
  ui.maxLength = policy.maxPduLength;
  ui.implementationClassUid = IMPLEMENTATION_CLASS_UID;
  ui.implementationVersionName = IMPLEMENTATION_VERSION_NAME;
  // We perform one operation at a time in each direction (PS3.7 D.3.3.3).
  if (rq.userInformation.asyncOperationsWindow !== undefined) ui.asyncOperationsWindow = { maxInvoked: 1, maxPerformed: 1 };
  // Items are answered only for SOP classes with an accepted context, in the order proposed: each
  // names a valid UID (at most 64 characters) and there are at most 128 of them (unique odd IDs
  // 1-255), so they take at most 128 * 72 bytes and the user information item stays far below
  // its 16-bit length (PS3.8 9.3.3.3) whatever the request held.
  for (const sopClassUid of roles.keys()) {
    const role = answeredRoles.get(sopClassUid);
    if (role !== undefined) ui.roleSelections.push({ sopClassUid, scuRole: role.scu, scpRole: role.scp });
  }
  // At most one answer per SOP class (PS3.7 D.3.3.5), the first proposal's: a request repeating
  // one class thousands of times must not make an answer longer than a user information item holds.
  const answered = new Set<string>();
  for (const e of rq.userInformation.extendedNegotiations) {
    if (answered.has(e.sopClassUid)) continue;
    const answer = answerExtendedNegotiation(e, acceptedClasses);
    if (!answer) continue;
    answered.add(e.sopClassUid);
    ui.extendedNegotiations.push(answer);
  }

  return {
    ac: {
      type: 'A-ASSOCIATE-AC',
      protocolVersion: 1,
      calledAe: rq.calledAe,
      callingAe: rq.callingAe,
      // PS3.8 9.3.3: the values of the request, byte for byte (not trimmed and padded again).
      ...(rq.aeFields !== undefined ? { aeFields: rq.aeFields } : {}),
      applicationContext: rq.applicationContext,
      presentationContexts: answers,
      userInformation: ui,
    },
    contexts,
    peerMaxLength: rq.userInformation.maxLength ?? 0,
  };
}
