// `pacsnode echo|store|find|move|get`: the DIMSE SCU from the command line (SPEC §4, issue 4 item 5).
//   pacsnode echo  [NODE] [--host H --port P --aec AE] [--aet AE]
//   pacsnode store FILES|DIRS... (--node NODE | --host H --port P --aec AE) [--aet AE]
//   pacsnode find  --level STUDY -k PatientName=DOE* [-r StudyDescription] [--model study|patient]
//   pacsnode move  [NODE] --level STUDY --study UID [--series UID] [--sop UID...] [--patient-id ID] [--dest AE]
//   pacsnode get   [NODE] --level STUDY --study UID [--series UID] [--sop UID...] [--output DIR]
// The peer is a registered node (looked up in the node store of the configured database) or
// given by --host/--port/--aec; options given override the node's. Our AE title defaults to
// server.ae_title, timeouts to server.dimse_timeout_secs. `get` sends a C-FIND at IMAGE level first
// to learn the SOP classes that will come (dimse/scu planGet: their storage contexts, one per
// compressed transfer syntax), falling back to the default contexts without an answer.
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { ANONYMOUS } from '../archive/origin.js';
import type { Config } from '../config/schema.js';
import { isValidUid } from '../dicom/uid.js';
import {
  createScu,
  FIND_LEVELS,
  isScuError,
  RETRIEVE_LEVELS,
  type FindLevel,
  type GetSink,
  type RetrieveLevel,
  type RetrieveProgress,
  type RetrieveRequest,
  type RetrieveResult,
  type Scu,
  type ScuTarget,
  type StoreProgress,
} from '../dimse/scu/index.js';
import { EXIT_FAILURE } from './exit-codes.js';
import type { CliContext, CommandRegistrar } from './index.js';

interface PeerOptions {
  node?: string;
  host?: string;
  port?: string;
  aec?: string;
  aet?: string;
  timeout?: string;
  config?: string;
}

function peerOptions(cmd: Command): Command {
  return cmd
    .option('-n, --node <ae>', 'a registered node (its AE title): host, port and called AE from the node store')
    .option('--host <host>', 'peer host')
    .option('--port <port>', 'peer port')
    .option('--aec <ae>', 'called AE title (the peer)')
    .option('--aet <ae>', 'calling AE title (ours; default server.ae_title)')
    .option('--timeout <secs>', 'DIMSE timeout in seconds (default server.dimse_timeout_secs)')
    .option('-c, --config <file>', 'config file; replaces both config.toml layers (or PACS_CONFIG=FILE)');
}

class UsageError extends Error {}

function positiveInt(value: string | undefined, name: string, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${name} must be an integer from 1 to ${max}`);
  return n;
}

/**
 * The node store of the configured database (opened only when a node name is given): only the
 * database, never created or migrated here (a diagnostic command must not change a shared
 * database's schema), and no blob store.
 */
async function lookupNode(config: Config, ae: string): Promise<ScuTarget> {
  const { openDatabase } = await import('../main.js');
  const { createNodeService } = await import('../archive/nodes.js');
  const { databaseKind, sqlitePathFromUrl } = await import('../config/load.js');
  const notInitialised = `no registered node ${JSON.stringify(ae)}: the configured database is not initialised (start the server once, or run \`pacsnode migrate\`)`;
  if (databaseKind(config.database.url) === 'sqlite') {
    const file = sqlitePathFromUrl(config.database.url, process.cwd());
    if (file !== ':memory:' && !existsSync(file)) throw new UsageError(notInitialised);
  }
  // A silent logger: stdout carries the command's output (find prints JSON).
  const db = await openDatabase(config, pino({ level: 'silent' }));
  try {
    let node;
    try {
      node = await createNodeService({ store: db.nodes }).find({ principal: ANONYMOUS, origin: { protocol: 'cli' } }, ae);
    } catch (err) {
      if (isMissingTable(err)) throw new UsageError(notInitialised);
      throw err;
    }
    if (!node) throw new UsageError(`no registered node ${JSON.stringify(ae)} (see GET /api/nodes)`);
    return { host: node.host, port: node.port, calledAe: node.aeTitle };
  } finally {
    await db.close();
  }
}

/** SQLite "no such table", PostgreSQL 42P01 (undefined_table), also when wrapped as a cause. */
function isMissingTable(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (code === '42P01' || (typeof message === 'string' && message.includes('no such table'))) return true;
  }
  return false;
}

