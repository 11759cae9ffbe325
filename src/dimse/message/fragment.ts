/**
 * Outgoing messages as P-DATA-TF PDUs within the peer's Maximum Length Received (PS3.8 D.1):
 * one PDV per PDU, each PDU ready for one socket write.
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { PDU_HEADER_LENGTH, PDV_HEADER_LENGTH, encodeSinglePdv } from '../pdu/codec.js';
import { PduType } from '../pdu/types.js';

/**
 * The largest PDV data we put in one PDU, whatever the peer allows: its announced maximum (up to
 * 4 GiB) is not a size to allocate (each PDU is built in one buffer), and smaller PDUs are
 * always allowed (PS3.8 D.1). Also the size when the peer announces no limit (0).
 */
export const UNLIMITED_FRAGMENT_LENGTH = 1024 * 1024;

/**
 * The smallest Maximum Length Received (PS3.8 D.1) we work with, other than 0 (no limit): a peer
 * announcing less (7 bytes makes one data byte per 13-byte PDU) would cost ~13 times the bytes on
 * the wire and a system call per few bytes. As SCP such a request is rejected, as SCU such an
 * answer fails the association (ADR 0023).
 */
export const MIN_PEER_MAX_LENGTH = 1024;

/**
 * How long a send loop may run without giving the event loop a turn (ADR 0023). A socket that
 * takes every write (a peer reading promptly) never makes a send wait, so without this a large
 * data set in small PDUs would go out in one unbroken chain of microtasks: timers, HTTP and the
 * other associations would wait for its last byte.
 */
export const SEND_TIME_SLICE_MS = 4;

/** PDUs between two looks at the clock: one performance.now() per 16 PDUs keeps the fast path cheap. */
const PDUS_PER_CLOCK_CHECK = 16;

/**
 * Time slicing for a loop that sends PDUs: `pdu()` after each PDU sent returns, once the loop ran
 * for SEND_TIME_SLICE_MS since its start or its last pause, a promise that resolves on the next
 * turn of the event loop (setImmediate: pending I/O and timers run first); else undefined, with
 * nothing to await. Time spent waiting for the socket (backpressure) counts as running: at worst
 * one needless pause follows such a wait.
 */
export class SendTimeSlice {
  private count = 0;
  private since = performance.now();

  pdu(): Promise<void> | undefined {
    if (++this.count < PDUS_PER_CLOCK_CHECK) return undefined;
    this.count = 0;
    if (performance.now() - this.since < SEND_TIME_SLICE_MS) return undefined;
    return nextTurn().then(() => {
      this.since = performance.now();
    });
  }
}

/**
 * Sends PDUs one by one through `send` (awaited: backpressure), giving the event loop a turn
 * whenever the loop ran for a time slice (SendTimeSlice); `slice` may be shared by several calls
 * that make one message.
 */
export async function sendPdus(pdus: Iterable<Buffer>, send: (pdu: Buffer) => Promise<void>, slice = new SendTimeSlice()): Promise<void> {
  for (const pdu of pdus) {
    await send(pdu);
    const pause = slice.pdu();
    if (pause !== undefined) await pause;
  }
}

/** The largest PDV data that fits a P-DATA-TF for a peer with this maximum length (capped, see above). */
export function maxFragmentLength(peerMaxLength: number): number {
  if (peerMaxLength === 0) return UNLIMITED_FRAGMENT_LENGTH;
  return Math.min(UNLIMITED_FRAGMENT_LENGTH, Math.max(1, peerMaxLength - PDV_HEADER_LENGTH));
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

/**
 * A data set from its source into P-DATA-TF PDUs of one PDV each, at most the peer's maximum length,
 * the last one marked so; each PDU is built in place around the copied bytes (one write) and handed
 * to `send`, which is awaited before more of the source is read (backpressure). `check` runs before
 * each PDU is started (throw to stop). The event loop gets a turn whenever the loop ran for a time
 * slice (SendTimeSlice), however promptly the socket takes the PDUs. A source of odd length gets
 * one 00H byte at its end (PS3.5 A.5's pad of a deflated data set), not counted. Resolves with the
 * number of the source's bytes sent.
 */
export async function sendDataSetPdus(
  contextId: number,
  source: Uint8Array | AsyncIterable<Uint8Array>,
  peerMaxLength: number,
  send: (pdu: Buffer, dataBytes: number) => Promise<void>,
  check: () => void = () => undefined,
): Promise<number> {
  const max = maxFragmentLength(peerMaxLength);
  const headerLength = PDU_HEADER_LENGTH + PDV_HEADER_LENGTH;
  let total = 0;
  let pdu: Buffer | undefined;
  let fill = 0;
  const slice = new SendTimeSlice();
  let padded = false;
  const flush = async (last: boolean): Promise<void> => {
    const out = (pdu ?? Buffer.allocUnsafe(headerLength)).subarray(0, headerLength + fill);
    out.writeUInt8(PduType.P_DATA_TF, 0);
    out.writeUInt8(0, 1);
    out.writeUInt32BE(PDV_HEADER_LENGTH + fill, 2);
    out.writeUInt32BE(2 + fill, 6);
    out.writeUInt8(contextId, 10);
    out.writeUInt8(last ? 2 : 0, 11);
    // The pad byte (always in the last PDU) is not a byte of the data set.
    const n = last && padded ? fill - 1 : fill;
    pdu = undefined;
    fill = 0;
    await send(out, n);
    total += n;
    const pause = slice.pdu();
    if (pause !== undefined) await pause;
  };
  const push = async (chunk: Uint8Array): Promise<void> => {
    let o = 0;
    while (o < chunk.length) {
      if (pdu !== undefined && fill === max) await flush(false);
      if (pdu === undefined) {
        check();
        pdu = Buffer.allocUnsafe(headerLength + max);
        fill = 0;
      }
      const k = Math.min(max - fill, chunk.length - o);
      pdu.set(chunk.subarray(o, o + k), headerLength + fill);
      fill += k;
      o += k;
    }
  };
  if (source instanceof Uint8Array) await push(source);
  else for await (const chunk of source) await push(chunk);
  // Every encoded data set has an even length: a deflated one ends in a pad byte when the deflate
  // stream is odd (PS3.5 A.5), which files written without it lack; peers such as DCMTK abort the
  // association on an odd fragment ("Odd Fragment Length").
  if ((total + fill) % 2 === 1) {
    await push(PAD_BYTE);
    padded = true;
  }
  await flush(true);
  return total;
}

const PAD_BYTE = new Uint8Array([0]);
