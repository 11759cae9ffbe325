import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig, redactConfig, REDACTED, sqlitePathFromUrl, type LoadConfigOptions } from '../../src/config/load.js';
import { defaultConfig, type Config } from '../../src/config/schema.js';

let base: string;
before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'pacsnode-config-'));
});
after(async () => {
  await rm(base, { recursive: true, force: true });
});

let counter = 0;
/** A fresh package root and working directory, each with an optional config.toml. */
async function dirs(files: { pkg?: string; cwd?: string } = {}): Promise<{ pkg: string; cwd: string }> {
  const root = path.join(base, String(counter++));
  const pkg = path.join(root, 'pkg');
  const cwd = path.join(root, 'work');
  await mkdir(pkg, { recursive: true });
  await mkdir(cwd, { recursive: true });
  if (files.pkg !== undefined) await writeFile(path.join(pkg, 'config.toml'), files.pkg);
  if (files.cwd !== undefined) await writeFile(path.join(cwd, 'config.toml'), files.cwd);
  return { pkg, cwd };
}

function load(d: { pkg: string; cwd: string }, env: Record<string, string> = {}, extra: Partial<LoadConfigOptions> = {}): Config {
  return loadConfig({ env, cwd: d.cwd, packageRoot: d.pkg, ...extra });
}

/** The defaults as loadConfig returns them for `cwd` (paths made absolute). */
function resolvedDefaults(cwd: string): Config {
  const d = defaultConfig();
  return {
    ...d,
    database: { ...d.database, url: `sqlite://${path.join(cwd, 'data/pacs.db')}` },
    filesystem_storage: { ...d.filesystem_storage, root: path.join(cwd, 'data/blobs') },
  };
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

describe('loadConfig: defaults', () => {
  it('gives the SPEC §2 defaults when there is no file and no PACS_ variable', async () => {
    const d = await dirs();
    const config = load(d, { HOME: '/root', PATH: '/bin' });
    assert.deepEqual(config, resolvedDefaults(d.cwd));
    assert.equal(config.server.http_port, 8042);
    assert.equal(config.server.dicom_port, 4242);
    assert.equal(config.server.ae_title, 'PACSNODE');
    assert.equal(config.server.http_host, '0.0.0.0');
    assert.equal(config.storage.gc_interval_secs, 3600);
    assert.equal(config.storage.secret_key, undefined);
  });

  it('returns a deeply frozen object', async () => {
    const config = load(await dirs());
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.server));
    assert.ok(Object.isFrozen(config.server.cors_origins));
    assert.ok(Object.isFrozen(config.plugins.enabled));
  });

  it('defaultConfig() keeps paths as written', () => {
    const d = defaultConfig();
    assert.equal(d.database.url, 'sqlite://./data/pacs.db');
    assert.equal(d.filesystem_storage.root, './data/blobs');
  });
});

