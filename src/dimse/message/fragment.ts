/**
 * Outgoing messages as P-DATA-TF PDUs within the peer's Maximum Length Received (PS3.8 D.1):
 * one PDV per PDU, each PDU ready for one socket write.
 */
import { PDV_HEADER_LENGTH, encodeSinglePdv } from '../pdu/codec.js';

/** When the peer announces no limit (0), fragments are cut at this size anyway. */
export const UNLIMITED_FRAGMENT_LENGTH = 1024 * 1024;

/** The largest PDV data that fits a P-DATA-TF for a peer with this maximum length. */
export function maxFragmentLength(peerMaxLength: number): number {
  if (peerMaxLength === 0) return UNLIMITED_FRAGMENT_LENGTH;
  return Math.max(1, peerMaxLength - PDV_HEADER_LENGTH);
}

/** The P-DATA-TF PDUs carrying a command set or a data set (an empty one still gets its last PDV). */
export function* fragmentPdus(contextId: number, command: boolean, data: Uint8Array, peerMaxLength: number): Generator<Buffer> {
  const max = maxFragmentLength(peerMaxLength);
  if (data.length === 0) {
    yield encodeSinglePdv(contextId, command, true, data);
    return;
  }
  for (let o = 0; o < data.length; o += max) {
    const end = Math.min(data.length, o + max);
    yield encodeSinglePdv(contextId, command, end === data.length, data.subarray(o, end));
  }
}
