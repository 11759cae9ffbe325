/**
 * Who may associate (SPEC §4): the called AE must be ours, the calling AE registered when the
 * whitelist is on, and the association count under max_associations. The answer is either an
 * A-ASSOCIATE-RJ reason or the calling node's permissions (its flags), which negotiation applies
 * to the presentation contexts.
 */
import { DICOM_APPLICATION_CONTEXT, Reject, type AssociateRq, type RejectReason } from '../pdu/types.js';

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
  if (o.activeAssociations >= o.maxAssociations) return { ok: false, reject: Reject.LOCAL_LIMIT_EXCEEDED, detail: 'max_associations reached' };
  if (!o.whitelist) return { ok: true, permissions: ALL_PERMITTED };
  const node = o.findNode ? await o.findNode(rq.callingAe) : undefined;
  if (node === undefined) return { ok: false, reject: Reject.CALLING_AE_NOT_RECOGNIZED, detail: 'calling AE title not registered' };
  return { ok: true, permissions: { store: node.allowStore, find: node.allowFind, retrieve: node.allowRetrieve } };
}
