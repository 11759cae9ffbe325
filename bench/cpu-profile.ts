// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per code area.
//
//   node --import tsx bench/cpu-profile.ts FILE.cpuprofile [--top N]
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotSpot {
  readonly name: string;
  readonly where: string;
  readonly ms: number;
  readonly share: number;
}

export interface ProfileSummary {
  /** Sampled time excluding (idle), in ms. */
  readonly busyMs: number;
  readonly idleMs: number;
  readonly functions: readonly HotSpot[];
  readonly areas: readonly HotSpot[];
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function location(url: string): string {
  if (url === '') return '';
  const file = url.startsWith('file://') ? fileURLToPath(url) : url;
  return file.startsWith(REPO_ROOT) ? path.relative(REPO_ROOT, file) : file;
}

/** src/archive/ingest, node_modules/fastify, node:internal, (garbage collector) … */
function area(frame: CallFrame): string {
  const where = location(frame.url);
  if (where === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  const nm = where.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = where.slice(nm + 'node_modules/'.length).split('/');
    return `node_modules/${parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1] ?? ''}` : (parts[0] ?? '')}`;
  }
  if (where.startsWith('node:')) return where.split('/').slice(0, 2).join('/');
  if (where.startsWith('src/')) return where.split('/').slice(0, 3).join('/').replace(/\.ts$/, '');
  return where;
}

/**
 * A time window in microseconds of CLOCK_MONOTONIC — the clock of both V8's profile timestamps
 * and process.hrtime on Linux, so a window measured in the bench selects the server's samples.
 */
export interface Window {
  readonly label: string;
  readonly startUs: number;
  readonly endUs: number;
}

export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export async function summarizeCpuProfile(file: string, top = 20, window?: Window): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  return summarize(profile, top, window);
}

/** One summary for the whole profile and one per window. */
export async function summarizeCpuProfileByWindow(file: string, top: number, windows: readonly Window[]): Promise<{ all: ProfileSummary; windows: (ProfileSummary & { label: string })[] }> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  return { all: summarize(profile, top), windows: windows.map((w) => ({ label: w.label, ...summarize(profile, top, w) })) };
}

function summarize(profile: CpuProfile, top: number, window?: Window): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const fn = new Map<string, { name: string; where: string; us: number }>();
  const areas = new Map<string, number>();
  let idle = 0;
  let busy = 0;
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (window && (t < window.startUs || t > window.endUs)) return;
    const node = byId.get(id);
    if (!node) return;
    const f = node.callFrame;
    if (f.functionName === '(idle)') {
      idle += dt;
      return;
    }
    busy += dt;
    const where = `${location(f.url)}${f.url === '' ? '' : `:${f.lineNumber + 1}`}`;
    const key = `${f.functionName}@${where}`;
    const entry = fn.get(key) ?? { name: f.functionName || '(anonymous)', where, us: 0 };
    entry.us += dt;
    fn.set(key, entry);
    const a = area(f);
    areas.set(a, (areas.get(a) ?? 0) + dt);
  });
  const hot = (name: string, where: string, us: number): HotSpot => ({ name, where, ms: us / 1000, share: busy === 0 ? 0 : us / busy });
  return {
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    functions: [...fn.values()].sort((a, b) => b.us - a.us).slice(0, top).map((e) => hot(e.name, e.where, e.us)),
    areas: [...areas.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([a, us]) => hot(a, '', us)),
  };
}

export function formatProfile(s: ProfileSummary, label = 'the whole run'): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1).padStart(5)}%`;
  const lines = [`CPU profile of the server's main thread, ${label}: ${(s.busyMs / 1000).toFixed(1)} s busy, ${(s.idleMs / 1000).toFixed(1)} s idle`, '', 'Self time by function:'];
  for (const f of s.functions) lines.push(`  ${pct(f.share)} ${f.ms.toFixed(0).padStart(7)} ms  ${f.name}  ${f.where}`);
  lines.push('', 'Self time by area:');
  for (const a of s.areas) lines.push(`  ${pct(a.share)} ${a.ms.toFixed(0).padStart(7)} ms  ${a.name}`);
  return lines.join('\n');
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [file, flag, n] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write('usage: node --import tsx bench/cpu-profile.ts FILE.cpuprofile [--top N]\n');
    process.exit(2);
  }
  summarizeCpuProfile(file, flag === '--top' ? Number(n) : 25)
    .then((s) => process.stdout.write(`${formatProfile(s)}\n`))
    .catch((err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
