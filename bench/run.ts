// `npm run bench`: STOW-RS, QIDO-RS and WADO-RS figures and the server's peak RSS, printed as a
// table beside the aims of issue 2 (standalone) or issue 5 (production), and written as JSON to the
// OS temporary directory.
//
//   npm run bench [-- --quick] [--profile standalone|production] [--cpu-prof] [--skip-no-fsync-run]
//
// The server is the product itself: built once at the start (`npm run build`), then run as
// `node bin/pacsnode.js serve` (bench/server-process.ts) in a fresh temporary directory with the
// default configuration — fsync on — so the figures are those of `npm start` on this machine.
// Production: the same server on a fresh PostgreSQL database and an s3rver bucket
// (bench/production.ts); its QIDO corpus is loaded through the MetadataStore directly
// (bench/phases/metadata-load.ts), and the database is dropped at the end.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatProfile, monotonicUs, summarizeCpuProfileByWindow, type ProfileSummary } from './cpu-profile.js';
import { killAllTools, runDimse, runLargeInstance, formatEcho, type DimseFigures, type LargeInstanceResult } from './phases/dimse.js';
import { loadStudiesDirect } from './phases/metadata-load.js';
import { loadCorpus, prepareCorpus, runSearches, SEARCH_KINDS, type Corpus, type QidoLoadFigures, type QidoSearchFigures } from './phases/qido.js';
import { prepareStow, runStow, type StowFigures } from './phases/stow.js';
import { runWado, type WadoFigures } from './phases/wado.js';
import { analyze, startProductionBackends, type ProductionBackends } from './production.js';
import { formatTable, verdict, type Row } from './report.js';
import { buildProduct, mainThreadCpuProfile, startServerProcess, stopAllServers, type Memory, type ServerProcess } from './server-process.js';
import { MiB, percentile } from './stats.js';

/** A bad command line: reported without a stack trace. */
class UsageError extends Error {}

interface Plan {
  readonly stowInstances: number;
  readonly stowBatch: number;
  readonly concurrency: number;
  readonly qidoStudies: number;
  /** Studies per STOW-RS request (standalone) or per MetadataStore batch (production). */
  readonly qidoBatch: number;
  /** Concurrent commits of the production MetadataStore load. */
  readonly loadConcurrency: number;
  readonly searches: number;
  /** Studies of the STOW run retrieved whole by WADO-RS (each `stowBatch` instances). */
  readonly wadoStudies: number;
  readonly wadoInstances: number;
  /** DIMSE C-STORE instances per storescu run (0.5 MB each). */
  readonly dimseInstances: number;
  /** Size of the one large multi-frame instance sent with storescu while the server's RSS is sampled. */
  readonly largeInstanceBytes: number;
  /** Whole-run time budget, seconds: every loop stops and the bench fails past it. */
  readonly budgetSeconds: number;
}

type Profile = 'standalone' | 'production';

const PLANS: Readonly<Record<Profile, { full: Plan; quick: Plan }>> = {
  standalone: {
    full: { stowInstances: 2000, stowBatch: 50, concurrency: 4, qidoStudies: 10_000, qidoBatch: 100, loadConcurrency: 4, searches: 500, wadoStudies: 40, wadoInstances: 500, dimseInstances: 200, largeInstanceBytes: 1024 * MiB, budgetSeconds: 1800 },
    quick: { stowInstances: 200, stowBatch: 50, concurrency: 4, qidoStudies: 1000, qidoBatch: 100, loadConcurrency: 4, searches: 140, wadoStudies: 4, wadoInstances: 100, dimseInstances: 40, largeInstanceBytes: 256 * MiB, budgetSeconds: 240 },
  },
  // Issue 5: 100,000 studies through the MetadataStore; STOW-RS and WADO-RS go through s3rver, a
  // test server (single process, files on disk), so their counts are smaller.
  production: {
    full: { stowInstances: 500, stowBatch: 50, concurrency: 4, qidoStudies: 100_000, qidoBatch: 2000, loadConcurrency: 16, searches: 700, wadoStudies: 4, wadoInstances: 100, dimseInstances: 200, largeInstanceBytes: 1024 * MiB, budgetSeconds: 1800 },
    quick: { stowInstances: 100, stowBatch: 50, concurrency: 4, qidoStudies: 5000, qidoBatch: 1000, loadConcurrency: 16, searches: 140, wadoStudies: 2, wadoInstances: 50, dimseInstances: 40, largeInstanceBytes: 256 * MiB, budgetSeconds: 300 },
  },
};

