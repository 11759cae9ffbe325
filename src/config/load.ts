// Builds the one Config object (ARCHITECTURE rule 9) from its layers (SPEC §2), later wins,
// merged per key, arrays replace:
//   1. <packageRoot>/config.toml   (if it exists)
//   2. <cwd>/config.toml           (if it exists)
//      — `--config FILE` or PACS_CONFIG=FILE replaces both file layers (the file must exist)
//   3. PACS_* environment variables (PACS_SERVER__HTTP_PORT=9000 → server.http_port = 9000)
// The merged document is validated by schema.ts; every problem is reported with its key path and
// the layer it came from. Values are never echoed in errors (they may be secrets).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import type { z } from 'zod';
import {
  configSchema,
  deepFreeze,
  KNOWN_PLUGIN_IDS,
  pluginsSchema,
  SECTION_NAMES,
  SECTION_SCHEMAS,
  type Config,
  type SectionName,
} from './schema.js';

export interface LoadConfigOptions {
  /** `--config FILE` from the command line; wins over PACS_CONFIG. Relative to `cwd`. */
  readonly argvConfigPath?: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly packageRoot: string;
}

export interface ConfigIssue {
  /** Full key path, e.g. `server.http_port` or `plugins.enabled[0]` (`` for the document itself). */
  readonly key: string;
  readonly message: string;
  /** Where the value came from: a file path or `environment variable PACS_…`; absent for defaults. */
  readonly source?: string;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    const lines = issues.map(formatIssue);
    super(lines.length === 1 ? `Invalid configuration: ${lines[0]}` : `Invalid configuration:\n  - ${lines.join('\n  - ')}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

function formatIssue(i: ConfigIssue): string {
  const where = i.source === undefined ? '' : ` (${i.source})`;
  return i.key === '' ? `${i.message}${where}` : `${i.key}: ${i.message}${where}`;
}

export const CONFIG_FILE_NAME = 'config.toml';
export const ENV_PREFIX = 'PACS_';
/** Names the config file; not a configuration key. */
export const ENV_CONFIG_PATH = 'PACS_CONFIG';

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** The merged raw document plus, per key path, the layer that last set it. */
interface Layers {
  readonly data: Table;
  readonly sources: Map<string, string>;
}

const fileSource = (file: string): string => `in ${file}`;
const envSource = (name: string): string => `from environment variable ${name}`;

// ---------------------------------------------------------------------------------------------

export function loadConfig(options: LoadConfigOptions): Config {
  const { env, cwd } = options;
  const layers: Layers = { data: {}, sources: new Map() };

  for (const file of configFiles(options)) {
    const doc = readTomlFile(file.path, file.required, file.origin);
    if (doc !== undefined) mergeLayer(layers, doc, fileSource(file.path), []);
  }
  applyEnvironment(layers, env);

  const result = configSchema.safeParse(layers.data, { reportInput: true });
  if (!result.success) throw new ConfigError(result.error.issues.flatMap((i) => toIssues(i, layers.sources)));

  const parsed = result.data as Config;
  const resolved: Config = {
    ...parsed,
    database: { ...parsed.database, url: absoluteDatabaseUrl(parsed.database.url, cwd) },
    filesystem_storage: { ...parsed.filesystem_storage, root: path.resolve(cwd, parsed.filesystem_storage.root) },
  };
  return deepFreeze(resolved);
}

interface ConfigFile {
  readonly path: string;
  readonly required: boolean;
  /** For a required file: what named it (`--config` or PACS_CONFIG). */
  readonly origin?: string;
}

function configFiles({ argvConfigPath, env, cwd, packageRoot }: LoadConfigOptions): ConfigFile[] {
  if (argvConfigPath !== undefined && argvConfigPath !== '') {
    return [{ path: path.resolve(cwd, argvConfigPath), required: true, origin: '--config' }];
  }
  const fromEnv = env[ENV_CONFIG_PATH];
  if (fromEnv !== undefined && fromEnv !== '') {
    return [{ path: path.resolve(cwd, fromEnv), required: true, origin: ENV_CONFIG_PATH }];
  }
  const pkg = path.resolve(packageRoot, CONFIG_FILE_NAME);
  const local = path.resolve(cwd, CONFIG_FILE_NAME);
  const files: ConfigFile[] = [{ path: pkg, required: false }];
  if (local !== pkg) files.push({ path: local, required: false });
  return files;
}

function readTomlFile(file: string, required: boolean, origin: string | undefined): Table | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!required && code === 'ENOENT') return undefined;
    const why = code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? (err as Error).message})`;
    throw new ConfigError([{ key: '', message: `${file}: ${why}`, ...(origin === undefined ? {} : { source: `named by ${origin}` }) }]);
  }
  try {
    return parseToml(text);
  } catch (err) {
    // Only the first line and the position: smol-toml's excerpt could show a secret value.
    const msg = err instanceof TomlError ? `${firstLine(err.message)} at line ${err.line}, column ${err.column}` : String(err);
    throw new ConfigError([{ key: '', message: `${file}: not valid TOML: ${msg}` }]);
  }
}

