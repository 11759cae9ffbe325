// Static checks of docker/ (no Docker engine runs on these machines): what can be proven without
// building or starting anything. The compose file is parsed with python3's `yaml` module (Debian
// python3-yaml) when present; the text-level checks run always.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, normalize, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/load.js';
import { s3ClientConfig } from '../../src/storage/s3/s3-blob-store.js';
import { s3OptionsFromConfig } from '../../src/storage/s3/s3-config.js';

const ROOT = resolve(fileURLToPath(new URL('../../', import.meta.url)));
const DOCKER = join(ROOT, 'docker');
const read = (p: string): string => readFileSync(join(ROOT, p), 'utf8');

// ---------------------------------------------------------------------------------------------
// .env.example

/** KEY=value lines (comments and blanks skipped); values as Compose reads them (no quotes used). */
function parseEnvFile(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    assert.ok(m, `.env.example line ${i + 1} is not KEY=value: ${line}`);
    const [, key = '', value = ''] = m;
    assert.ok(!out.has(key), `.env.example defines ${key} twice`);
    out.set(key, value);
  }
  return out;
}

/** `${VAR}` / `$VAR` references Compose interpolates (`$$` is a literal dollar). */
function composeVariables(text: string): string[] {
  const names = new Set<string>();
  const re = /\$(\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g;
  // Whole-line YAML comments are not interpolated.
  const content = text
    .split('\n')
    .filter((l) => !l.trimStart().startsWith('#'))
    .join('\n');
  for (const m of content.matchAll(re)) {
    if (m[1] === '$') continue;
    const name = m[2] ?? m[3] ?? '';
    // ${VAR:-default} and friends: the name is before the operator.
    const bare = /^[A-Za-z_][A-Za-z0-9_]*/.exec(name)?.[0];
    assert.ok(bare, `unparseable variable reference ${m[0]}`);
    names.add(bare);
  }
  return [...names].sort();
}

/** Compose's interpolation of `${VAR}` from the .env values (what `docker compose config` does). */
function interpolate(value: string, env: Map<string, string>): string {
  return value.replace(/\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)\})/g, (_all, d: string, name: string | undefined) =>
    d === '$' ? '$' : (env.get(name ?? '') ?? ''),
  );
}

// ---------------------------------------------------------------------------------------------
// YAML via Debian's python3 with python3-yaml (.ci/run installs it)

/** Debian's interpreter first (python3-yaml installs there), else whatever python3 is on PATH. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

function python3Yaml(): boolean {
  return spawnSync(PYTHON, ['-c', 'import yaml'], { stdio: 'ignore' }).status === 0;
}

/** The compose file as JSON, parsed by PyYAML's safe_load (fails on any YAML syntax error). */
function parseYaml(file: string): unknown {
  const json = execFileSync(PYTHON, ['-c', 'import json,sys,yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)', file], {
    encoding: 'utf8',
  });
  return JSON.parse(json) as unknown;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
function obj(v: unknown, what: string): Obj {
  assert.ok(isObj(v), `${what} is not a mapping`);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  op: string;
  args: string;
  line: number;
}

function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i] ?? '';
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      i++;
      const next = lines[i] ?? '';
      if (/^\s*#/.test(next)) continue; // comment lines inside a continuation are dropped
      line = line.replace(/\\\s*$/, ' ') + next;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    assert.ok(m, `Dockerfile line ${start + 1}: not an instruction`);
    out.push({ op: (m[1] ?? '').toUpperCase(), args: (m[2] ?? '').trim(), line: start + 1 });
  }
  return out;
}

/** Words of an instruction: JSON (exec) form or whitespace-separated shell form. */
function words(args: string): string[] {
  if (args.startsWith('[')) {
    const parsed: unknown = JSON.parse(args);
    assert.ok(Array.isArray(parsed) && parsed.every((x) => typeof x === 'string'), `not a JSON string array: ${args}`);
    return parsed as string[];
  }
  return args.split(/\s+/).filter((w) => w !== '');
}

interface Stage {
  name: string | undefined;
  base: string;
  instructions: Instruction[];
}

function stages(instructions: Instruction[]): Stage[] {
  const out: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const w = words(ins.args).filter((x) => !x.startsWith('--'));
      const as = w.findIndex((x) => x.toUpperCase() === 'AS');
      out.push({ base: w[0] ?? '', name: as >= 0 ? w[as + 1] : undefined, instructions: [] });
    } else if (out.length > 0) {
      out[out.length - 1]?.instructions.push(ins);
    } else {
      assert.equal(ins.op, 'ARG', `only ARG may precede the first FROM (line ${ins.line})`);
    }
  }
  return out;
}

