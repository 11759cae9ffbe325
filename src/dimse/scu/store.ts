/**
 * C-STORE SCU (PS3.4 B, PS3.7 9.1.1): Part-10 sources sent over one association (more when over
 * 128 presentation contexts are needed, or when a broken source forced an abort). Proposed per
 * SOP class: the transfer syntax of each source alone, and {Explicit VR LE, Implicit VR LE}. An
 * instance goes out on a context that accepted its own syntax, its data set bytes exactly as they
 * follow the File Meta, streamed from the source. An instance whose syntax no context accepted
 * fails locally (re-encoding between syntaxes is not done yet).
 */
import { stat } from 'node:fs/promises';
import type { Logger } from '../../archive/context.js';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../dicom/transfer-syntax.js';
import { CommandField, DATA_SET_PRESENT, Priority } from '../message/command.js';
import { Status } from '../message/status.js';
import type { PresentationContextRq } from '../pdu/types.js';
import { ScuAssociation, type ScuTarget } from './association.js';
import { isScuError } from './errors.js';
import { fileSource, openPart10, readFileMeta } from './part10.js';

/** An instance to send: its identity and a way to read its Part-10 bytes (File Meta included). */
export interface StoreItem {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** The Part-10 bytes; read once, when the instance is sent. */
  open(): Promise<AsyncIterable<Uint8Array>>;
  /** For reports (a file path); the SOP Instance UID otherwise. */
  label?: string;
  /** Bytes, when known (progress). */
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
  signal?: AbortSignal;
}

export interface StoreResult {
  results: StoreInstanceResult[];
  total: number;
  completed: number;
  warning: number;
  failed: number;
  bytesSent: number;
  durationMs: number;
  /** The signal fired: instances after the one in flight were not sent (they count as neither done nor failed). */
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

export function outcomeOf(status: number): StoreOutcome {
  if (status === Status.SUCCESS) return 'success';
  if ((status & 0xf000) === 0xb000) return 'warning';
  return 'failure';
}

/** A file path as an item: File Meta read now, the bytes when sent. */
async function fileItem(path: string): Promise<StoreItem> {
  const meta = await readFileMeta(path);
  const size = (await stat(path)).size;
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
  const { signal, onProgress } = options;
  const prepared = await prepare(sources);
  const sizes = prepared.map((p) => p.item?.size);
  const totalBytes = sizes.every((s) => s !== undefined) ? sizes.reduce<number>((a, b) => a + (b ?? 0), 0) : undefined;
  const results: StoreInstanceResult[] = [];
  const counts = { completed: 0, warning: 0, failed: 0 };
  let bytesSent = 0;
  let cancelled = false;

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
  for (const batch of batches(prepared)) {
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
    try {
      for (let i = 0; i < batch.length; i++) {
        const p = batch[i] as Prepared;
        if (signal?.aborted) {
          cancelled = true;
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
            const message = err instanceof Error ? err.message : String(err);
            for (const rest of batch.slice(i)) record({ label: rest.label, outcome: 'failure', error: message, bytes: 0 });
            assoc = undefined;
            break;
          }
        }
        const r = await sendOne(assoc, p.item, p.label, (n) => {
          bytesSent += n;
        }, progress);
        if (r === 'cancelled') {
          cancelled = true;
          break;
        }
        record(r);
      }
    } catch (err) {
      if (isScuError(err) && err.code === 'CANCELLED') cancelled = true;
      else throw err;
    } finally {
      if (assoc && !assoc.closed) {
        if (cancelled) assoc.abort('cancelled');
        else await assoc.release();
      }
    }
    if (cancelled) break;
  }
  return { results, total: prepared.length, ...counts, bytesSent, durationMs: Date.now() - started, cancelled };
}

/** One C-STORE on an open association. Association-level trouble is reported as this instance's failure. */
async function sendOne(
  assoc: ScuAssociation,
  item: StoreItem,
  label: string,
  addBytes: (n: number) => void,
  progress: () => void,
): Promise<StoreInstanceResult | 'cancelled'> {
  const base = { label, sopInstanceUid: item.sopInstanceUid, sopClassUid: item.sopClassUid, transferSyntaxUid: item.transferSyntaxUid };
  // Read File Meta before anything is sent: a source that cannot be read fails alone.
  let opened;
  try {
    opened = await openPart10(await item.open());
  } catch (err) {
    return { ...base, outcome: 'failure', error: `not sent: ${err instanceof Error ? err.message : String(err)}`, bytes: 0 };
  }
  const { meta } = opened;
  const ident = { ...base, sopInstanceUid: meta.sopInstanceUid, sopClassUid: meta.sopClassUid, transferSyntaxUid: meta.transferSyntaxUid };
  const ctx = assoc.contextFor(meta.sopClassUid, [meta.transferSyntaxUid]);
  if (!ctx) {
    await opened.close().catch(() => {});
    const anyContext = assoc.contextFor(meta.sopClassUid);
    const error = anyContext
      ? `transfer syntax ${meta.transferSyntaxUid} not accepted (peer chose ${anyContext.transferSyntax}; re-encoding is not supported)`
      : `SOP class ${meta.sopClassUid} not accepted by the peer`;
    return { ...ident, outcome: 'failure', error, bytes: 0 };
  }
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
    });
    await assoc.sendDataSet(ctx.id, opened.dataset, (n) => {
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
      return { ...ident, outcome: 'failure', error: `unexpected response 0x${rsp.command.commandField.toString(16)} to C-STORE`, bytes };
    }
    const status = rsp.command.status ?? Status.PROCESSING_FAILURE;
    const result: StoreInstanceResult = { ...ident, outcome: outcomeOf(status), status, bytes };
    if (rsp.command.errorComment) result.error = rsp.command.errorComment;
    return result;
  } catch (err) {
    if (isScuError(err) && err.code === 'CANCELLED') return 'cancelled';
    return { ...ident, outcome: 'failure', error: err instanceof Error ? err.message : String(err), bytes };
  } finally {
    await opened.close().catch(() => {});
  }
}