/** Aims: issue 2 (standalone) and issue 5 (production, study and wildcard name searches apart). */
const AIMS: Readonly<Record<Profile, { stowPerSecond?: number; qidoP95?: number; studyP95?: number; wildcardP95?: number; wadoMBs?: number; peakRssMiB?: number; dimseRatio?: number; echoP95?: number; largeStoreRssMiB?: number }>> = {
  standalone: { stowPerSecond: 400, qidoP95: 20, wadoMBs: 500, peakRssMiB: 300, dimseRatio: 0.5, echoP95: 100, largeStoreRssMiB: 200 },
  production: { studyP95: 30, wildcardP95: 50, peakRssMiB: 300, dimseRatio: 0.5, echoP95: 100, largeStoreRssMiB: 200 },
};

/** Issue 4: the DIMSE C-STORE senders and C-ECHO round trips. */
const DIMSE_SENDERS = 4;
const DIMSE_ECHOES = 20;

const STOW_TIMEOUT_MS = 120_000;
const STOW_PHASE = 'STOW-RS';
const REQUEST_TIMEOUT_MS = 30_000;

interface Args {
  quick: boolean;
  profile: Profile;
  cpuProf: boolean;
  noFsyncRun: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { quick: false, profile: 'standalone', cpuProf: false, noFsyncRun: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') args.quick = true;
    else if (a === '--cpu-prof') args.cpuProf = true;
    else if (a === '--skip-no-fsync-run') args.noFsyncRun = false;
    else if (a === '--profile' || a?.startsWith('--profile=')) {
      const value = a === '--profile' ? argv[++i] : a.slice('--profile='.length);
      if (value !== 'standalone' && value !== 'production') throw new UsageError(`--profile must be standalone or production (got ${value ?? 'nothing'})`);
      args.profile = value;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'npm run bench [-- --quick] [--profile standalone|production] [--cpu-prof] [--skip-no-fsync-run]\n' +
          '  --quick               a short smoke run (about a minute)\n' +
          '  --profile standalone  SQLite + filesystem (the default)\n' +
          '  --profile production  PostgreSQL (a fresh database, dropped at the end; PACS_BENCH_POSTGRES_URL,\n' +
          '                        default postgres://postgres@127.0.0.1:5432/postgres) + an s3rver bucket\n' +
          '  --cpu-prof            write a V8 CPU profile of the server and print its hot functions\n' +
          '  --skip-no-fsync-run   leave out the second STOW run with filesystem_storage.fsync = false\n',
      );
      process.exit(0);
    } else throw new UsageError(`unknown argument ${a ?? ''} (see --help)`);
  }
  return args;
}