/** .dockerignore patterns (simple: a path or a path prefix, `**\/` and `*` globs). */
function ignoredByDockerignore(path: string, patterns: string[]): boolean {
  const toRe = (p: string): RegExp =>
    new RegExp(
      `^${p
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*\//g, '(.*/)?')
        .replace(/\*/g, '[^/]*')}(/.*)?$`,
    );
  let ignored = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (toRe(p.slice(1)).test(path)) ignored = false;
    } else if (toRe(p).test(path)) ignored = true;
  }
  return ignored;
}

// ---------------------------------------------------------------------------------------------

const composeText = read('docker/docker-compose.yml');
const env = parseEnvFile(read('docker/.env.example'));

describe('docker/.env.example and docker/docker-compose.yml', () => {
  it('every variable the compose file references is defined in .env.example', () => {
    const used = composeVariables(composeText);
    assert.ok(used.length > 5, 'the compose file should take its settings from .env');
    const missing = used.filter((v) => !env.has(v));
    assert.deepEqual(missing, [], `not in docker/.env.example: ${missing.join(', ')}`);
  });

  it('.env.example defines nothing the compose file does not use', () => {
    const used = new Set(composeVariables(composeText));
    assert.deepEqual([...env.keys()].filter((k) => !used.has(k)), []);
  });

  it('the compose file parses as YAML and wires PostgreSQL 16, MinIO, the bucket job and pacsnode', () => {
    assert.ok(python3Yaml(), 'python3 with the yaml module is needed (apt-get install python3-yaml; .ci/run does)');
    const doc = obj(parseYaml(join(DOCKER, 'docker-compose.yml')), 'compose file');
    const services = obj(doc.services, 'services');
    const service = (name: string): Obj => obj(services[name], `services.${name}`);

    const pg = service('postgres');
    assert.match(interpolate(String(pg.image), env), /^postgres:16([.-]|$)/);
    assert.ok(isObj(pg.healthcheck), 'postgres has a healthcheck');
    const minio = service('minio');
    assert.match(interpolate(String(minio.image), env), /minio\/minio/);
    assert.ok(isObj(minio.healthcheck), 'minio has a healthcheck');

    const bucket = service('createbucket');
    assert.match(interpolate(String(bucket.image), env), /minio\/mc/);
    assert.equal(obj(obj(bucket.depends_on, 'createbucket.depends_on').minio, 'minio dep').condition, 'service_healthy');
    const script = JSON.stringify(bucket.command);
    assert.match(script, /mc mb --ignore-existing/);
    assert.notEqual(bucket.restart, 'always');

    const app = service('pacsnode');
    const deps = obj(app.depends_on, 'pacsnode.depends_on');
    assert.deepEqual(
      Object.fromEntries(Object.entries(deps).map(([k, v]) => [k, obj(v, k).condition])),
      { postgres: 'service_healthy', minio: 'service_healthy', createbucket: 'service_completed_successfully' },
    );
    const build = obj(app.build, 'pacsnode.build');
    const context = resolve(DOCKER, String(build.context));
    assert.equal(context, ROOT, 'the build context is the repo root');
    assert.ok(existsSync(join(context, String(build.dockerfile))), 'the Dockerfile exists');

    const environment = obj(app.environment, 'pacsnode.environment');
    for (const key of Object.keys(environment)) assert.match(key, /^PACS_/, `pacsnode is configured through PACS_ variables only (${key})`);
    assert.equal(String(environment.PACS_SERVER__HTTP_REMOTE_ACCESS), 'true');
    // The bucket the job creates is the one pacsnode uses.
    assert.equal(obj(bucket.environment, 'createbucket.environment').BUCKET, environment.PACS_STORAGE__BUCKET);

    // pacsnode's environment, interpolated from .env.example, is a valid production configuration.
    const pacsEnv: Record<string, string> = {};
    for (const [k, v] of Object.entries(environment)) pacsEnv[k] = interpolate(String(v), env);
    const config = loadConfig({ env: pacsEnv, cwd: ROOT, packageRoot: join(ROOT, 'does-not-exist') });
    assert.equal(config.storage.backend, 's3');
    assert.equal(config.server.http_remote_access, true);
    assert.equal(config.storage.checksum_mode, 'when_required');
    const dbUrl = new URL(config.database.url);
    assert.equal(dbUrl.protocol, 'postgres:');
    assert.equal(dbUrl.hostname, 'postgres');
    assert.equal(dbUrl.pathname, `/${env.get('POSTGRES_DB') ?? ''}`);
    const s3 = s3ClientConfig(s3OptionsFromConfig(config.storage));
    assert.equal(s3.endpoint, 'http://minio:9000');
    assert.equal(s3.forcePathStyle, true);
    assert.equal(s3.requestChecksumCalculation, 'WHEN_REQUIRED');

    // Container ports match pacsnode's defaults (the healthcheck and EXPOSE use them).
    const ports = (app.ports as unknown[]).map((p) => interpolate(String(p), env));
    assert.ok(ports.some((p) => p.endsWith(':8042')) && ports.some((p) => p.endsWith(':4242')), ports.join(' '));
  });

  it('the compose file has the shape checked above even without a YAML parser (text checks)', () => {
    assert.doesNotMatch(composeText, /\t/, 'YAML forbids tabs for indentation');
    for (const s of ['postgres', 'minio', 'createbucket', 'pacsnode']) assert.match(composeText, new RegExp(`^  ${s}:$`, 'm'));
    assert.match(composeText, /condition: service_completed_successfully/);
    assert.equal(composeText.match(/^ {4}healthcheck:$/gm)?.length, 2);
    // The remote-access switch comes with its explanation.
    assert.match(composeText, /#[^\n]*403 REMOTE_ACCESS_DISABLED[\s\S]*#[^\n]*risk[\s\S]*PACS_SERVER__HTTP_REMOTE_ACCESS: "true"/);
  });
});

describe('docker/Dockerfile', () => {
  const instructions = parseDockerfile(read('docker/Dockerfile'));
  const all = stages(instructions);
  const final = all[all.length - 1];
  const ignore = read('.dockerignore')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  it('is multi-stage and the runtime stage installs production dependencies only', () => {
    assert.ok(all.length >= 2, 'at least a build and a runtime stage');
    const build = all.find((s) => s.instructions.some((i) => i.op === 'RUN' && /npm run build/.test(i.args)));
    assert.ok(build, 'a stage runs `npm run build`');
    assert.ok(build.instructions.some((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args)), 'the build stage installs with npm ci');
    assert.ok(final && final !== build);
    // node_modules reach the runtime stage only after `npm prune --omit=dev` (or an --omit=dev install).
    const pruned = build.instructions.some((i) => i.op === 'RUN' && /npm (prune|ci|install)\b[^&]*--omit=dev/.test(i.args));
    const ownInstall = final.instructions.some((i) => i.op === 'RUN' && /npm (ci|install)\b[^&]*--omit=dev/.test(i.args));
    assert.ok(pruned || ownInstall, 'production dependencies only in the runtime image');
    assert.ok(!final.instructions.some((i) => i.op === 'RUN' && /npm (ci|install)\b(?![^&]*--omit=dev)/.test(i.args)), 'no dev install at runtime');
  });

  it('every COPY source exists in the build context (the repo root) or names an earlier stage', () => {
    const seen: string[] = [];
    for (const stage of all) {
      for (const ins of stage.instructions.filter((i) => i.op === 'COPY' || i.op === 'ADD')) {
        const w = words(ins.args);
        const from = w.find((x) => x.startsWith('--from='))?.slice('--from='.length);
        const paths = w.filter((x) => !x.startsWith('--'));
        const sources = paths.slice(0, -1);
        assert.ok(sources.length > 0, `line ${ins.line}: COPY without a source`);
        if (from !== undefined) {
          assert.ok(seen.includes(from), `line ${ins.line}: --from=${from} is not an earlier stage`);
          continue;
        }
        for (const src of sources) {
          const rel = normalize(src).replace(/\/$/, '');
          assert.ok(!rel.startsWith('..'), `line ${ins.line}: ${src} leaves the context`);
          assert.ok(existsSync(join(ROOT, rel)), `line ${ins.line}: ${src} does not exist in the repo`);
          assert.ok(!ignoredByDockerignore(rel, ignore), `line ${ins.line}: ${src} is excluded by .dockerignore`);
        }
      }
      if (stage.name) seen.push(stage.name);
    }
  });

  it('copies everything the TypeScript build reads', () => {
    const copied = instructions
      .filter((i) => i.op === 'COPY' && !i.args.includes('--from='))
      .flatMap((i) => words(i.args).slice(0, -1))
      .map((p) => normalize(p).replace(/\/$/, ''));
    const tsconfig = JSON.parse(read('tsconfig.build.json')) as { extends?: string; include?: string[] };
    const needed = ['package.json', 'package-lock.json', 'tsconfig.build.json', ...(tsconfig.extends ? [normalize(tsconfig.extends)] : [])];
    for (const inc of tsconfig.include ?? []) if (existsSync(join(ROOT, inc))) needed.push(normalize(inc));
    for (const n of needed) assert.ok(copied.includes(n), `the build stage needs ${n}`);
  });

  it('CMD runs the built CLI, a file `npm run build` emits', () => {
    assert.ok(final);
    const cmd = final.instructions.filter((i) => i.op === 'CMD').pop();
    assert.ok(cmd, 'the runtime stage has a CMD');
    const argv = words(cmd.args);
    assert.ok(cmd.args.startsWith('['), 'exec form (signals reach node directly)');
    assert.equal(argv[0], 'node');
    // node, then exactly the Node flags `npm start` uses (ADR 0018), then the entry.
    const pkgScripts = JSON.parse(read('package.json')) as { scripts?: Record<string, string> };
    const startWords = (pkgScripts.scripts?.['start'] ?? '').trim().split(/\s+/);
    const startFlags = startWords.slice(1, startWords.findIndex((w) => w.endsWith('bin/pacsnode.js')));
    const flags = argv.slice(1).filter((x, i, all) => all.slice(0, i + 1).every((y) => y.startsWith('--')));
    assert.deepEqual(flags, startFlags, 'the CMD runs node with the flags of npm start');
    const entry = argv[1 + flags.length] ?? '';
    const workdir = final.instructions.filter((i) => i.op === 'WORKDIR').pop()?.args ?? '/';
    // The entry is copied into the runtime stage from the build stage …
    const copiedTo = final.instructions
      .filter((i) => i.op === 'COPY')
      .map((i) => words(i.args).filter((x) => !x.startsWith('--')))
      .map((w) => resolve(workdir, w[w.length - 1] ?? ''));
    const entryAbs = resolve(workdir, entry);
    assert.ok(copiedTo.some((dest) => entryAbs === dest || entryAbs.startsWith(`${dest}/`)), `${entry} is copied into the runtime stage`);
    // … and is the package's bin, which loads the compiled CLI.
    const pkg = JSON.parse(read('package.json')) as { bin?: Record<string, string> };
    assert.equal(normalize(pkg.bin?.pacsnode ?? ''), normalize(entry));
    const bin = read(entry);
    const target = /from '(\.\.\/dist\/[^']+)'/.exec(bin)?.[1];
    assert.ok(target, `${entry} imports the compiled CLI from dist/`);
    const emitted = resolve(ROOT, 'bin', target);
    // tsc emits <outDir>/<path under rootDir>.js for every input: list the inputs without compiling.
    const build = JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { rootDir: string; outDir: string } };
    const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const files = execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--listFilesOnly'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .map((f) => f.trim())
      .filter((f) => f !== '' && !f.endsWith('.d.ts'))
      .map((f) => resolve(ROOT, f));
    const outputs = files
      .filter((f) => f.startsWith(resolve(ROOT, build.compilerOptions.rootDir) + '/'))
      .map((f) => resolve(ROOT, build.compilerOptions.outDir, relative(resolve(ROOT, build.compilerOptions.rootDir), f)).replace(/\.ts$/, '.js'));
    assert.ok(outputs.includes(emitted), `npm run build emits ${relative(ROOT, emitted)}`);
    assert.ok(existsSync(join(ROOT, entry)) && statSync(join(ROOT, entry)).isFile());
  });

  it('runs as a non-root user and health-checks with node, not curl', () => {
    assert.ok(final);
    const user = final.instructions.filter((i) => i.op === 'USER').pop();
    assert.ok(user, 'the runtime stage sets USER');
    assert.ok(!/^(root|0)(:|$)/.test(user.args), `USER ${user.args} is root`);
    const hc = final.instructions.filter((i) => i.op === 'HEALTHCHECK').pop();
    assert.ok(hc, 'a HEALTHCHECK');
    const cmd = hc.args.slice(hc.args.indexOf('CMD') + 3).trim();
    const argv = words(cmd);
    assert.equal(argv[0], 'node');
    assert.match(cmd, /\/health/);
    assert.doesNotMatch(cmd, /\b(curl|wget)\b/);
    // The -e script is valid JavaScript.
    assert.equal(argv[1], '-e');
    assert.doesNotThrow(() => new Function(argv[2] ?? ''));
  });

  it('.dockerignore keeps secrets, node_modules and build output out of the context', () => {
    for (const p of ['node_modules', 'dist', '.git', 'docker/.env', 'data']) {
      assert.ok(ignoredByDockerignore(p, ignore), `${p} should be in .dockerignore`);
    }
  });
});
