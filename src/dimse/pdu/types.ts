/**
 * The PDUs and items of the DICOM upper layer (PS3.8 section 9.3), as plain data. Names follow the
 * standard; codec.ts turns them into bytes and back.
 */

/** PDU types (PS3.8 Table 9-1 ff.). */
export const PduType = {
  A_ASSOCIATE_RQ: 0x01,
  A_ASSOCIATE_AC: 0x02,
  A_ASSOCIATE_RJ: 0x03,
  P_DATA_TF: 0x04,
  A_RELEASE_RQ: 0x05,
  A_RELEASE_RP: 0x06,
  A_ABORT: 0x07,
} as const;

/** Item types of A-ASSOCIATE-RQ/AC (PS3.8 9.3.2, 9.3.3) and of the user information item (PS3.7 Annex D.3.3). */
export const ItemType = {
  APPLICATION_CONTEXT: 0x10,
  PRESENTATION_CONTEXT_RQ: 0x20,
  PRESENTATION_CONTEXT_AC: 0x21,
  ABSTRACT_SYNTAX: 0x30,
  TRANSFER_SYNTAX: 0x40,
  USER_INFORMATION: 0x50,
  MAXIMUM_LENGTH: 0x51,
  IMPLEMENTATION_CLASS_UID: 0x52,
  ASYNCHRONOUS_OPERATIONS_WINDOW: 0x53,
  SCP_SCU_ROLE_SELECTION: 0x54,
  IMPLEMENTATION_VERSION_NAME: 0x55,
  SOP_CLASS_EXTENDED_NEGOTIATION: 0x56,
  SOP_CLASS_COMMON_EXTENDED_NEGOTIATION: 0x57,
  USER_IDENTITY_RQ: 0x58,
  USER_IDENTITY_AC: 0x59,
} as const;

/** The DICOM Application Context Name (PS3.7 A.2.1). */
export const DICOM_APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

/** Presentation context result/reason in A-ASSOCIATE-AC (PS3.8 Table 9-18). */
export const PresentationResult = {
  ACCEPTANCE: 0,
  USER_REJECTION: 1,
  NO_REASON: 2,
  ABSTRACT_SYNTAX_NOT_SUPPORTED: 3,
  TRANSFER_SYNTAXES_NOT_SUPPORTED: 4,
} as const;
export type PresentationResult = (typeof PresentationResult)[keyof typeof PresentationResult];

/** A-ASSOCIATE-RJ result, source and reason (PS3.8 Table 9-21). */
export interface RejectReason {
  /** 1 rejected-permanent, 2 rejected-transient */
  result: 1 | 2;
  /** 1 service-user, 2 service-provider (ACSE related), 3 service-provider (presentation related) */
  source: 1 | 2 | 3;
  reason: number;
}

export const Reject = {
  /** 1/1/3: calling AE title not recognized */
  CALLING_AE_NOT_RECOGNIZED: { result: 1, source: 1, reason: 3 },
  /** 1/1/7: called AE title not recognized */
  CALLED_AE_NOT_RECOGNIZED: { result: 1, source: 1, reason: 7 },
  /** 1/1/2: application context name not supported */
  APPLICATION_CONTEXT_NOT_SUPPORTED: { result: 1, source: 1, reason: 2 },
  /** 1/2/2: protocol version not supported */
  PROTOCOL_VERSION_NOT_SUPPORTED: { result: 1, source: 2, reason: 2 },
  /** 2/3/2: local limit exceeded */
  LOCAL_LIMIT_EXCEEDED: { result: 2, source: 3, reason: 2 },
} as const satisfies Record<string, RejectReason>;

/** A-ABORT source (PS3.8 Table 9-26). */
export const AbortSource = { SERVICE_USER: 0, SERVICE_PROVIDER: 2 } as const;

