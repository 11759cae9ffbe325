/**
 * C-STORE SCU (PS3.4 B, PS3.7 9.1.1): Part-10 sources sent over one association (more when over
 * 128 presentation contexts are needed, when a broken source forced an abort, or when the peer
 * closed the association between two instances). An association that fails during an instance
 * because of the peer (no answer within the timeout, an A-ABORT, a dropped connection, a
 * response we cannot take) ends the run: the instances not yet sent fail with that reason, as
 * DCMTK's storescu and dcmqrscp do, instead of costing a new association and, from a peer that
 * hangs, a whole timeout each. Proposed per
 * SOP class: the transfer syntax of each source alone, and {Explicit VR LE, Implicit VR LE}. An
 * instance goes out on a context that accepted its own syntax, its data set bytes exactly as they
 * follow the File Meta, streamed from the source. When only another native syntax was accepted,
 * the data set is re-encoded on the fly (dicom/reencode.ts: Implicit/Explicit VR LE, Explicit VR
 * BE and Deflated to a little-endian native syntax); otherwise (a compressed syntax refused) the
 * instance fails locally - nothing is transcoded. Also the C-STORE side of C-MOVE sub-operations
 * (Move Originator AE Title / Message ID, a stop between instances on C-CANCEL).
 */
import { stat } from 'node:fs/promises';
import type { Logger } from '../../archive/context.js';
import { canReencode, reencodeDataSet } from '../../dicom/reencode.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../dicom/transfer-syntax.js';
import { CommandField, DATA_SET_PRESENT, Priority } from '../message/command.js';
import { Status, storeOutcomeOf } from '../message/status.js';
import type { PresentationContextRq } from '../pdu/types.js';
import { ScuAssociation, type AcceptedPresentationContext, type ScuTarget } from './association.js';
import { isScuError, logDetail } from './errors.js';
import { checkFileComplete, fileSource, openPart10, readFileMeta } from './part10.js';

/** An instance to send: its identity and a way to read its Part-10 bytes (File Meta included). */
export interface StoreItem {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** The Part-10 bytes; read once, when the instance is sent. */
  open(): Promise<AsyncIterable<Uint8Array>>;
  /** For reports (a file path); the SOP Instance UID otherwise. */
  label?: string;
  /** Bytes when known, for progress: ideally those of the data set (what `bytesSent` counts). */
  size?: number;
}

/** A Part-10 file path, or an item. */
export type StoreSource = string | StoreItem;

export type StoreOutcome = 'success' | 'warning' | 'failure';

export interface StoreInstanceResult {
  label: string;
  sopInstanceUid?: string;
  sopClassUid?: string;
  transferSyntaxUid?: string;
  outcome: StoreOutcome;
  /** The transfer syntax the data set was sent in, when it was re-encoded from transferSyntaxUid. */
  sentTransferSyntaxUid?: string;
  /** The C-STORE-RSP status; absent when the instance was not sent (local failure). */
  status?: number;
  /** Why it failed locally, or the peer's Error Comment. */
  error?: string;
  /** Data set bytes sent. */
  bytes: number;
}

export interface StoreProgress {
  total: number;
  completed: number;
  warning: number;
  failed: number;
  /** total - completed - warning - failed */
  remaining: number;
  bytesSent: number;
  /** Sum of known source sizes (files), when every size is known. */
  totalBytes?: number;
  /** The instance just finished (absent on byte-only updates). */
  result?: StoreInstanceResult;
}

export interface StoreOptions {
  onProgress?: (progress: StoreProgress) => void;
  /** Aborts at once: the instance in flight is abandoned (A-ABORT), the rest not sent. */
  signal?: AbortSignal;
  /** Stops between instances: the one in flight completes, the association is released (C-CANCEL of a C-MOVE). */
  stopSignal?: AbortSignal;
  /** C-MOVE sub-operations: Move Originator AE Title (0000,1030) and Message ID (0000,1031) of each C-STORE-RQ. */
  moveOriginator?: { aeTitle: string; messageId: number };
}

export interface StoreResult {
  results: StoreInstanceResult[];
  total: number;
  completed: number;
  warning: number;
  failed: number;
  bytesSent: number;
  durationMs: number;
  /** A signal fired: instances after the one in flight were not sent (they count as neither done nor failed). */
  cancelled: boolean;
}

export interface StoreDeps {
  callingAe: string;
  timeoutMs: number;
  maxPduLength: number;
  logger: Logger;
}