async function resolvePeer(ctx: CliContext, opts: PeerOptions, globalConfig: string | undefined, nodeArg?: string): Promise<{ scu: Scu; target: ScuTarget; config: Config }> {
  const config = ctx.loadConfig(opts.config ?? globalConfig);
  const node = opts.node ?? nodeArg;
  const base: Partial<ScuTarget> = node !== undefined ? await lookupNode(config, node) : {};
  const port = positiveInt(opts.port, '--port', 65535) ?? base.port;
  const host = opts.host ?? base.host;
  const calledAe = opts.aec ?? base.calledAe;
  if (host === undefined || port === undefined || calledAe === undefined) {
    throw new UsageError('give a node (--node NAME) or --host, --port and --aec');
  }
  const timeoutSecs = positiveInt(opts.timeout, '--timeout', 86400) ?? config.server.dimse_timeout_secs;
  const scu = createScu({ callingAe: opts.aet ?? config.server.ae_title, timeoutSecs, maxPduLength: config.server.max_pdu_length });
  return { scu, target: { host, port, calledAe }, config };
}

/** Runs a command body: usage and SCU errors become one line on stderr and exit code 1. */
async function guarded(ctx: CliContext, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof UsageError || isScuError(err)) {
      ctx.io.stderr(`pacsnode: ${err.message}\n`);
      ctx.setExitCode(EXIT_FAILURE);
      return;
    }
    throw err;
  }
}

/**
 * Files under the given paths, directories walked recursively, in a stable order. A path named on
 * the command line must exist. Inside a directory, a symbolic link to a directory is not followed
 * (no loops, no files sent twice), and an entry that cannot be read — a dangling link, an
 * unreadable directory — is listed as it is, so that it fails alone (counted in the summary)
 * instead of stopping the whole command.
 */
export async function expandPaths(cwd: string, inputs: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string, named: boolean): Promise<void> => {
    const s = await stat(p).catch(() => undefined);
    if (!s) {
      if (named) throw new UsageError(`${p}: no such file or directory`);
      out.push(p);
      return;
    }
    if (s.isFile()) {
      out.push(p);
      return;
    }
    if (!s.isDirectory()) return;
    const entries = await readdir(p, { withFileTypes: true }).catch(() => undefined);
    if (entries === undefined) {
      if (named) throw new UsageError(`${p}: cannot be read`);
      out.push(p);
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const child = path.join(p, e.name);
      if (e.isSymbolicLink() && (await stat(child).catch(() => undefined))?.isDirectory()) continue;
      await walk(child, false);
    }
  };
  for (const i of inputs) await walk(path.resolve(cwd, i), true);
  return out;
}

function megabytes(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(1);
}

/** One line, redrawn in place on a terminal. */
function progressLine(p: StoreProgress, started: number): string {
  const width = 30;
  // Bytes tell the progress within large instances; once every instance is done the bar is full
  // (failed ones sent nothing, re-encoded ones other sizes).
  const fraction = p.remaining === 0 ? 1 : p.totalBytes !== undefined && p.totalBytes > 0 ? p.bytesSent / p.totalBytes : p.total > 0 ? (p.total - p.remaining) / p.total : 1;
  const filled = Math.min(width, Math.round(fraction * width));
  const seconds = Math.max(0.001, (Date.now() - started) / 1000);
  const rate = megabytes(p.bytesSent / seconds);
  return `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${p.total - p.remaining}/${p.total}  ${megabytes(p.bytesSent)} MB  ${rate} MB/s  failed ${p.failed}\x1b[K`;
}