describe('loadConfig: layers', () => {
  it('reads config.toml in the package root', async () => {
    const d = await dirs({ pkg: '[server]\nhttp_port = 9001\n' });
    assert.equal(load(d).server.http_port, 9001);
  });

  it('lets the working directory file win over the package root, merged per key', async () => {
    const d = await dirs({
      pkg: '[server]\nhttp_port = 9001\nae_title = "PKG"\n[dicomweb]\nqido_max_limit = 50\nqido_default_limit = 10\n',
      cwd: '[server]\nhttp_port = 9002\n',
    });
    const c = load(d);
    assert.equal(c.server.http_port, 9002);
    assert.equal(c.server.ae_title, 'PKG');
    assert.equal(c.server.dicom_port, 4242);
    assert.equal(c.dicomweb.qido_max_limit, 50);
    assert.equal(c.dicomweb.qido_default_limit, 10);
  });

  it('lets environment variables win over both files', async () => {
    const d = await dirs({ pkg: '[server]\nhttp_port = 9001\n', cwd: '[server]\nhttp_port = 9002\n' });
    assert.equal(load(d, { PACS_SERVER__HTTP_PORT: '9003' }).server.http_port, 9003);
  });

  it('replaces arrays instead of concatenating them', async () => {
    const d = await dirs({
      pkg: '[server]\ncors_origins = ["https://a.example", "https://b.example"]\n',
      cwd: '[server]\ncors_origins = ["https://c.example"]\n',
    });
    assert.deepEqual(load(d).server.cors_origins, ['https://c.example']);
    assert.deepEqual(load(d, { PACS_SERVER__CORS_ORIGINS: '[]' }).server.cors_origins, []);
  });

  it('reads the package root file once when it is also the working directory', async () => {
    const d = await dirs({ pkg: '[server]\nhttp_port = 9001\n' });
    assert.equal(load({ pkg: d.pkg, cwd: d.pkg }).server.http_port, 9001);
  });

  it('uses --config instead of both file layers', async () => {
    const d = await dirs({ pkg: '[server]\nhttp_port = 9001\nae_title = "PKG"\n', cwd: '[server]\ndicom_port = 11112\n' });
    await writeFile(path.join(d.cwd, 'other.toml'), '[server]\nhttp_port = 7000\n');
    const c = load(d, {}, { argvConfigPath: 'other.toml' });
    assert.equal(c.server.http_port, 7000);
    assert.equal(c.server.ae_title, 'PACSNODE');
    assert.equal(c.server.dicom_port, 4242);
  });

  it('uses PACS_CONFIG instead of both file layers, and --config wins over it', async () => {
    const d = await dirs({ pkg: '[server]\nae_title = "PKG"\n', cwd: '[server]\ndicom_port = 11112\n' });
    const envFile = path.join(d.cwd, 'env.toml');
    await writeFile(envFile, '[server]\nhttp_port = 7001\n');
    await writeFile(path.join(d.cwd, 'argv.toml'), '[server]\nhttp_port = 7002\n');
    const c = load(d, { PACS_CONFIG: envFile });
    assert.equal(c.server.http_port, 7001);
    assert.equal(c.server.ae_title, 'PACSNODE');
    assert.equal(c.server.dicom_port, 4242);
    assert.equal(load(d, { PACS_CONFIG: envFile }, { argvConfigPath: 'argv.toml' }).server.http_port, 7002);
  });

  it('still applies environment variables over a --config file', async () => {
    const d = await dirs();
    await writeFile(path.join(d.cwd, 'other.toml'), '[server]\nhttp_port = 7000\n');
    assert.equal(load(d, { PACS_SERVER__HTTP_PORT: '7100' }, { argvConfigPath: 'other.toml' }).server.http_port, 7100);
  });

  it('fails when the --config or PACS_CONFIG file does not exist, naming it', async () => {
    const d = await dirs();
    const e1 = configError(() => load(d, {}, { argvConfigPath: 'missing.toml' }));
    assert.match(e1.message, /missing\.toml: file not found/);
    assert.match(e1.message, /--config/);
    const e2 = configError(() => load(d, { PACS_CONFIG: 'gone.toml' }));
    assert.match(e2.message, /gone\.toml: file not found/);
    assert.match(e2.message, /PACS_CONFIG/);
  });

  it('reports invalid TOML with the file and position', async () => {
    const d = await dirs({ cwd: '[server]\nsecret = "unterminated\n' });
    const e = configError(() => load(d));
    assert.match(e.message, /config\.toml: not valid TOML: .* line 2/);
    assert.doesNotMatch(e.message, /unterminated/);
  });
});

describe('loadConfig: environment variables', () => {
  it('parses integers, booleans, arrays and quoted strings as TOML', async () => {
    const c = load(await dirs(), {
      PACS_SERVER__HTTP_PORT: '9000',
      PACS_SERVER__HTTP_REMOTE_ACCESS: 'true',
      PACS_SERVER__CORS_ORIGINS: '["https://a.example","https://b.example"]',
      PACS_SERVER__AE_TITLE: '"QUOTED"',
    });
    assert.equal(c.server.http_port, 9000);
    assert.equal(c.server.http_remote_access, true);
    assert.deepEqual(c.server.cors_origins, ['https://a.example', 'https://b.example']);
    assert.equal(c.server.ae_title, 'QUOTED');
  });

  it('takes a value that is not TOML as a plain string', async () => {
    const c = load(await dirs(), {
      PACS_DATABASE__URL: 'postgres://pacs:pacs@db:5432/pacs',
      PACS_SERVER__AE_TITLE: 'MY_AE',
      PACS_LOGGING__LEVEL: 'info,dimse=debug',
    });
    assert.equal(c.database.url, 'postgres://pacs:pacs@db:5432/pacs');
    assert.equal(c.server.ae_title, 'MY_AE');
    assert.equal(c.logging.level, 'info,dimse=debug');
  });

  it('keeps the raw text for a string key whose value reads as another TOML type', async () => {
    const c = load(await dirs(), { PACS_SERVER__AE_TITLE: '1234', PACS_STORAGE__SECRET_KEY: 'true' });
    assert.equal(c.server.ae_title, '1234');
    assert.equal(c.storage.secret_key, 'true');
  });

  it('matches names case-insensitively and `_` against `-`', async () => {
    const c = load(await dirs(), { PACS_server__Max_Pdu_Length: '32768', 'PACS_SERVER__DIMSE-TIMEOUT-SECS': '5' });
    assert.equal(c.server.max_pdu_length, 32768);
    assert.equal(c.server.dimse_timeout_secs, 5);
  });

  it('does not treat PACS_CONFIG as a key', async () => {
    const d = await dirs();
    const file = path.join(d.cwd, 'c.toml');
    await writeFile(file, '');
    assert.deepEqual(load(d, { PACS_CONFIG: file }), resolvedDefaults(d.cwd));
  });

  it('rejects an unknown key, naming the key and the variable', async () => {
    const e = configError(() => load(noDirs(), { PACS_SERVER__HTTP_PROT: '9000' }));
    assert.match(e.message, /server\.http_prot: unknown key/);
    assert.match(e.message, /PACS_SERVER__HTTP_PROT/);
  });

  it('rejects an unknown table', async () => {
    const e = configError(() => load(noDirs(), { PACS_SERVR__HTTP_PORT: '1' }));
    assert.match(e.message, /servr: unknown key/);
  });

  it('rejects plugin tables and plugin ids, since this build has no plugins', async () => {
    const e = configError(() => load(noDirs(), { PACS_PLUGINS__BASIC_AUTH__OIDC__ISSUER: 'https://idp.example' }));
    assert.match(e.message, /plugins\.basic-auth: unknown plugin id/);
    assert.match(e.message, /PACS_PLUGINS__BASIC_AUTH__OIDC__ISSUER/);
    const e2 = configError(() => load(noDirs(), { PACS_PLUGINS__ENABLED: '["basic-auth"]' }));
    assert.match(e2.message, /plugins\.enabled\[0\]: unknown plugin id "basic-auth"/);
  });

  it('names the variable of a wrongly typed value', async () => {
    const e = configError(() => load(noDirs(), { PACS_SERVER__HTTP_PORT: 'eighty' }));
    assert.match(e.message, /server\.http_port: expected an integer, got a string \(from environment variable PACS_SERVER__HTTP_PORT\)/);
  });

  it('rejects more key segments than the schema has', async () => {
    const e = configError(() => load(noDirs(), { PACS_SERVER__HTTP_PORT__X: '1' }));
    assert.match(e.message, /server\.http_port: is not a table/);
  });
});