const NATIVE_LE = [EXPLICIT_VR_LE, IMPLICIT_VR_LE];
/** At most 128 presentation contexts fit in an association (odd IDs 1..255). */
const MAX_CONTEXTS = 128;
/** Byte-progress reports during one instance, at most this often. */
const BYTE_PROGRESS_STEP = 4 * 1024 * 1024;

interface Prepared {
  label: string;
  item?: StoreItem;
  /** Set when preparation failed: the instance is reported failed without being sent. */
  error?: string;
}

function pairKey(sopClassUid: string, ts: string): string {
  return `${sopClassUid}|${ts}`;
}

/** A file path as an item: File Meta read and the data set checked whole now, the bytes when sent. */
async function fileItem(path: string): Promise<StoreItem> {
  const meta = await readFileMeta(path);
  const fileSize = (await stat(path)).size;
  await checkFileComplete(path, fileSize);
  // The data set's bytes, what bytesSent counts (the progress bar compares the two)
  const size = Math.max(0, fileSize - meta.datasetOffset);
  return { sopClassUid: meta.sopClassUid, sopInstanceUid: meta.sopInstanceUid, transferSyntaxUid: meta.transferSyntaxUid, label: path, size, open: async () => fileSource(path) };
}

async function prepare(sources: readonly StoreSource[]): Promise<Prepared[]> {
  const out: Prepared[] = [];
  for (const s of sources) {
    if (typeof s !== 'string') {
      out.push({ label: s.label ?? s.sopInstanceUid, item: s });
      continue;
    }
    try {
      out.push({ label: s, item: await fileItem(s) });
    } catch (err) {
      out.push({ label: s, error: `not sent: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  return out;
}

/**
 * Presentation contexts for a batch: per SOP class and transfer syntax a context proposing that
 * syntax alone (so an SCP preferring another cannot pick it: the bytes go out unchanged), and per
 * SOP class one proposing Explicit and Implicit VR LE (which tells, when the syntax of a file is
 * refused, what the peer would take instead).
 */
export function contextsFor(items: readonly StoreItem[]): PresentationContextRq[] {
  const seen = new Set<string>();
  const contexts: PresentationContextRq[] = [];
  const add = (abstractSyntax: string, transferSyntaxes: string[]): void => {
    const key = `${abstractSyntax}|${transferSyntaxes.join(',')}`;
    if (seen.has(key)) return;
    seen.add(key);
    contexts.push({ id: 2 * contexts.length + 1, abstractSyntax, transferSyntaxes });
  };
  for (const it of items) add(it.sopClassUid, [it.transferSyntaxUid]);
  for (const it of items) add(it.sopClassUid, NATIVE_LE);
  return contexts;
}

/** Splits the items, in order, into runs that need at most 128 contexts each (see contextsFor). */
function batches(items: readonly Prepared[]): Prepared[][] {
  const out: Prepared[][] = [];
  let current: Prepared[] = [];
  let pairs = new Set<string>();
  let classes = new Set<string>();
  for (const p of items) {
    if (p.item) {
      const key = pairKey(p.item.sopClassUid, p.item.transferSyntaxUid);
      const newPair = pairs.has(key) ? 0 : 1;
      const newClass = classes.has(p.item.sopClassUid) ? 0 : 1;
      if (pairs.size + classes.size + newPair + newClass > MAX_CONTEXTS) {
        out.push(current);
        current = [];
        pairs = new Set();
        classes = new Set();
      }
      pairs.add(key);
      classes.add(p.item.sopClassUid);
    }
    current.push(p);
  }
  if (current.length > 0) out.push(current);
  return out;
}

export async function storeInstances(deps: StoreDeps, target: ScuTarget, sources: readonly StoreSource[], options: StoreOptions = {}): Promise<StoreResult> {
  const started = Date.now();
  const { signal, stopSignal, onProgress, moveOriginator } = options;
  const prepared = await prepare(sources);
  const sizes = prepared.map((p) => p.item?.size);
  const totalBytes = sizes.every((s) => s !== undefined) ? sizes.reduce<number>((a, b) => a + (b ?? 0), 0) : undefined;
  const results: StoreInstanceResult[] = [];
  const counts = { completed: 0, warning: 0, failed: 0 };
  let bytesSent = 0;
  let cancelled = false;
  /** Stopped by stopSignal: the association is released, not aborted. */
  let stopped = false;

  const progress = (result?: StoreInstanceResult): void => {
    if (!onProgress) return;
    const p: StoreProgress = { total: prepared.length, ...counts, remaining: prepared.length - counts.completed - counts.warning - counts.failed, bytesSent };
    if (totalBytes !== undefined) p.totalBytes = totalBytes;
    if (result) p.result = result;
    onProgress(p);
  };
  const record = (r: StoreInstanceResult): void => {
    results.push(r);
    if (r.outcome === 'success') counts.completed++;
    else if (r.outcome === 'warning') counts.warning++;
    else counts.failed++;
    progress(r);
  };

  let opened = false;
  /** Why the run ended early (the peer failed during an instance): the rest is not sent. */
  let ended: string | undefined;
  const endRun = (reason: string, rest: readonly Prepared[]): void => {
    ended = reason;
    for (const p of rest) {
      const ids = p.item ? { sopInstanceUid: p.item.sopInstanceUid, sopClassUid: p.item.sopClassUid, transferSyntaxUid: p.item.transferSyntaxUid } : {};
      record({ label: p.label, ...ids, outcome: 'failure', error: p.item ? `not sent: ${reason}` : (p.error ?? 'not sent'), bytes: 0 });
    }
  };
  for (const batch of batches(prepared)) {
    if (ended !== undefined) {
      endRun(ended, batch);
      continue;
    }
    const items = batch.flatMap((p) => (p.item ? [p.item] : []));
    let assoc: ScuAssociation | undefined;
    const openAssoc = async (): Promise<ScuAssociation> => {
      const a = await ScuAssociation.open({
        target,
        callingAe: deps.callingAe,
        contexts: contextsFor(items),
        timeoutMs: deps.timeoutMs,
        maxPduLength: deps.maxPduLength,
        logger: deps.logger,
        operation: 'C-STORE',
        ...(signal ? { signal } : {}),
      });
      opened = true;
      return a;
    };
    /** The instance at i is being sent again, on a new association. */
    let retried = false;
    try {
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i] as Prepared;
        if (signal?.aborted || stopSignal?.aborted) {
          cancelled = true;
          stopped = signal?.aborted !== true;
          break;
        }
        if (!p.item) {
          record({ label: p.label, outcome: 'failure', error: p.error ?? 'not sent', bytes: 0 });
          continue;
        }
        if (assoc === undefined || assoc.closed) {
          try {
            assoc = await openAssoc();
          } catch (err) {
            // Nothing could be sent at all: the caller gets the reason. Later: the rest fails with it.
            if (!opened || (isScuError(err) && err.code === 'CANCELLED')) throw err;
            endRun(logDetail(err), batch.slice(i));
            assoc = undefined;
            break;
          }
        }
        const r = await sendOne(assoc, p.item, p.label, moveOriginator, (n) => {
          bytesSent += n;
        }, progress);
        if (r === 'closed' && !retried) {
          // The peer ended the association after the previous instance, before this one was sent
          // (an SCP can only abort): this instance goes on a new one, once.
          retried = true;
          i--;
          continue;
        }
        retried = false;
        if (r === 'closed') {
          endRun('the peer closed a new association before its first instance', batch.slice(i));
          break;
        }
        if (r === 'cancelled') {
          cancelled = true;
          break;
        }
        record(r.result);
        if (r.peerFailure !== undefined) {
          endRun(`the association failed on an earlier instance: ${r.peerFailure}`, batch.slice(i + 1));
          break;
        }
      }
    } catch (err) {
      if (isScuError(err) && err.code === 'CANCELLED') cancelled = true;
      else throw err;
    } finally {
      if (assoc && !assoc.closed) {
        if (cancelled && !stopped) assoc.abort('cancelled');
        else await assoc.release();
      }
    }
    if (cancelled) break;
  }
  return { results, total: prepared.length, ...counts, bytesSent, durationMs: Date.now() - started, cancelled };
}

/** The source's chunks, with `onError` called when reading (or re-encoding) it fails. */
async function* watchSource(source: AsyncIterable<Uint8Array>, onError: () => void): AsyncGenerator<Uint8Array, void, undefined> {
  try {
    yield* source;
  } catch (err) {
    onError();
    throw err;
  }
}

/** Whether data sets in `from` can go out on a context that accepted `to` (unchanged, or re-encoded). */
function sendable(from: string, to: string): boolean {
  return from === to || canReencode(from, to);
}

/**
 * The context an instance goes out on: one that accepted its own syntax (bytes unchanged), else
 * one whose syntax it can be re-encoded to, Explicit VR LE before Implicit VR LE.
 */
function contextForInstance(assoc: ScuAssociation, sopClassUid: string, ts: string): AcceptedPresentationContext | undefined {
  const exact = assoc.contextFor(sopClassUid, [ts]);
  if (exact) return exact;
  for (const target of NATIVE_LE) {
    const c = assoc.contextFor(sopClassUid, [target]);
    if (c && sendable(ts, c.transferSyntax)) return c;
  }
  return undefined;
}

/**
 * One C-STORE on an open association. Association-level trouble is reported as this instance's
 * failure, and, unless our own source caused it, as `peerFailure` (why, for the log and the rest);
 * 'closed' when the association had ended before anything of this instance was sent.
 */
async function sendOne(
  assoc: ScuAssociation,
  item: StoreItem,
  label: string,
  moveOriginator: StoreOptions['moveOriginator'],
  addBytes: (n: number) => void,
  progress: () => void,
): Promise<{ result: StoreInstanceResult; peerFailure?: string } | 'cancelled' | 'closed'> {
  const base = { label, sopInstanceUid: item.sopInstanceUid, sopClassUid: item.sopClassUid, transferSyntaxUid: item.transferSyntaxUid };
  // Read File Meta before anything is sent: a source that cannot be read fails alone.
  let opened;
  try {
    opened = await openPart10(await item.open());
  } catch (err) {
    return { result: { ...base, outcome: 'failure', error: `not sent: ${err instanceof Error ? err.message : String(err)}`, bytes: 0 } };
  }
  const { meta } = opened;
  const ident = { ...base, sopInstanceUid: meta.sopInstanceUid, sopClassUid: meta.sopClassUid, transferSyntaxUid: meta.transferSyntaxUid };
  const ctx = contextForInstance(assoc, meta.sopClassUid, meta.transferSyntaxUid);
  if (!ctx) {
    await opened.close().catch(() => {});
    // What the peer accepted for this SOP class on any of its contexts (the other files' syntaxes too).
    const acceptedSyntaxes = [...new Set([...assoc.accepted.values()].filter((c) => c.abstractSyntax === meta.sopClassUid).map((c) => c.transferSyntax))];
    const error =
      acceptedSyntaxes.length > 0
        ? `transfer syntax ${meta.transferSyntaxUid} not accepted by the peer for this SOP class (it accepted only ${acceptedSyntaxes.join(', ')}; no transcoding of compressed syntaxes)`
        : `SOP class ${meta.sopClassUid} not accepted by the peer`;
    return { result: { ...ident, outcome: 'failure', error, bytes: 0 } };
  }
  if (assoc.closed) {
    await opened.close().catch(() => {});
    return 'closed';
  }
  const reencoded = ctx.transferSyntax !== meta.transferSyntaxUid;
  let sourceFailed = false;
  const dataSet = watchSource(reencoded ? reencodeDataSet(opened.dataset, meta.transferSyntaxUid, ctx.transferSyntax) : opened.dataset, () => {
    sourceFailed = true;
  });
  const sent = reencoded ? { sentTransferSyntaxUid: ctx.transferSyntax } : {};
  const messageId = assoc.nextMessageId();
  let bytes = 0;
  let sinceReport = 0;
  try {
    await assoc.sendCommand(ctx.id, {
      commandField: CommandField.C_STORE_RQ,
      commandDataSetType: DATA_SET_PRESENT,
      affectedSopClassUid: meta.sopClassUid,
      affectedSopInstanceUid: meta.sopInstanceUid,
      messageId,
      priority: Priority.MEDIUM,
      ...(moveOriginator ? { moveOriginatorAeTitle: moveOriginator.aeTitle, moveOriginatorMessageId: moveOriginator.messageId } : {}),
    });
    await assoc.sendDataSet(ctx.id, dataSet, (n) => {
      bytes += n;
      addBytes(n);
      sinceReport += n;
      if (sinceReport >= BYTE_PROGRESS_STEP) {
        sinceReport = 0;
        progress();
      }
    });
    const rsp = await assoc.receive();
    if (rsp.command.commandField !== CommandField.C_STORE_RSP || rsp.command.messageIdBeingRespondedTo !== messageId) {
      assoc.abort('unexpected response');
      const error = `unexpected response 0x${rsp.command.commandField.toString(16)} to C-STORE`;
      return { result: { ...ident, ...sent, outcome: 'failure', error, bytes }, peerFailure: error };
    }
    const status = rsp.command.status ?? Status.PROCESSING_FAILURE;
    const result: StoreInstanceResult = { ...ident, ...sent, outcome: storeOutcomeOf(status), status, bytes };
    if (rsp.command.errorComment) result.error = rsp.command.errorComment;
    return { result };
  } catch (err) {
    if (isScuError(err) && err.code === 'CANCELLED') return 'cancelled';
    const error = err instanceof Error ? err.message : String(err);
    return { result: { ...ident, ...sent, outcome: 'failure', error, bytes }, ...(sourceFailed ? {} : { peerFailure: logDetail(err) }) };
  } finally {
    await opened.close().catch(() => {});
  }
}