function firstLine(s: string): string {
  return s.split('\n', 1)[0] ?? s;
}

function mergeLayer(layers: Layers, layer: Table, source: string, prefix: readonly string[]): void {
  let target: Table = layers.data;
  for (const seg of prefix) {
    const next = target[seg];
    if (!isTable(next)) target[seg] = {};
    target = target[seg] as Table;
  }
  mergeTable(target, layer, layers.sources, source, prefix);
}

function mergeTable(target: Table, layer: Table, sources: Map<string, string>, source: string, prefix: readonly string[]): void {
  for (const [key, value] of Object.entries(layer)) {
    const p = [...prefix, key];
    const existing = target[key];
    if (isTable(existing) && isTable(value)) {
      sources.set(p.join('.'), source);
      mergeTable(existing, value, sources, source, p);
    } else {
      // Arrays and scalars replace; a table replacing a scalar (or vice versa) replaces too.
      target[key] = isTable(value) ? {} : value;
      recordSource(sources, p, source);
      if (isTable(value)) mergeTable(target[key] as Table, value, sources, source, p);
    }
  }
}

function recordSource(sources: Map<string, string>, p: readonly string[], source: string): void {
  const key = p.join('.');
  // Keys under a replaced value no longer come from their old layer.
  for (const k of [...sources.keys()]) if (k.startsWith(`${key}.`)) sources.delete(k);
  sources.set(key, source);
}

// ---------------------------------------------------------------------------------------------
// Environment

const normaliseName = (s: string): string => s.toLowerCase().replace(/-/g, '_');

function applyEnvironment(layers: Layers, env: Readonly<Record<string, string | undefined>>): void {
  const names = Object.keys(env)
    .filter((n) => n.startsWith(ENV_PREFIX) && n !== ENV_CONFIG_PATH && env[n] !== undefined)
    .sort();
  const issues: ConfigIssue[] = [];
  for (const name of names) {
    const raw = env[name] as string;
    const resolved = resolveEnvName(name, layers.data);
    if ('error' in resolved) {
      issues.push({ key: resolved.key, message: resolved.error, source: envSource(name) });
      continue;
    }
    const keyPath = resolved.path;
    const value = envValue(raw, resolved.leaf);
    const parentPath = keyPath.slice(0, -1);
    const last = keyPath[keyPath.length - 1] as string;
    mergeLayer(layers, { [last]: value }, envSource(name), parentPath);
  }
  if (issues.length > 0) throw new ConfigError(issues);
}

type EnvResolution = { path: string[]; leaf: z.ZodType | undefined } | { key: string; error: string };

/**
 * Maps `PACS_A__B_C__D` to a key path: each `__` opens a table level; a segment matches a known key
 * case-insensitively with `_` also matching `-` (so BASIC_AUTH finds the plugin id `basic-auth`).
 */
function resolveEnvName(name: string, data: Table): EnvResolution {
  const segments = name.slice(ENV_PREFIX.length).split('__');
  if (segments.some((s) => s === '')) {
    return { key: '', error: `malformed variable name ${name}: empty key segment` };
  }
  const out: string[] = [];
  const unknown = (seg: string): EnvResolution => ({
    key: [...out, seg.toLowerCase()].join('.'),
    error: 'unknown key',
  });

  const [sectionSeg, keySeg, ...rest] = segments as [string, ...string[]];
  const section = SECTION_NAMES.find((s) => normaliseName(s) === normaliseName(sectionSeg));
  if (section === undefined) return unknown(sectionSeg);
  out.push(section);
  if (keySeg === undefined) return { path: out, leaf: undefined };

  if (section === 'plugins') return resolvePluginPath(out, keySeg, rest, data);

  const shape = (SECTION_SCHEMAS[section as Exclude<SectionName, 'plugins'>] as z.ZodObject).shape;
  const key = Object.keys(shape).find((k) => normaliseName(k) === normaliseName(keySeg));
  if (key === undefined) return unknown(keySeg);
  out.push(key);
  if (rest.length > 0) return { key: out.join('.'), error: `is not a table (${name} has more key segments)` };
  return { path: out, leaf: shape[key] as z.ZodType };
}

function resolvePluginPath(out: string[], keySeg: string, rest: readonly string[], data: Table): EnvResolution {
  const candidates = ['enabled', ...KNOWN_PLUGIN_IDS];
  const key = candidates.find((k) => normaliseName(k) === normaliseName(keySeg));
  if (key === undefined) {
    return {
      key: [...out, keySeg.toLowerCase().replace(/_/g, '-')].join('.'),
      error: KNOWN_PLUGIN_IDS.length === 0 ? 'unknown plugin id (this build has no plugins)' : `unknown plugin id (known plugins: ${KNOWN_PLUGIN_IDS.join(', ')})`,
    };
  }
  out.push(key);
  if (key === 'enabled') {
    if (rest.length > 0) return { key: out.join('.'), error: 'is not a table' };
    return { path: out, leaf: pluginsSchema.shape.enabled };
  }
  // Inside a plugin's option table the keys belong to the plugin's own schema; match keys the
  // file layers already set, else take the segment lower-cased as written.
  let table: unknown = (data.plugins as Table | undefined)?.[key];
  for (const seg of rest) {
    const existing = isTable(table) ? Object.keys(table).find((k) => normaliseName(k) === normaliseName(seg)) : undefined;
    const k = existing ?? seg.toLowerCase();
    out.push(k);
    table = isTable(table) ? table[k] : undefined;
  }
  return { path: out, leaf: undefined };
}