describe('loadConfig: validation of files', () => {
  it('rejects an unknown key, naming its full path and the file', async () => {
    const d = await dirs({ cwd: '[server]\nhttp_prot = 8080\n' });
    const e = configError(() => load(d));
    assert.match(e.message, /server\.http_prot: unknown key \(in .*work\/config\.toml\)/);
    assert.deepEqual(
      e.issues.map((i) => i.key),
      ['server.http_prot'],
    );
  });

  it('rejects an unknown table and an unknown top-level key', async () => {
    const d = await dirs({ cwd: 'colour = "blue"\n[sever]\nport = 1\n' });
    const e = configError(() => load(d));
    assert.deepEqual(e.issues.map((i) => i.key).sort(), ['colour', 'sever']);
  });

  it('rejects a wrong type, naming the key and the expected type', async () => {
    const d = await dirs({ pkg: '[server]\nhttp_port = "8080"\ntrust_proxy = 1\n[storage]\nbackend = "ftp"\n' });
    const e = configError(() => load(d));
    assert.match(e.message, /server\.http_port: expected an integer, got a string \(in .*pkg\/config\.toml\)/);
    assert.match(e.message, /server\.trust_proxy: expected a boolean/);
    assert.match(e.message, /storage\.backend: expected one of "filesystem", "s3"/);
  });

  it('checks ranges', async () => {
    const cases: [string, RegExp][] = [
      ['[server]\nhttp_port = 70000\n', /server\.http_port: must be ≤ 65535/],
      ['[server]\ndicom_port = -1\n', /server\.dicom_port: must be ≥ 0/],
      ['[server]\nmax_request_bytes = -5\n', /server\.max_request_bytes: must be ≥ 0/],
      ['[server]\nhttp_port = 80.5\n', /server\.http_port: expected an integer/],
      ['[dicomweb]\nqido_default_limit = 500\nqido_max_limit = 100\n', /dicomweb\.qido_default_limit: must be ≤ dicomweb\.qido_max_limit/],
      ['[server]\nae_title = "WAY_TOO_LONG_AE_TITLE"\n', /server\.ae_title: must be 1–16 characters/],
      ['[server]\nae_title = "A\\\\B"\n', /server\.ae_title: must not contain a backslash/],
      ['[server]\nae_title = ""\n', /server\.ae_title: must be 1–16 characters/],
      ['[server]\naccepted_transfer_syntaxes = ["1.2..840"]\n', /server\.accepted_transfer_syntaxes\[0\]: expected a UID/],
      ['[storage]\nbackend = "s3"\n', /storage\.bucket: required when storage\.backend = "s3"/],
      ['[database]\nurl = "mysql://x"\n', /database\.url: expected postgres/],
      ['[logging]\nlevel = "info,dimse=loud"\n', /logging\.level: invalid level/],
      ['[plugins]\nenabled = ["basic-auth"]\n', /plugins\.enabled\[0\]: unknown plugin id "basic-auth"/],
      ['[plugins.basic-auth]\nissuer = "x"\n', /plugins\.basic-auth: unknown plugin id "basic-auth"/],
    ];
    for (const [toml, pattern] of cases) {
      const d = await dirs({ cwd: toml });
      assert.match(configError(() => load(d)).message, pattern, toml);
    }
  });

  it('accepts port 0 (ephemeral) and a per-component log level', async () => {
    const d = await dirs({ cwd: '[server]\nhttp_port = 0\ndicom_port = 0\n[logging]\nlevel = "warn,dimse=debug,http=trace"\n' });
    const c = load(d);
    assert.equal(c.server.http_port, 0);
    assert.equal(c.logging.level, 'warn,dimse=debug,http=trace');
  });

  it('reports every problem at once', async () => {
    const d = await dirs({ cwd: '[server]\nhttp_prot = 1\ndicom_port = "x"\n' });
    assert.equal(configError(() => load(d, { PACS_ARCHIVE__ON_DUPLICATE: 'ignore' })).issues.length, 3);
  });
});

