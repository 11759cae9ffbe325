/**
 * Transfer syntaxes we know (PS3.6 Annex A). "Known" is what storage negotiation accepts when
 * accept-all is on (SPEC §4) and what ingest can parse: every encapsulated syntax shares the
 * Explicit VR Little Endian dataset encoding, so the header reader needs nothing codec-specific.
 */
export interface TransferSyntax {
  uid: string;
  name: string;
  explicitVr: boolean;
  littleEndian: boolean;
  /** Pixel Data is a sequence of fragments (undefined length OB). */
  encapsulated: boolean;
  /** The dataset after File Meta is a raw deflate stream (PS3.5 A.5). */
  deflated: boolean;
  lossy: boolean;
  retired: boolean;
}

export const IMPLICIT_VR_LE = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
export const DEFLATED_EXPLICIT_VR_LE = '1.2.840.10008.1.2.1.99';
export const EXPLICIT_VR_BE = '1.2.840.10008.1.2.2';
export const ENCAPSULATED_UNCOMPRESSED_EXPLICIT_VR_LE = '1.2.840.10008.1.2.1.98';
export const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';
export const JPEG_EXTENDED = '1.2.840.10008.1.2.4.51';
export const JPEG_LOSSLESS = '1.2.840.10008.1.2.4.57';
export const JPEG_LOSSLESS_SV1 = '1.2.840.10008.1.2.4.70';
export const JPEG_LS_LOSSLESS = '1.2.840.10008.1.2.4.80';
export const JPEG_LS_NEAR_LOSSLESS = '1.2.840.10008.1.2.4.81';
export const JPEG_2000_LOSSLESS = '1.2.840.10008.1.2.4.90';
export const JPEG_2000 = '1.2.840.10008.1.2.4.91';
export const HTJ2K_LOSSLESS = '1.2.840.10008.1.2.4.201';
export const HTJ2K_LOSSLESS_RPCL = '1.2.840.10008.1.2.4.202';
export const HTJ2K = '1.2.840.10008.1.2.4.203';
export const RLE_LOSSLESS = '1.2.840.10008.1.2.5';

type Kind = 'native' | 'encapsulated';

function ts(uid: string, name: string, kind: Kind, lossy: boolean, extra: Partial<TransferSyntax> = {}): TransferSyntax {
  return Object.freeze({
    uid,
    name,
    explicitVr: true,
    littleEndian: true,
    encapsulated: kind === 'encapsulated',
    deflated: false,
    lossy,
    retired: false,
    ...extra,
  });
}

export const TRANSFER_SYNTAXES: readonly TransferSyntax[] = Object.freeze([
  ts(IMPLICIT_VR_LE, 'Implicit VR Little Endian', 'native', false, { explicitVr: false }),
  ts(EXPLICIT_VR_LE, 'Explicit VR Little Endian', 'native', false),
  ts(ENCAPSULATED_UNCOMPRESSED_EXPLICIT_VR_LE, 'Encapsulated Uncompressed Explicit VR Little Endian', 'encapsulated', false),
  ts(DEFLATED_EXPLICIT_VR_LE, 'Deflated Explicit VR Little Endian', 'native', false, { deflated: true }),
  ts(EXPLICIT_VR_BE, 'Explicit VR Big Endian', 'native', false, { littleEndian: false, retired: true }),
  ts(JPEG_BASELINE, 'JPEG Baseline (Process 1)', 'encapsulated', true),
  ts(JPEG_EXTENDED, 'JPEG Extended (Process 2 & 4)', 'encapsulated', true),
  ts(JPEG_LOSSLESS, 'JPEG Lossless, Non-Hierarchical (Process 14)', 'encapsulated', false),
  ts(JPEG_LOSSLESS_SV1, 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])', 'encapsulated', false),
  ts(JPEG_LS_LOSSLESS, 'JPEG-LS Lossless Image Compression', 'encapsulated', false),
  ts(JPEG_LS_NEAR_LOSSLESS, 'JPEG-LS Lossy (Near-Lossless) Image Compression', 'encapsulated', true),
  ts(JPEG_2000_LOSSLESS, 'JPEG 2000 Image Compression (Lossless Only)', 'encapsulated', false),
  // may hold lossless data too; "lossy" means the syntax permits loss, which is what callers decide on
  ts(JPEG_2000, 'JPEG 2000 Image Compression', 'encapsulated', true),
  ts('1.2.840.10008.1.2.4.92', 'JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)', 'encapsulated', false),
  ts('1.2.840.10008.1.2.4.93', 'JPEG 2000 Part 2 Multi-component Image Compression', 'encapsulated', true),
  ts(HTJ2K_LOSSLESS, 'High-Throughput JPEG 2000 Image Compression (Lossless Only)', 'encapsulated', false),
  ts(HTJ2K_LOSSLESS_RPCL, 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)', 'encapsulated', false),
  ts(HTJ2K, 'High-Throughput JPEG 2000 Image Compression', 'encapsulated', true),
  ts(RLE_LOSSLESS, 'RLE Lossless', 'encapsulated', false),
  ts('1.2.840.10008.1.2.4.100', 'MPEG2 Main Profile / Main Level', 'encapsulated', true),
  ts('1.2.840.10008.1.2.4.101', 'MPEG2 Main Profile / High Level', 'encapsulated', true),
  ts('1.2.840.10008.1.2.4.102', 'MPEG-4 AVC/H.264 High Profile / Level 4.1', 'encapsulated', true),
  ts('1.2.840.10008.1.2.4.103', 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1', 'encapsulated', true),
  ts('1.2.840.10008.1.2.4.104', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video', 'encapsulated', true),
  ts('1.2.840.10008.1.2.4.105', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video', 'encapsulated', true),
  ts('1.2.840.10008.1.2.4.106', 'MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2', 'encapsulated', true),
  ts('1.2.840.10008.1.2.4.107', 'HEVC/H.265 Main Profile / Level 5.1', 'encapsulated', true),
  ts('1.2.840.10008.1.2.4.108', 'HEVC/H.265 Main 10 Profile / Level 5.1', 'encapsulated', true),
]);

const BY_UID: ReadonlyMap<string, TransferSyntax> = new Map(TRANSFER_SYNTAXES.map((t) => [t.uid, t]));

/** The transfer syntax with this UID (trailing NUL/space tolerated), or undefined if we do not know it. */
export function transferSyntax(uid: string): TransferSyntax | undefined {
  return BY_UID.get(uid) ?? BY_UID.get(uid.replace(/[\0 ]+$/, ''));
}

export function isKnownTransferSyntax(uid: string): boolean {
  return transferSyntax(uid) !== undefined;
}