function log(text: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${text}\n`);
}

interface MemorySample extends Memory {
  readonly after: string;
}

/** Where the time of a phase went: is the server saturated, or waiting? */
interface PhaseAccount {
  readonly phase: string;
  readonly wallSeconds: number;
  /** CPU seconds the server used (all its threads); divided by wall = cores busy. */
  readonly serverCpuSeconds: number;
  /** CPU seconds the load generator used (it shares the machine). */
  readonly benchCpuSeconds: number;
  /** 1-minute load average at the end of the phase (other work on the machine shows here). */
  readonly loadAverage: number;
  /** CLOCK_MONOTONIC microseconds, to pick this phase's samples out of a CPU profile. */
  readonly startUs: number;
  readonly endUs: number;
}

interface Results {
  readonly startedAt: string;
  readonly machine: { cpus: number; cpuModel: string; memoryBytes: number; node: string; platform: string };
  readonly profile: string;
  readonly quick: boolean;
  readonly plan: Plan;
  stow?: StowFigures;
  qidoLoad?: QidoLoadFigures;
  qido?: QidoSearchFigures;
  wado?: WadoFigures;
  dimse?: DimseFigures;
  dimseLarge?: LargeInstanceResult;
  memory: MemorySample[];
  phases: PhaseAccount[];
  peakRssBytes?: number;
  rssBytes?: number;
  stowNoFsync?: StowFigures & { peakRssBytes: number };
  cpuProfile?: { file: string; all: ProfileSummary; phases: (ProfileSummary & { label: string })[] };
  rows?: (Row & { verdict: string })[];
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const plan = args.quick ? PLANS[args.profile].quick : PLANS[args.profile].full;
  const production = args.profile === 'production';
  const deadline = Date.now() + plan.budgetSeconds * 1000;
  // Whatever hangs, the bench ends: a minute after the budget it stops the servers and fails
  setTimeout(() => void fail(new Error(`time budget of ${plan.budgetSeconds} s exceeded`)), (plan.budgetSeconds + 60) * 1000).unref();
  const serverLifetime = plan.budgetSeconds + 120;
  const cpus = os.cpus();
  const results: Results = {
    startedAt: new Date().toISOString(),
    machine: { cpus: cpus.length, cpuModel: cpus[0]?.model ?? '', memoryBytes: os.totalmem(), node: process.version, platform: `${os.platform()} ${os.release()}` },
    profile: args.profile,
    quick: args.quick,
    plan,
    memory: [],
    phases: [],
  };
  log(`${args.quick ? 'quick' : 'full'} run, profile ${args.profile}, ${cpus.length} CPUs, node ${process.version}; data in ${os.tmpdir()}`);
  log('building the server (tsc -p tsconfig.build.json): the bench runs the compiled product, node bin/pacsnode.js serve');
  await buildProduct();

  const profileDir = args.cpuProf ? await mkdtemp(path.join(os.tmpdir(), 'pacsnode-bench-prof-')) : undefined;
  let backends: ProductionBackends | undefined;
  if (production) {
    backends = await startProductionBackends();
    backendsToClose = backends;
    log(`  PostgreSQL database ${backends.databaseName} and an s3rver bucket on ${backends.env['PACS_STORAGE__ENDPOINT'] ?? '?'}`);
  }
  const server: ServerProcess = await startServerProcess({ maxSeconds: serverLifetime, env: backends?.env ?? {}, ...(profileDir ? { cpuProfDir: profileDir } : {}) });
  const base = `${server.url}/dicom-web`;
  const sample = (after: string): void => {
    const m = server.memory();
    results.memory.push({ after, ...m });
    log(`  server RSS ${(m.rss / MiB).toFixed(0)} MiB, peak ${(m.peakRss / MiB).toFixed(0)} MiB`);
  };
  sample('start');
  const phase = async <T>(name: string, srv: ServerProcess, body: () => Promise<T>): Promise<T> => {
    const wall0 = Date.now();
    const startUs = monotonicUs();
    const server0 = srv.cpuSeconds();
    const bench0 = process.cpuUsage();
    const value = await body();
    const bench = process.cpuUsage(bench0);
    results.phases.push({
      phase: name,
      wallSeconds: (Date.now() - wall0) / 1000,
      serverCpuSeconds: srv.cpuSeconds() - server0,
      benchCpuSeconds: (bench.user + bench.system) / 1e6,
      loadAverage: os.loadavg()[0] ?? Number.NaN,
      startUs,
      endUs: monotonicUs(),
    });
    return value;
  };

  log(`STOW-RS: ${plan.stowInstances} CT instances (0.5 MB), batches of ${plan.stowBatch}, ${plan.concurrency} clients, ${production ? 'to S3' : 'fsync on'}`);
  const stowBodies = prepareStow(plan.stowInstances, plan.stowBatch);
  const stow = await phase(STOW_PHASE, server, () => runStow({ baseUrl: base, concurrency: plan.concurrency, deadline, requestTimeoutMs: STOW_TIMEOUT_MS }, stowBodies));
  results.stow = stow.figures;
  log(`  ${stow.figures.instancesPerSecond.toFixed(1)} instances/s, ${stow.figures.megabytesPerSecond.toFixed(1)} MB/s in ${stow.figures.seconds.toFixed(1)} s`);
  sample('STOW-RS');

  let corpus: Corpus;
  if (backends) {
    const db = backends.databaseUrl;
    log(`QIDO-RS corpus: ${plan.qidoStudies} single-instance studies through the MetadataStore (commitInstance), batches of ${plan.qidoBatch}, ${plan.loadConcurrency} at once`);
    const loaded = await phase('QIDO corpus load', server, () =>
      loadStudiesDirect({
        databaseUrl: db,
        studies: plan.qidoStudies,
        concurrency: plan.loadConcurrency,
        batchSize: plan.qidoBatch,
        deadline,
        onBatch: (done) => {
          if (done % 10_000 === 0 || done === plan.qidoStudies) log(`  ${done} studies`);
        },
      }),
    );
    results.qidoLoad = loaded.figures;
    corpus = loaded.corpus;
    log(`  ${loaded.figures.instancesPerSecond.toFixed(1)} studies/s in ${loaded.figures.seconds.toFixed(1)} s; ANALYZE (as autovacuum would after a bulk load)`);
    await analyze(db);
  } else {
    log(`QIDO-RS corpus: ${plan.qidoStudies} single-instance studies, batches of ${plan.qidoBatch}, ${plan.concurrency} clients`);
    const prepared = prepareCorpus(plan.qidoStudies, plan.qidoBatch);
    const loaded = await phase('QIDO corpus load', server, () => loadCorpus({ baseUrl: base, concurrency: plan.concurrency, deadline, requestTimeoutMs: STOW_TIMEOUT_MS }, prepared));
    results.qidoLoad = loaded;
    corpus = prepared.corpus;
    log(`  ${loaded.instancesPerSecond.toFixed(1)} instances/s in ${loaded.seconds.toFixed(1)} s`);
  }
  sample('QIDO corpus load');

  log(`QIDO-RS: ${plan.searches} study searches, sequential, one connection`);
  results.qido = await phase('QIDO-RS searches', server, () => runSearches({ baseUrl: base, corpus, searches: plan.searches, deadline, requestTimeoutMs: REQUEST_TIMEOUT_MS }));
  log(`  p50 ${results.qido.overall.p50.toFixed(2)} ms, p95 ${results.qido.overall.p95.toFixed(2)} ms (study search p95 ${results.qido.study.p95.toFixed(2)} ms, wildcard name search p95 ${results.qido.wildcardName.p95.toFixed(2)} ms)`);
  sample('QIDO-RS searches');

  const wadoStudies = stow.studies.slice(0, plan.wadoStudies);
  log(`WADO-RS: ${wadoStudies.length} whole studies (multipart) and ${plan.wadoInstances} single instances, ${plan.concurrency} clients`);
  results.wado = await phase('WADO-RS', server, () => runWado({ baseUrl: base, studies: wadoStudies, singleInstances: plan.wadoInstances, concurrency: plan.concurrency, deadline, requestTimeoutMs: STOW_TIMEOUT_MS }));
  log(`  study ${results.wado.study.megabytesPerSecond.toFixed(1)} MB/s, instance ${results.wado.instance.megabytesPerSecond.toFixed(1)} MB/s`);
  sample('WADO-RS');

  log(`DIMSE C-STORE (issue 4): storescu with ${plan.dimseInstances} CT instances (0.5 MB) to pacsnode and to DCMTK storescp, then ${DIMSE_SENDERS} senders with ${DIMSE_ECHOES} echoscu meanwhile, then ${DIMSE_SENDERS} senders again with in-process C-ECHO every ~100 ms`);
  results.dimse = await phase('DIMSE C-STORE', server, () =>
    runDimse({ instances: plan.dimseInstances, senders: DIMSE_SENDERS, echoes: DIMSE_ECHOES, dicomPort: server.dicomPort, calledAe: 'PACSNODE', deadline, log, ...(production ? {} : { flushDir: server.dir }) }),
  );
  sample('DIMSE C-STORE');

  log(`DIMSE large instance: one ${(plan.largeInstanceBytes / MiB).toFixed(0)} MiB multi-frame instance with storescu, server VmRSS every 50 ms, in-process C-ECHO every ~100 ms`);
  results.dimseLarge = await phase('DIMSE large instance', server, () =>
    runLargeInstance({ bytes: plan.largeInstanceBytes, dicomPort: server.dicomPort, calledAe: 'PACSNODE', serverPid: server.pid, serverDir: server.dir, dicomWebUrl: base, deadline, log }),
  );
  if ('skipped' in results.dimseLarge) log(`  skipped: ${results.dimseLarge.skipped}`);
  else {
    const l = results.dimseLarge;
    log(`  ${(l.bytes / MiB).toFixed(0)} MiB in ${l.seconds.toFixed(1)} s (${l.megabytesPerSecond.toFixed(1)} MB/s); server RSS ${(l.baselineRss / MiB).toFixed(0)} MiB before, peak ${(l.peakRss / MiB).toFixed(0)} MiB during (${l.rssSamples} samples), ${(l.rssAfter / MiB).toFixed(0)} MiB after`);
    log(`  C-ECHO in-process during the large store: ${formatEcho(l.scuEcho)}`);
  }
  sample('DIMSE large instance');
  const final = server.memory();
  results.peakRssBytes = final.peakRss;
  results.rssBytes = final.rss;
  await server.stop();
  if (backends) {
    await backends.close();
    backendsToClose = undefined;
    log(`  dropped database ${backends.databaseName}`);
  }

  if (profileDir) {
    const file = await mainThreadCpuProfile(profileDir);
    if (file) {
      const windows = results.phases.map((p) => ({ label: p.phase, startUs: p.startUs, endUs: p.endUs }));
      const summary = await summarizeCpuProfileByWindow(file, 25, windows);
      results.cpuProfile = { file, all: summary.all, phases: summary.windows };
    }
    else log('no CPU profile was written');
  }

  // The fsync switch is the filesystem store's: no comparison run on S3
  if (args.noFsyncRun && !production) {
    log(`STOW-RS again on a fresh server with filesystem_storage.fsync = false`);
    const second = await startServerProcess({ maxSeconds: serverLifetime, env: { PACS_FILESYSTEM_STORAGE__FSYNC: 'false' } });
    try {
      // The same bodies: the new server starts empty, so this is a like-for-like first store
      const run = await phase('STOW-RS (fsync off)', second, () => runStow({ baseUrl: `${second.url}/dicom-web`, concurrency: plan.concurrency, deadline, requestTimeoutMs: STOW_TIMEOUT_MS }, stowBodies));
      results.stowNoFsync = { ...run.figures, peakRssBytes: second.memory().peakRss };
      log(`  ${run.figures.instancesPerSecond.toFixed(1)} instances/s, ${run.figures.megabytesPerSecond.toFixed(1)} MB/s`);
    } finally {
      await second.stop();
    }
  }

  const rows = tableRows(results, AIMS[args.profile]);
  results.rows = rows.map((r) => ({ ...r, verdict: verdict(r) }));
  const load = results.phases.map((p) => p.loadAverage);
  const title =
    `pacsnode bench — ${args.quick ? 'QUICK (smoke run, not the figures of record)' : 'full run'}, profile ${args.profile}, ` +
    `${cpus.length} × ${cpus[0]?.model ?? 'CPU'}, node ${process.version}, load average ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)} during the run`;
  process.stdout.write(`\n${formatTable(title, rows)}\n`);
  process.stdout.write(`\n${qidoTable(results.qido)}\n`);
  process.stdout.write(`\n${phaseTable(results.phases)}\n`);
  if (results.cpuProfile) {
    for (const p of results.cpuProfile.phases) process.stdout.write(`\n${formatProfile(p, p.label)}\n`);
    process.stdout.write(`\n(profile: ${results.cpuProfile.file}; summarise it again with node --import tsx bench/cpu-profile.ts FILE)\n`);
  }

  const outDir = path.join(os.tmpdir(), 'pacsnode-bench');
  await mkdir(outDir, { recursive: true });
  const outFile = path.join(outDir, `latest${production ? '-production' : ''}${args.quick ? '-quick' : ''}.json`);
  await writeFile(outFile, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`\nFigures written to ${outFile}\n`);
}

function tableRows(r: Results, aims: (typeof AIMS)[Profile]): Row[] {
  const rows: Row[] = [];
  const aim = (op: '>=' | '<=' | '<', value: number | undefined): Pick<Row, 'aim'> => (value === undefined ? {} : { aim: { op, value } });
  if (r.stow) {
    rows.push(
      { figure: `STOW-RS instances/s (${r.stow.instances} × 0.5 MB CT, 50/batch, 4 clients, ${r.profile === 'production' ? 'to S3' : 'fsync on'})`, value: r.stow.instancesPerSecond, unit: 'inst/s', ...aim('>=', aims.stowPerSecond) },
      { figure: 'STOW-RS throughput', value: r.stow.megabytesPerSecond, unit: 'MB/s' },
      { figure: 'STOW-RS batch latency p95', value: r.stow.batchMsP95, unit: 'ms', digits: 0 },
      { figure: 'STOW-RS server CPU per instance', value: cpuMsPer(r, STOW_PHASE, r.stow.instances), unit: 'ms', digits: 1 },
    );
  }
  if (r.stowNoFsync) {
    rows.push(
      { figure: 'STOW-RS instances/s (fsync OFF, for comparison)', value: r.stowNoFsync.instancesPerSecond, unit: 'inst/s' },
      { figure: 'STOW-RS throughput (fsync OFF)', value: r.stowNoFsync.megabytesPerSecond, unit: 'MB/s' },
      { figure: 'STOW-RS server CPU per instance (fsync OFF)', value: cpuMsPer(r, 'STOW-RS (fsync off)', r.stowNoFsync.instances), unit: 'ms', digits: 1 },
    );
  }
  if (r.qidoLoad) {
    if (r.profile === 'production') {
      rows.push({ figure: `QIDO corpus load through the MetadataStore (${r.qidoLoad.studies} studies, ${r.plan.loadConcurrency} commits at once)`, value: r.qidoLoad.instancesPerSecond, unit: 'studies/s' });
    } else {
      rows.push(
        { figure: `QIDO corpus load (${r.qidoLoad.studies} small studies, 100/batch, 4 clients)`, value: r.qidoLoad.instancesPerSecond, unit: 'inst/s' },
        { figure: 'QIDO corpus load: server CPU per instance', value: cpuMsPer(r, 'QIDO corpus load', r.qidoLoad.studies), unit: 'ms', digits: 1 },
      );
    }
  }
  if (r.qido) {
    rows.push(
      { figure: `QIDO-RS all searches p50 (${r.qidoLoad?.studies ?? '?'} studies)`, value: r.qido.overall.p50, unit: 'ms', digits: 2 },
      { figure: 'QIDO-RS all searches p95', value: r.qido.overall.p95, unit: 'ms', digits: 2, ...aim('<=', aims.qidoP95) },
      { figure: 'QIDO-RS all searches p99', value: r.qido.overall.p99, unit: 'ms', digits: 2 },
      { figure: 'QIDO-RS study search p50 (no name wildcard)', value: r.qido.study.p50, unit: 'ms', digits: 2 },
      { figure: 'QIDO-RS study search p95 (no name wildcard)', value: r.qido.study.p95, unit: 'ms', digits: 2, ...aim('<=', aims.studyP95) },
      { figure: 'QIDO-RS wildcard name search p50 (DOE*, *ohn*)', value: r.qido.wildcardName.p50, unit: 'ms', digits: 2 },
      { figure: 'QIDO-RS wildcard name search p95 (DOE*, *ohn*)', value: r.qido.wildcardName.p95, unit: 'ms', digits: 2, ...aim('<=', aims.wildcardP95) },
    );
  }
  if (r.wado) {
    rows.push(
      { figure: `WADO-RS study retrieve (multipart, ${r.wado.study.requests} studies, 4 clients)`, value: r.wado.study.megabytesPerSecond, unit: 'MB/s', ...aim('>=', aims.wadoMBs) },
      { figure: `WADO-RS instance retrieve (application/dicom, ${r.wado.instance.requests}×)`, value: r.wado.instance.megabytesPerSecond, unit: 'MB/s' },
    );
  }
  if (r.dimse) {
    const d = r.dimse;
    rows.push(
      { figure: `DIMSE C-STORE storescu → pacsnode (${d.ours.instances} × 0.5 MB CT, one association)`, value: d.ours.instancesPerSecond, unit: 'inst/s' },
      { figure: 'DIMSE C-STORE storescu → pacsnode throughput', value: d.ours.megabytesPerSecond, unit: 'MB/s' },
      { figure: 'DIMSE C-STORE storescu → DCMTK storescp (same files, same run)', value: d.storescp.megabytesPerSecond, unit: 'MB/s' },
      { figure: 'DIMSE C-STORE pacsnode / storescp MB/s', value: d.ratio, unit: '×', digits: 2, ...aim('>=', aims.dimseRatio) },
      {
        figure: `DIMSE C-STORE ratio, median of ${d.ratioRounds.length} rounds, order alternating (${d.ratioRounds.map((r) => r.toFixed(2)).join(', ')})`,
        value: percentile(d.ratioRounds, 0.5),
        unit: '×',
        digits: 2,
      },
      ...(d.flushFloor
        ? [
            {
              figure: `DIMSE C-STORE flushes per instance storescp does not make (file ${d.flushFloor.fileFsyncMs.toFixed(2)} + directory ${d.flushFloor.dirFsyncMs.toFixed(2)} + index log ${d.flushFloor.logFsyncMs.toFixed(2)} ms)`,
              value: d.flushFloor.flushesMs,
              unit: 'ms',
              digits: 2,
            },
            { figure: `DIMSE C-STORE ratio ceiling with them (storescp ${d.flushFloor.storescpCycleMs.toFixed(2)} ms per instance)`, value: d.flushFloor.ceiling, unit: '×', digits: 2 },
          ]
        : []),
      { figure: `DIMSE C-STORE ${d.concurrent.senders} storescu senders (${d.concurrent.instances} instances)`, value: d.concurrent.instancesPerSecond, unit: 'inst/s' },
      { figure: `C-ECHO in-process (pacsnode SCU, every ~100 ms during ${d.concurrent.senders} senders of ${d.scuEcho.instances} more, n=${d.scuEcho.count}${d.scuEcho.failures > 0 ? `, ${d.scuEcho.failures} FAILED` : ''}) p50`, value: d.scuEcho.p50, unit: 'ms', digits: 1 },
      { figure: 'C-ECHO in-process during the senders p95', value: d.scuEcho.p95, unit: 'ms', digits: 1, ...aim('<', aims.echoP95) },
      { figure: 'C-ECHO in-process during the senders max', value: d.scuEcho.max, unit: 'ms', digits: 1 },
      { figure: `C-ECHO echoscu incl. process start p50 (${d.echo.duringStore} of ${d.echo.count} during the senders)`, value: d.echo.p50, unit: 'ms', digits: 1 },
      { figure: 'C-ECHO echoscu incl. process start p95 (no aim: ~50 ms is process start)', value: d.echo.p95, unit: 'ms', digits: 1 },
    );
  }
  if (r.dimseLarge && 'skipped' in r.dimseLarge) {
    rows.push({ figure: `DIMSE large instance: SKIPPED (${r.dimseLarge.skipped})`, value: Number.NaN, unit: '' });
  } else if (r.dimseLarge) {
    const l = r.dimseLarge;
    const size = `${(l.bytes / MiB).toFixed(0)} MiB`;
    rows.push(
      { figure: `DIMSE large instance: server RSS before (VmRSS)`, value: l.baselineRss / MiB, unit: 'MiB', digits: 0 },
      { figure: `DIMSE large instance: server peak RSS while receiving ${size} (VmRSS every 50 ms)`, value: l.peakRss / MiB, unit: 'MiB', digits: 0, ...aim('<', aims.largeStoreRssMiB) },
      { figure: `DIMSE large instance: storescu time (${size}, ${l.frames} frames, one C-STORE)`, value: l.seconds, unit: 's', digits: 1 },
      { figure: 'DIMSE large instance: throughput', value: l.megabytesPerSecond, unit: 'MB/s' },
      { figure: `C-ECHO in-process during the large store (n=${l.scuEcho.count}${l.scuEcho.failures > 0 ? `, ${l.scuEcho.failures} FAILED` : ''}) p50`, value: l.scuEcho.p50, unit: 'ms', digits: 1 },
      { figure: 'C-ECHO in-process during the large store p95', value: l.scuEcho.p95, unit: 'ms', digits: 1, ...aim('<', aims.echoP95) },
      { figure: 'C-ECHO in-process during the large store max', value: l.scuEcho.max, unit: 'ms', digits: 1 },
    );
  }
  if (r.peakRssBytes !== undefined) rows.push({ figure: 'Server peak RSS (VmHWM, after all phases)', value: r.peakRssBytes / MiB, unit: 'MiB', digits: 0, ...aim('<', aims.peakRssMiB) });
  if (r.rssBytes !== undefined) rows.push({ figure: 'Server RSS now (VmRSS)', value: r.rssBytes / MiB, unit: 'MiB', digits: 0 });
  return rows;
}

/** Server CPU milliseconds per item of a phase: robust to other load on the machine. */
function cpuMsPer(r: Results, phase: string, items: number): number {
  const p = r.phases.find((x) => x.phase === phase);
  return p === undefined || items === 0 ? Number.NaN : (p.serverCpuSeconds * 1000) / items;
}

function qidoTable(q: QidoSearchFigures | undefined): string {
  if (!q) return '';
  const rows: Row[] = [];
  for (const kind of SEARCH_KINDS) {
    const k = q.byKind[kind];
    rows.push({ figure: `${kind} (n=${k.count}, ~${k.meanResults.toFixed(0)} results) p50 / p95 / p99`, value: k.p50, unit: `/ ${k.p95.toFixed(2)} / ${k.p99.toFixed(2)} ms`, digits: 2 });
  }
  rows.push({ figure: `overall (n=${q.overall.count}) p50 / p95 / p99`, value: q.overall.p50, unit: `/ ${q.overall.p95.toFixed(2)} / ${q.overall.p99.toFixed(2)} ms`, digits: 2 });
  return formatTable('QIDO-RS study search latency by kind (sequential, one keep-alive connection)', rows);
}

function phaseTable(phases: readonly PhaseAccount[]): string {
  const header = ['Phase', 'wall s', 'server CPU s', 'server cores', 'bench CPU s', 'load avg'];
  const cells = phases.map((p) => [
    p.phase,
    p.wallSeconds.toFixed(1),
    p.serverCpuSeconds.toFixed(1),
    (p.serverCpuSeconds / p.wallSeconds).toFixed(2),
    p.benchCpuSeconds.toFixed(1),
    p.loadAverage.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? '').length)));
  const line = (c: readonly string[]): string => c.map((t, i) => (i === 0 ? t.padEnd(widths[i] ?? 0) : t.padStart(widths[i] ?? 0))).join('  ');
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return ['Where the time went (server CPU = user + system of all its threads; 2 cores = saturated)', rule, line(header), rule, ...cells.map(line), rule].join('\n');
}

/** The production database and s3rver until they are closed: a failing bench closes them too. */
let backendsToClose: ProductionBackends | undefined;

let exiting = false;
async function fail(err: unknown): Promise<void> {
  if (exiting) return;
  exiting = true;
  const text = err instanceof UsageError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`bench failed: ${text}\n`);
  killAllTools();
  await stopAllServers();
  await backendsToClose?.close();
  process.exit(1);
}

process.once('SIGINT', () => void fail(new Error('interrupted')));
process.once('SIGTERM', () => void fail(new Error('terminated')));

main()
  .then(async () => {
    await stopAllServers();
    // Keep-alive sockets and timers must not keep a finished bench alive
    process.exit(0);
  })
  .catch(fail);