interface RetrieveCliOptions extends PeerOptions {
  level: RetrieveLevel;
  model?: 'study' | 'patient';
  patientId?: string;
  study?: string;
  series?: string;
  sop?: string[];
  progress: boolean;
}

function retrieveOptions(cmd: Command): Command {
  return peerOptions(
    cmd
      .argument('[node]', 'a registered node (same as --node)')
      .addOption(new Option('-l, --level <level>', 'Query/Retrieve Level').choices([...RETRIEVE_LEVELS]).default('STUDY'))
      .addOption(new Option('-m, --model <model>', 'information model (PATIENT level: patient)').choices(['study', 'patient']))
      .option('--patient-id <id>', 'PatientID (PATIENT level, and the patient model)')
      .option('--study <uid>', 'Study Instance UID (STUDY, SERIES, IMAGE)')
      .option('--series <uid>', 'Series Instance UID (SERIES, IMAGE)')
      .option('--sop <uids...>', 'SOP Instance UID(s) (IMAGE)')
      .option('--no-progress', 'no progress bar (it is shown on a terminal only)')
      .exitOverride(),
  );
}

/** The options as a retrieve request; a key its level needs but missing is a usage error naming the option. */
function retrieveRequestOf(opts: RetrieveCliOptions): RetrieveRequest {
  const depth = RETRIEVE_LEVELS.indexOf(opts.level);
  const model = opts.level === 'PATIENT' ? 'patient' : (opts.model ?? 'study');
  if (model === 'patient' && opts.patientId === undefined) throw new UsageError(`--patient-id is required ${opts.level === 'PATIENT' ? 'at level PATIENT' : 'with --model patient'}`);
  const need = (value: string | undefined, option: string): string => {
    if (value === undefined) throw new UsageError(`${option} is required at level ${opts.level}`);
    if (!isValidUid(value)) throw new UsageError(`${option} ${value}: not a valid UID`);
    return value;
  };
  const sops = depth >= 3 ? (opts.sop ?? []).flatMap((s) => s.split(',')).filter((s) => s !== '') : [];
  if (depth >= 3 && sops.length === 0) throw new UsageError('--sop is required at level IMAGE');
  return {
    level: opts.level,
    model,
    ...(model === 'patient' && opts.patientId !== undefined ? { patientId: opts.patientId } : {}),
    ...(depth >= 1 ? { studyUid: need(opts.study, '--study') } : {}),
    ...(depth >= 2 ? { seriesUid: need(opts.series, '--series') } : {}),
    ...(depth >= 3 ? { sopUids: sops.map((s) => need(s, '--sop')) } : {}),
  };
}

function retrieveLine(p: RetrieveProgress): string {
  const width = 30;
  const done = p.completed + p.failed + p.warning;
  const total = done + (p.remaining ?? 0);
  const filled = total > 0 ? Math.min(width, Math.round((done / total) * width)) : 0;
  return `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}  failed ${p.failed}  warning ${p.warning}\x1b[K`;
}

function statusHex(status: number): string {
  return `0x${status.toString(16).padStart(4, '0')}`;
}

/** What a retrieve's summary line tells: the counts of a result, or of a failure status's response. */
interface RetrieveSummary {
  cancelled: boolean;
  completed: number;
  warning: number;
  failed: number;
  remaining?: number;
  status: number;
  durationMs: number;
  bytesReceived?: number;
}

/**
 * The counts a C-MOVE/C-GET failure status still carried (PS3.4 C.4.2.3.1, C.4.3.3.1: its final
 * response has the sub-operation counts and the Failed SOP Instance UID List), when it had them.
 */