/** A-ABORT reasons when the source is the service provider (PS3.8 Table 9-26). */
export const AbortReason = {
  NOT_SPECIFIED: 0,
  UNRECOGNIZED_PDU: 1,
  UNEXPECTED_PDU: 2,
  UNRECOGNIZED_PDU_PARAMETER: 4,
  UNEXPECTED_PDU_PARAMETER: 5,
  INVALID_PDU_PARAMETER_VALUE: 6,
} as const;

export interface PresentationContextRq {
  /** Odd, 1..255 */
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface PresentationContextAc {
  id: number;
  result: PresentationResult;
  /** Meaningful only when accepted; an empty string is sent as an empty sub-item otherwise. */
  transferSyntax: string;
}

/** SCP/SCU Role Selection (PS3.7 D.3.3.4). */
export interface RoleSelection {
  sopClassUid: string;
  scuRole: boolean;
  scpRole: boolean;
}

/** SOP Class Extended Negotiation (PS3.7 D.3.3.5): the service-class application information is opaque here. */
export interface ExtendedNegotiation {
  sopClassUid: string;
  info: Buffer;
}

/** Asynchronous Operations Window (PS3.7 D.3.3.3). */
export interface AsyncOperationsWindow {
  maxInvoked: number;
  maxPerformed: number;
}

/** A sub-item kept as bytes (SOP Class Common Extended Negotiation, User Identity, unknown types). */
export interface RawItem {
  type: number;
  data: Buffer;
}

export interface UserInformation {
  /** Maximum Length Received (PS3.8 D.1); 0 = no limit. */
  maxLength?: number;
  implementationClassUid?: string;
  implementationVersionName?: string;
  asyncOperationsWindow?: AsyncOperationsWindow;
  roleSelections: RoleSelection[];
  extendedNegotiations: ExtendedNegotiation[];
  otherItems: RawItem[];
}

export interface AssociateRq {
  type: 'A-ASSOCIATE-RQ';
  protocolVersion: number;
  calledAe: string;
  callingAe: string;
  /** Decoded requests: the 32 bytes of the Called and Calling AE Title fields as received. */
  aeFields?: Buffer;
  applicationContext: string;
  presentationContexts: PresentationContextRq[];
  userInformation: UserInformation;
}

export interface AssociateAc {
  type: 'A-ASSOCIATE-AC';
  protocolVersion: number;
  /** Reserved fields that shall carry the values of the request (PS3.8 9.3.3). */
  calledAe: string;
  callingAe: string;
  /** When set (the request's `aeFields`), these 32 bytes are sent as they are: the request's exact values. */
  aeFields?: Buffer;
  applicationContext: string;
  presentationContexts: PresentationContextAc[];
  userInformation: UserInformation;
}

export interface AssociateRj extends RejectReason {
  type: 'A-ASSOCIATE-RJ';
}

/** One Presentation Data Value item (PS3.8 9.3.5.1, Annex E). */
export interface Pdv {
  contextId: number;
  /** Message control header bit 0: command (true) or data set (false). */
  command: boolean;
  /** Message control header bit 1: the last fragment of the command or data set. */
  last: boolean;
  data: Buffer;
}

export interface PDataTf {
  type: 'P-DATA-TF';
  pdvs: Pdv[];
}

export interface ReleaseRq {
  type: 'A-RELEASE-RQ';
}

export interface ReleaseRp {
  type: 'A-RELEASE-RP';
}

export interface Abort {
  type: 'A-ABORT';
  source: number;
  reason: number;
}

export type Pdu = AssociateRq | AssociateAc | AssociateRj | PDataTf | ReleaseRq | ReleaseRp | Abort;

/** A decoding failure: the PDU is malformed. `reason` is the A-ABORT reason to answer with. */
export class PduError extends Error {
  constructor(
    message: string,
    readonly reason: number = AbortReason.INVALID_PDU_PARAMETER_VALUE,
  ) {
    super(message);
    this.name = 'PduError';
  }
}

export function emptyUserInformation(): UserInformation {
  return { roleSelections: [], extendedNegotiations: [], otherItems: [] };
}
