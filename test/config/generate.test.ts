import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateConfig, PROFILE_NAMES, type ProfileName } from '../../src/config/generate.js';
import { loadConfig } from '../../src/config/load.js';
import { defaultConfig, KNOWN_PLUGIN_IDS, SECTION_SCHEMAS, type Config } from '../../src/config/schema.js';

let base: string;
before(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'pacsnode-generate-'));
});
after(async () => {
  await rm(base, { recursive: true, force: true });
});

function expected(profile: ProfileName, cwd: string): Config {
  const d = defaultConfig();
  const standalone: Config = {
    ...d,
    database: { ...d.database, url: `sqlite://${path.join(cwd, 'data/pacs.db')}` },
    filesystem_storage: { ...d.filesystem_storage, root: path.join(cwd, 'data/blobs') },
  };
  if (profile === 'standalone') return standalone;
  return {
    ...standalone,
    database: { ...d.database, url: 'postgres://pacs:pacs@localhost:5432/pacs' },
    storage: {
      ...d.storage,
      backend: 's3',
      endpoint: 'http://localhost:9000',
      bucket: 'pacs',
      access_key: 'CHANGE-ME',
      secret_key: 'CHANGE-ME',
    },
  };
}

/** The lines of one `[section]` of a generated file. */
function sectionLines(text: string, section: string): string[] {
  const lines = text.split('\n');
  const start = lines.indexOf(`[${section}]`);
  assert.ok(start >= 0, `[${section}] missing`);
  const end = lines.findIndex((l, i) => i > start && /^\[/.test(l));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

for (const profile of PROFILE_NAMES) {
  describe(`generate-config ${profile}`, () => {
    it('loads back through loadConfig unchanged', async () => {
      const cwd = await mkdtemp(path.join(base, `${profile}-`));
      await writeFile(path.join(cwd, 'config.toml'), generateConfig(profile));
      const config = loadConfig({ env: {}, cwd, packageRoot: path.join(base, 'no-package-root') });
      assert.deepEqual(config, expected(profile, cwd));
    });

    it('loads back the same through --config', async () => {
      const cwd = await mkdtemp(path.join(base, `${profile}-argv-`));
      const file = path.join(base, `${profile}.toml`);
      await writeFile(file, generateConfig(profile));
      assert.deepEqual(loadConfig({ argvConfigPath: file, env: {}, cwd, packageRoot: cwd }), expected(profile, cwd));
    });

    it('writes every key of the schema, each under a comment', () => {
      const text = generateConfig(profile);
      for (const [section, schema] of Object.entries(SECTION_SCHEMAS)) {
        const lines = sectionLines(text, section);
        const keys = section === 'plugins' ? ['enabled'] : Object.keys(schema.shape);
        for (const key of keys) {
          const i = lines.findIndex((l) => new RegExp(`^(# )?${key} = `).test(l));
          assert.ok(i > 0, `${section}.${key} missing in ${profile}`);
          assert.match(lines[i - 1] ?? '', /^# ./, `${section}.${key} has no comment`);
        }
      }
    });

    it('starts with the clinical-use disclaimer and lists only plugins that exist', () => {
      const text = generateConfig(profile);
      assert.match(text, /NOT FOR CLINICAL USE/);
      const expectedList = KNOWN_PLUGIN_IDS.length === 0 ? 'none' : KNOWN_PLUGIN_IDS.join(', ');
      assert.match(text, new RegExp(`# Plugins in this build: ${expectedList}`));
      for (const id of ['basic-auth', 'audit-logger', 'admin-dashboard', 'prometheus-metrics', 'pacsleaf-viewer', 'ohif-viewer']) {
        if (!KNOWN_PLUGIN_IDS.includes(id)) assert.doesNotMatch(text, new RegExp(id), `${id} does not exist yet`);
      }
    });
  });
}

describe('generate-config production', () => {
  it('uses PostgreSQL and S3 and explains http_remote_access', () => {
    const text = generateConfig('production');
    assert.match(text, /^url = "postgres:\/\/pacs:pacs@localhost:5432\/pacs"$/m);
    assert.match(text, /^backend = "s3"$/m);
    assert.match(text, /^secret_key = "CHANGE-ME"$/m);
    assert.match(text, /# .*\(default: "sqlite:\/\/\.\/data\/pacs\.db"\)$/m);
    const remote = sectionLines(text, 'server');
    const i = remote.indexOf('http_remote_access = false');
    assert.ok(i > 0);
    assert.match(remote.slice(0, i).join('\n'), /load balancer/);
  });

  it('shows the S3 keys commented out in the standalone profile', () => {
    const text = generateConfig('standalone');
    assert.match(text, /^# bucket = "pacs"$/m);
    assert.match(text, /^# secret_key = /m);
    assert.match(text, /^backend = "filesystem"$/m);
  });
});