describe('paths', () => {
  it('resolves filesystem_storage.root and the sqlite path against the working directory', async () => {
    const d = await dirs({ cwd: '[filesystem_storage]\nroot = "blobs"\n[database]\nurl = "sqlite://db/x.db"\n' });
    const c = load(d);
    assert.equal(c.filesystem_storage.root, path.join(d.cwd, 'blobs'));
    assert.equal(c.database.url, `sqlite://${path.join(d.cwd, 'db/x.db')}`);
    assert.equal(sqlitePathFromUrl(c.database.url, '/elsewhere'), path.join(d.cwd, 'db/x.db'));
  });

  it('keeps absolute paths, in-memory SQLite and PostgreSQL URLs', async () => {
    const d = await dirs({ cwd: '[filesystem_storage]\nroot = "/srv/blobs"\n' });
    assert.equal(load(d).filesystem_storage.root, '/srv/blobs');
    assert.equal(load(d, { PACS_DATABASE__URL: 'sqlite://:memory:' }).database.url, 'sqlite://:memory:');
    assert.equal(load(d, { PACS_DATABASE__URL: 'postgres://u@h/db' }).database.url, 'postgres://u@h/db');
  });

  it('sqlitePathFromUrl handles relative, absolute and :memory: URLs', () => {
    assert.equal(sqlitePathFromUrl('sqlite://./data/pacs.db', '/work'), '/work/data/pacs.db');
    assert.equal(sqlitePathFromUrl('sqlite://data/pacs.db', '/work'), '/work/data/pacs.db');
    assert.equal(sqlitePathFromUrl('sqlite:///abs/path.db', '/work'), '/abs/path.db');
    assert.equal(sqlitePathFromUrl('sqlite://:memory:', '/work'), ':memory:');
    assert.throws(() => sqlitePathFromUrl('postgres://h/db', '/work'), ConfigError);
  });
});

describe('redactConfig', () => {
  it('hides the S3 secret key and URL passwords, keeps the rest', async () => {
    const c = load(await dirs(), {
      PACS_STORAGE__SECRET_KEY: 's3cr3t-value',
      PACS_STORAGE__ACCESS_KEY: 'AKIDEXAMPLE',
      PACS_DATABASE__URL: 'postgres://pacs:hunter2@db:5432/pacs',
    });
    const r = redactConfig(c);
    const text = JSON.stringify(r);
    assert.doesNotMatch(text, /s3cr3t-value/);
    assert.doesNotMatch(text, /hunter2/);
    assert.equal(r.storage.secret_key, REDACTED);
    assert.equal(r.database.url, `postgres://pacs:${REDACTED}@db:5432/pacs`);
    assert.equal(r.storage.access_key, 'AKIDEXAMPLE');
    assert.equal(r.server.cors_credentials, false);
    assert.equal(c.storage.secret_key, 's3cr3t-value', 'the config itself is untouched');
  });

  it('never puts a secret value into an error message', async () => {
    const d = await dirs({ cwd: '[storage]\nsecret_key = ["not-a-string-secret"]\n' });
    const e = configError(() => load(d));
    assert.match(e.message, /storage\.secret_key: expected a string, got an array/);
    assert.doesNotMatch(e.message, /not-a-string-secret/);
  });
});

/** Directories that need no file: a package root and cwd that do not exist are fine too. */
function noDirs(): { pkg: string; cwd: string } {
  const root = path.join(base, `none-${counter++}`);
  return { pkg: path.join(root, 'pkg'), cwd: path.join(root, 'work') };
}
