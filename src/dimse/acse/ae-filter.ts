/**
 * Who may associate (SPEC §4): the called AE must be ours, the peer's Maximum Length Received 0 or
 * at least MIN_PEER_MAX_LENGTH, the calling AE registered when the whitelist is on, and the
 * association count under max_associations. The answer is either an A-ASSOCIATE-RJ reason or the
 * calling node's permissions (its flags), which negotiation applies to the presentation contexts.
 */
import { MIN_PEER_MAX_LENGTH } from '../message/fragment.js';
import { DICOM_APPLICATION_CONTEXT, Reject, type AssociateRq, type RejectReason } from '../pdu/types.js';

/**
 * 1/1/1 (rejected-permanent, service user, no reason given): the peer announced a Maximum Length
 * Received below MIN_PEER_MAX_LENGTH (ADR 0023); PS3.8 Table 9-21 has no reason for it.
 */
export const REJECT_MAX_LENGTH_TOO_SMALL: RejectReason = Object.freeze({ result: 1, source: 1, reason: 1 });

export interface Permissions {
  store: boolean;
  find: boolean;
  retrieve: boolean;
}

export const ALL_PERMITTED: Permissions = Object.freeze({ store: true, find: true, retrieve: true });

/** The node registered under an AE title (archive/nodes.ts `find`), as far as the filter needs it. */
export interface KnownNode {
  allowStore: boolean;
  allowFind: boolean;
  allowRetrieve: boolean;
}

export interface AeFilterOptions {
  aeTitle: string;
  whitelist: boolean;
  /** Looks a calling AE title up among the registered nodes. */
  findNode?: (aeTitle: string) => Promise<KnownNode | undefined>;
  maxAssociations: number;
  /** Associations open (established or being negotiated), not counting this one. */
  activeAssociations: number;
}

export type Admission = { ok: true; permissions: Permissions } | { ok: false; reject: RejectReason; detail: string };

export async function admit(rq: AssociateRq, o: AeFilterOptions): Promise<Admission> {
  if (rq.applicationContext !== DICOM_APPLICATION_CONTEXT) {
    return { ok: false, reject: Reject.APPLICATION_CONTEXT_NOT_SUPPORTED, detail: 'application context name not supported' };
  }
  if (rq.calledAe !== o.aeTitle) return { ok: false, reject: Reject.CALLED_AE_NOT_RECOGNIZED, detail: 'called AE title not recognized' };
  // Checked before the registry lookup: a permanent property of the request, and free to check.
  const maxLength = rq.userInformation.maxLength ?? 0;
  if (maxLength !== 0 && maxLength < MIN_PEER_MAX_LENGTH) {
    return { ok: false, reject: REJECT_MAX_LENGTH_TOO_SMALL, detail: `peer's Maximum Length Received ${maxLength} is below ${MIN_PEER_MAX_LENGTH}` };
  }
  if (o.activeAssociations >= o.maxAssociations) return { ok: false, reject: Reject.LOCAL_LIMIT_EXCEEDED, detail: 'max_associations reached' };
  if (!o.whitelist) return { ok: true, permissions: ALL_PERMITTED };
  const node = o.findNode ? await o.findNode(rq.callingAe) : undefined;
  if (node === undefined) return { ok: false, reject: Reject.CALLING_AE_NOT_RECOGNIZED, detail: 'calling AE title not registered' };
  return { ok: true, permissions: { store: node.allowStore, find: node.allowFind, retrieve: node.allowRetrieve } };
}