function failureCounts(err: unknown): (Omit<RetrieveSummary, 'cancelled' | 'durationMs'> & { failedUids: string[] }) | undefined {
  if (!isScuError(err) || err.code !== 'DIMSE_FAILURE') return undefined;
  const d = err.details;
  const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  if (typeof d['status'] !== 'number') return undefined;
  return {
    status: d['status'],
    completed: n(d['completed']),
    warning: n(d['warning']),
    failed: n(d['failed']),
    ...(typeof d['remaining'] === 'number' ? { remaining: d['remaining'] } : {}),
    failedUids: Array.isArray(d['failedUids']) ? d['failedUids'].filter((u): u is string => typeof u === 'string') : [],
  };
}

/**
 * Runs a C-MOVE or C-GET from the command line: a progress bar on a terminal, the first SIGINT
 * sends C-CANCEL (a second one ends the process as usual), failed UIDs on stderr, the summary on
 * stdout - also when the peer ends it with a failure status (then rethrown, for stderr and the
 * exit code).
 */
async function runRetrieve<T extends RetrieveResult>(
  ctx: CliContext,
  opts: RetrieveCliOptions,
  call: (options: { signal: AbortSignal; onProgress: (p: RetrieveProgress) => void }) => Promise<T>,
  summary: (r: RetrieveSummary) => string,
): Promise<T> {
  const { io } = ctx;
  const controller = new AbortController();
  const onSigint = (): void => {
    io.stderr('\npacsnode: cancelling (C-CANCEL); press Ctrl-C again to quit\n');
    controller.abort();
  };
  process.once('SIGINT', onSigint);
  const showBar = opts.progress && io.stderrIsTTY === true;
  const started = Date.now();
  try {
    const r = await call({
      signal: controller.signal,
      onProgress: (p) => {
        if (showBar) io.stderr(retrieveLine(p));
      },
    });
    if (showBar) io.stderr('\n');
    for (const uid of r.failedUids) io.stderr(`failed: ${uid}\n`);
    io.stdout(summary(r));
    return r;
  } catch (err) {
    if (showBar) io.stderr('\n');
    const counts = failureCounts(err);
    if (counts !== undefined) {
      for (const uid of counts.failedUids) io.stderr(`failed: ${uid}\n`);
      io.stdout(summary({ ...counts, cancelled: false, durationMs: Date.now() - started }));
    }
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

function retrieveExit(ctx: CliContext, r: RetrieveResult): void {
  if (r.failed > 0 || r.cancelled) ctx.setExitCode(EXIT_FAILURE);
}

/** A C-GET sink writing `<dir>/<SOP Instance UID>.dcm` (via a temporary name, renamed when complete). */
export function directorySink(dir: string): GetSink {
  return async (instance) => {
    // The UID names the file: only a valid UID (digits and dots) may, so nothing escapes the directory.
    if (!isValidUid(instance.sopInstanceUid)) {
      for await (const _ of instance.part10) {
        // not stored
      }
      return { status: 0xc000, errorComment: 'invalid Affected SOP Instance UID' };
    }
    const file = path.join(dir, `${instance.sopInstanceUid}.dcm`);
    const partial = path.join(dir, `.${instance.sopInstanceUid}.partial`);
    try {
      await pipeline(Readable.from(instance.part10), createWriteStream(partial));
      await rename(partial, file);
      return { status: 0 };
    } catch (err) {
      await rm(partial, { force: true }).catch(() => {});
      const code = (err as NodeJS.ErrnoException).code;
      // A700 out of resources for a full disk or quota; 0110 processing failure otherwise.
      return { status: code === 'ENOSPC' || code === 'EDQUOT' ? 0xa700 : 0x0110, errorComment: `cannot write ${instance.sopInstanceUid}.dcm: ${code ?? (err as Error).message}` };
    }
  };
}

export const registerDimseCommands: CommandRegistrar = (program: Command, ctx: CliContext) => {
  const { io } = ctx;
  // `--config` may also come before the subcommand.
  const globalConfig = (): string | undefined => program.opts<{ config?: string }>().config;

  peerOptions(program.command('echo').description('C-ECHO a DICOM node').argument('[node]', 'a registered node (same as --node)').exitOverride()).action(
    (nodeArg: string | undefined, opts: PeerOptions) =>
      guarded(ctx, async () => {
        const { scu, target } = await resolvePeer(ctx, opts, globalConfig(), nodeArg);
        const r = await scu.echo(target);
        io.stdout(`C-ECHO ${target.calledAe} at ${target.host}:${target.port}: success (${r.durationMs} ms)\n`);
      }),
  );

  peerOptions(
    program
      .command('store')
      .description('C-STORE Part-10 files (directories are walked recursively) to a DICOM node')
      .argument('<paths...>', 'files or directories')
      .option('--no-progress', 'no progress bar (it is shown on a terminal only)')
      .exitOverride(),
  ).action((paths: string[], opts: PeerOptions & { progress: boolean }) =>
    guarded(ctx, async () => {
      const { scu, target } = await resolvePeer(ctx, opts, globalConfig());
      const files = await expandPaths(io.cwd, paths);
      if (files.length === 0) throw new UsageError('no files to send');
      const started = Date.now();
      const showBar = opts.progress && io.stderrIsTTY === true;
      let lastDraw = 0;
      const r = await scu.store(target, files, {
        onProgress: (p) => {
          if (!showBar) return;
          const now = Date.now();
          if (p.remaining > 0 && now - lastDraw < 100) return;
          lastDraw = now;
          io.stderr(progressLine(p, started));
        },
      });
      if (showBar) io.stderr('\n');
      for (const x of r.results) {
        if (x.outcome === 'success') continue;
        const status = x.status !== undefined ? ` status 0x${x.status.toString(16).padStart(4, '0')}` : '';
        io.stderr(`${x.outcome === 'warning' ? 'warning' : 'failed'}: ${x.label}${status}${x.error ? `: ${x.error}` : ''}\n`);
      }
      const seconds = Math.max(0.001, r.durationMs / 1000);
      io.stdout(
        `Sent ${r.completed + r.warning} of ${r.total} to ${target.calledAe} at ${target.host}:${target.port}: ` +
          `${r.completed} ok, ${r.warning} warnings, ${r.failed} failed; ${megabytes(r.bytesSent)} MB in ${seconds.toFixed(1)} s (${megabytes(r.bytesSent / seconds)} MB/s)\n`,
      );
      if (r.failed > 0) ctx.setExitCode(EXIT_FAILURE);
    }),
  );

  const collectKey = (value: string, previous: string[]): string[] => [...previous, value];
  peerOptions(
    program
      .command('find')
      .description('C-FIND on a DICOM node; prints the matches as a DICOM JSON array')
      .addOption(new Option('-l, --level <level>', 'query level').choices([...FIND_LEVELS]).default('STUDY'))
      .addOption(new Option('-m, --model <model>', 'information model').choices(['study', 'patient']).default('study'))
      .option('-k, --key <key=value>', 'matching key (keyword or tag), repeatable: PatientName=DOE*, StudyDate=20240101-', collectKey, [])
      .option('-r, --return-key <key>', 'extra attribute to return, repeatable', collectKey, [])
      .option('--limit <n>', 'stop after n matches (C-CANCEL)')
      .exitOverride(),
  ).action((opts: PeerOptions & { level: FindLevel; model: 'study' | 'patient'; key: string[]; returnKey: string[]; limit?: string }) =>
    guarded(ctx, async () => {
      const keys: Record<string, string> = {};
      for (const k of opts.key) {
        const eq = k.indexOf('=');
        if (eq <= 0) throw new UsageError(`-k ${k}: expected KEY=VALUE`);
        keys[k.slice(0, eq)] = k.slice(eq + 1);
      }
      const limit = positiveInt(opts.limit, '--limit', Number.MAX_SAFE_INTEGER);
      const { scu, target } = await resolvePeer(ctx, opts, globalConfig());
      // Each match is printed as it arrives (a query may match millions): the output is the JSON
      // array JSON.stringify(matches, null, 2) would print, written piece by piece.
      let n = 0;
      try {
        for await (const ds of scu.find(target, { level: opts.level, model: opts.model, keys, returnKeys: opts.returnKey })) {
          io.stdout(`${n === 0 ? '[\n' : ',\n'}  ${JSON.stringify(ds, null, 2).replace(/\n/g, '\n  ')}`);
          n++;
          // Leaving the loop cancels the C-FIND (C-CANCEL) and releases the association.
          if ((limit !== undefined && n >= limit) || io.stdoutClosed?.() === true) break;
        }
      } finally {
        // Also when the C-FIND fails after some matches: stdout stays one well-formed array (the
        // matches so far), the failure goes to stderr and the exit code.
        if (n > 0) io.stdout('\n]\n');
      }
      if (n === 0) io.stdout('[]\n');
    }),
  );

  retrieveOptions(
    program
      .command('move')
      .description('C-MOVE a patient, study, series or instances from a DICOM node to a destination AE')
      .option('--dest <ae>', 'Move Destination AE title (default: our own, --aet or server.ae_title)'),
  ).action((nodeArg: string | undefined, opts: RetrieveCliOptions & { dest?: string }) =>
    guarded(ctx, async () => {
      const request = retrieveRequestOf(opts);
      const { scu, target } = await resolvePeer(ctx, opts, globalConfig(), nodeArg);
      const destination = opts.dest ?? scu.callingAe;
      const r = await runRetrieve(
        ctx,
        opts,
        (o) => scu.move(target, request, { ...o, destination }),
        (x) =>
          `${x.cancelled ? 'Cancelled: moved' : 'Moved'} ${x.completed + x.warning} of ${x.completed + x.warning + x.failed + (x.remaining ?? 0)} from ${target.calledAe} at ${target.host}:${target.port} to ${destination}: ` +
          `${x.completed} completed, ${x.warning} warnings, ${x.failed} failed (status ${statusHex(x.status)}) in ${(x.durationMs / 1000).toFixed(1)} s\n`,
      );
      retrieveExit(ctx, r);
    }),
  );

  retrieveOptions(
    program
      .command('get')
      .description('C-GET a patient, study, series or instances from a DICOM node into a directory (<SOP Instance UID>.dcm files)')
      .option('-o, --output <dir>', 'where the files go (created if needed)', 'pacsnode-get'),
  ).action((nodeArg: string | undefined, opts: RetrieveCliOptions & { output: string }) =>
    guarded(ctx, async () => {
      const request = retrieveRequestOf(opts);
      const { scu, target } = await resolvePeer(ctx, opts, globalConfig(), nodeArg);
      const dir = path.resolve(io.cwd, opts.output);
      await mkdir(dir, { recursive: true });
      const r = await runRetrieve(
        ctx,
        opts,
        async (o) => {
          // A C-FIND first: the SOP classes that will come, each with a context per compressed
          // syntax (the SCP accepts one syntax per context); the default list if it finds nothing.
          const plan = await scu.planGet(target, request, { signal: o.signal });
          return scu.get(target, request, { ...o, sink: directorySink(dir), ...(plan.storageContexts ? { storageContexts: plan.storageContexts } : {}) });
        },
        (x) =>
          `${x.cancelled ? 'Cancelled: retrieved' : 'Retrieved'} ${x.completed + x.warning} of ${x.completed + x.warning + x.failed + (x.remaining ?? 0)} from ${target.calledAe} at ${target.host}:${target.port} into ${dir}: ` +
          `${x.completed} completed, ${x.warning} warnings, ${x.failed} failed (status ${statusHex(x.status)})` +
          `${x.bytesReceived !== undefined ? `; ${megabytes(x.bytesReceived)} MB` : ''} in ${Math.max(0.001, x.durationMs / 1000).toFixed(1)} s\n`,
      );
      retrieveExit(ctx, r);
    }),
  );
};
