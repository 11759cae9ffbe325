// Shared by the negotiation tests: UIDs, a permissive policy and an A-ASSOCIATE-RQ builder.
import type { NegotiationPolicy } from '../../../src/dimse/acse/negotiate.js';
import { emptyUserInformation, type AssociateRq } from '../../../src/dimse/pdu/types.js';

export const IMPLICIT = '1.2.840.10008.1.2';
export const EXPLICIT = '1.2.840.10008.1.2.1';
export const CT = '1.2.840.10008.5.1.4.1.1.2';
export const FIND = '1.2.840.10008.5.1.4.1.2.2.1';

export const policy: NegotiationPolicy = { acceptAll: true, accepted: [], preferred: [], acceptUnknownSopClasses: true, maxPduLength: 65536 };

/** Contexts get the IDs 1, 3, 5, …; `ui` is merged into the user information (maxLength 16384). */
export function rq(contexts: [string, string[]][], extra: Partial<AssociateRq> = {}, ui: Partial<AssociateRq['userInformation']> = {}): AssociateRq {
  return {
    type: 'A-ASSOCIATE-RQ',
    protocolVersion: 1,
    calledAe: 'PACSNODE',
    callingAe: 'SCU',
    applicationContext: '1.2.840.10008.3.1.1.1',
    presentationContexts: contexts.map(([abstractSyntax, transferSyntaxes], i) => ({ id: 2 * i + 1, abstractSyntax, transferSyntaxes })),
    userInformation: { ...emptyUserInformation(), maxLength: 16384, ...ui },
    ...extra,
  };
}
