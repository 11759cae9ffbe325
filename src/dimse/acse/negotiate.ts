/**
 * Presentation-context negotiation (SPEC §4, PS3.8 9.3.3.2, PS3.7 Annex D): which contexts we
 * accept with which transfer syntax, and the user information we answer with. Pure.
 */
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE, isKnownTransferSyntax } from '../../dicom/transfer-syntax.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../dicom/uids.js';
import {
  PresentationResult,
  emptyUserInformation,
  type AssociateAc,
  type AssociateRq,
  type ExtendedNegotiation,
  type PresentationContextAc,
  type RoleSelection,
} from '../pdu/types.js';
import type { Permissions } from './ae-filter.js';
import { FIND_SOP_CLASSES, VERIFICATION, isNonStorageService, isStorageSopClass, type ServiceKind } from './sop-classes.js';

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

/** The service of an abstract syntax, or why it is refused. */
function classify(uid: string, policy: NegotiationPolicy, permissions: Permissions, services: ReadonlySet<ServiceKind>): ServiceKind | PresentationResult {
  if (uid === VERIFICATION) return 'verification';
  if (FIND_SOP_CLASSES.has(uid)) {
    if (!services.has('find')) return PresentationResult.ABSTRACT_SYNTAX_NOT_SUPPORTED;
    return permissions.find ? 'find' : PresentationResult.USER_REJECTION;
  }
  if (isStorageSopClass(uid) || (!isNonStorageService(uid) && policy.acceptUnknownSopClasses)) {
    return permissions.store ? 'storage' : PresentationResult.USER_REJECTION;
  }
  // C-MOVE and C-GET arrive with the next part of issue 4; other services are not implemented.
  return PresentationResult.ABSTRACT_SYNTAX_NOT_SUPPORTED;
}

function acceptable(kind: ServiceKind, ts: string, policy: NegotiationPolicy): boolean {
  if (kind !== 'storage') return NATIVE_LE.includes(ts);
  if (policy.acceptAll) return isKnownTransferSyntax(ts);
  return policy.accepted.includes(ts);
}

/** Our preference first (when configured), else the first the SCU proposed that we accept. */
export function chooseTransferSyntax(kind: ServiceKind, proposed: readonly string[], policy: NegotiationPolicy): string | undefined {
  const candidates = proposed.filter((ts) => acceptable(kind, ts, policy));
  return policy.preferred.find((ts) => candidates.includes(ts)) ?? candidates[0];
}

/**
 * SOP Class Extended Negotiation for Q/R FIND (PS3.4 C.5.1.1.4 ff.): relational queries 0,
 * combined date-time matching 0, fuzzy semantic person-name matching 0, timezone adjustment 0 -
 * as many bytes as the SCU proposed. Other SOP classes get no item (allowed by PS3.7 D.3.3.5).
 */
function answerExtendedNegotiation(proposal: ExtendedNegotiation, accepted: ReadonlySet<string>): ExtendedNegotiation | undefined {
  if (!FIND_SOP_CLASSES.has(proposal.sopClassUid) || !accepted.has(proposal.sopClassUid)) return undefined;
  const n = Math.min(Math.max(proposal.info.length, 1), 4);
  return { sopClassUid: proposal.sopClassUid, info: Buffer.alloc(n, 0) };
}

/**
 * SCP/SCU Role Selection (PS3.7 D.3.3.4): for storage SOP classes (the SCU of a C-GET acting as
 * storage SCP) the proposed roles are accepted; for others we keep the default roles (the
 * requestor is SCU only).
 */
function answerRoleSelection(proposal: RoleSelection, contexts: ReadonlyMap<number, AcceptedContext>): RoleSelection | undefined {
  const ctx = [...contexts.values()].find((c) => c.abstractSyntax === proposal.sopClassUid);
  if (ctx === undefined) return undefined;
  if (ctx.kind === 'storage') return { ...proposal };
  return { sopClassUid: proposal.sopClassUid, scuRole: proposal.scuRole, scpRole: false };
}

/** The services the SCP offers; a context for any other is refused (result 3). */
export const ALL_SERVICES: ReadonlySet<ServiceKind> = new Set<ServiceKind>(['verification', 'storage', 'find']);

export function negotiate(rq: AssociateRq, policy: NegotiationPolicy, permissions: Permissions, services: ReadonlySet<ServiceKind> = ALL_SERVICES): Negotiated {
  const contexts = new Map<number, AcceptedContext>();
  const answers: PresentationContextAc[] = [];
  for (const pc of rq.presentationContexts) {
    // Presentation context IDs are odd integers, unique within the association (PS3.8 9.3.2.2).
    if (pc.id % 2 === 0 || contexts.has(pc.id) || answers.some((a) => a.id === pc.id)) {
      answers.push({ id: pc.id, result: PresentationResult.NO_REASON, transferSyntax: '' });
      continue;
    }
    const kind = classify(pc.abstractSyntax, policy, permissions, services);
    if (typeof kind === 'number') {
      answers.push({ id: pc.id, result: kind, transferSyntax: '' });
      continue;
    }
    const ts = chooseTransferSyntax(kind, pc.transferSyntaxes, policy);
    if (ts === undefined) {
      answers.push({ id: pc.id, result: PresentationResult.TRANSFER_SYNTAXES_NOT_SUPPORTED, transferSyntax: '' });
      continue;
    }
    contexts.set(pc.id, { id: pc.id, abstractSyntax: pc.abstractSyntax, transferSyntax: ts, kind });
    answers.push({ id: pc.id, result: PresentationResult.ACCEPTANCE, transferSyntax: ts });
  }

  const acceptedClasses = new Set([...contexts.values()].map((c) => c.abstractSyntax));
  const ui = emptyUserInformation();
  ui.maxLength = policy.maxPduLength;
  ui.implementationClassUid = IMPLEMENTATION_CLASS_UID;
  ui.implementationVersionName = IMPLEMENTATION_VERSION_NAME;
  // We perform one operation at a time in each direction (PS3.7 D.3.3.3).
  if (rq.userInformation.asyncOperationsWindow !== undefined) ui.asyncOperationsWindow = { maxInvoked: 1, maxPerformed: 1 };
  for (const r of rq.userInformation.roleSelections) {
    const answer = answerRoleSelection(r, contexts);
    if (answer) ui.roleSelections.push(answer);
  }
  for (const e of rq.userInformation.extendedNegotiations) {
    const answer = answerExtendedNegotiation(e, acceptedClasses);
    if (answer) ui.extendedNegotiations.push(answer);
  }

  return {
    ac: {
      type: 'A-ASSOCIATE-AC',
      protocolVersion: 1,
      calledAe: rq.calledAe,
      callingAe: rq.callingAe,
      applicationContext: rq.applicationContext,
      presentationContexts: answers,
      userInformation: ui,
    },
    contexts,
    peerMaxLength: rq.userInformation.maxLength ?? 0,
  };
}