/**
 * A value is a TOML value when it parses as one (`9000`, `true`, `["a","b"]`, `"x"`), else a plain
 * string. When the key wants a string and the TOML reading does not fit but the raw text does
 * (ae_title = 1234, secret_key = true), the raw text is taken.
 */
function envValue(raw: string, leaf: z.ZodType | undefined): unknown {
  let parsed: { value: unknown } | undefined;
  try {
    const doc = parseToml(`v = ${raw}`);
    if (Object.keys(doc).length === 1 && 'v' in doc) parsed = { value: doc.v };
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined) return raw;
  if (leaf !== undefined && typeof parsed.value !== 'string' && !leaf.safeParse(parsed.value).success && leaf.safeParse(raw).success) {
    return raw;
  }
  return parsed.value;
}

// ---------------------------------------------------------------------------------------------
// Validation issues → ConfigIssue (with the source of the offending key)

function toIssues(issue: z.core.$ZodIssue, sources: Map<string, string>): ConfigIssue[] {
  const base = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => {
      const p = [...base, k];
      return withSource({ key: keyPath(p), message: 'unknown key' }, p, sources);
    });
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && 'input' in issue) message += `, got ${describeType(issue.input)}`;
  return [withSource({ key: keyPath(base), message }, base, sources)];
}

function withSource(issue: ConfigIssue, p: readonly (string | number)[], sources: Map<string, string>): ConfigIssue {
  const names = p.filter((s): s is string => typeof s === 'string');
  for (let n = names.length; n > 0; n--) {
    const src = sources.get(names.slice(0, n).join('.'));
    if (src !== undefined) return { ...issue, source: src };
  }
  return issue;
}

function keyPath(p: readonly (string | number)[]): string {
  let s = '';
  for (const seg of p) s += typeof seg === 'number' ? `[${seg}]` : s === '' ? seg : `.${seg}`;
  return s;
}

function describeType(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a float';
  if (typeof v === 'object' && v !== null) return 'a table';
  return `a ${typeof v}`;
}

// ---------------------------------------------------------------------------------------------
// Paths

export type DatabaseKind = 'sqlite' | 'postgres';

export function databaseKind(url: string): DatabaseKind {
  return url.startsWith('sqlite://') ? 'sqlite' : 'postgres';
}

/**
 * The file path of a `sqlite://` URL: `sqlite://./data/pacs.db` and `sqlite://data/pacs.db` are
 * relative to `cwd`, `sqlite:///abs/path.db` is absolute, `sqlite://:memory:` is in-memory
 * (returned as `:memory:`). loadConfig already makes the URL absolute, so for a loaded config
 * `cwd` does not matter.
 */
export function sqlitePathFromUrl(url: string, cwd: string): string {
  const m = /^sqlite:\/\/(.+)$/.exec(url);
  if (m === null || m[1] === undefined) {
    throw new ConfigError([{ key: 'database.url', message: 'not a sqlite:// URL' }]);
  }
  const p = m[1];
  return p === ':memory:' ? p : path.resolve(cwd, p);
}

function absoluteDatabaseUrl(url: string, cwd: string): string {
  if (databaseKind(url) !== 'sqlite') return url;
  const p = sqlitePathFromUrl(url, cwd);
  return p === ':memory:' ? url : `sqlite://${p}`;
}

// ---------------------------------------------------------------------------------------------
// Redaction

const SECRET_KEY = /secret|password|passwd|token|private_?key/i;
export const REDACTED = '[REDACTED]';

/**
 * A copy of the config safe to log: string values of keys named like a secret (secret_key,
 * *password*, *token*, …) are replaced by `[REDACTED]`, and passwords inside URLs
 * (`postgres://u:p@h`) masked.
 */
export function redactConfig(config: Config): Config {
  return deepFreeze(redactValue(config, undefined) as Config);
}

function redactValue(value: unknown, key: string | undefined): unknown {
  const secret = key !== undefined && SECRET_KEY.test(key);
  if (secret && typeof value === 'string' && value !== '') return REDACTED;
  if (Array.isArray(value)) return value.map((v) => redactValue(v, secret ? key : undefined));
  if (isTable(value)) {
    const out: Table = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactValue(v, k);
    return out;
  }
  if (typeof value === 'string') return redactUrlPassword(value);
  return value;
}

function redactUrlPassword(s: string): string {
  return s.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/?#@:]*:)[^/?#@]*@/i, `$1${REDACTED}@`);
}
