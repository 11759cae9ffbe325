// `generate-config production` must give a working configuration for the S3 adapter and PostgreSQL.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { generateConfig } from '../../src/config/generate.js';
import { databaseKind, loadConfig } from '../../src/config/load.js';
import { isStorageError } from '../../src/storage/errors.js';
import { createS3BlobStore, s3ClientConfig } from '../../src/storage/s3/s3-blob-store.js';
import { s3OptionsFromConfig } from '../../src/storage/s3/s3-config.js';

async function loadGenerated(env: Record<string, string> = {}): Promise<ReturnType<typeof loadConfig>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pacsnode-s3-config-'));
  try {
    const file = path.join(dir, 'production.toml');
    await writeFile(file, generateConfig('production'));
    return loadConfig({ argvConfigPath: file, env, cwd: dir, packageRoot: dir });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('generate-config production → S3 and PostgreSQL adapters', () => {
  it('builds an S3 client configuration from the generated file, without network', async () => {
    const config = await loadGenerated();
    assert.equal(config.storage.backend, 's3');
    const options = s3OptionsFromConfig(config.storage);
    assert.deepEqual(options, {
      endpoint: 'http://localhost:9000',
      bucket: 'pacs',
      accessKey: 'CHANGE-ME',
      secretKey: 'CHANGE-ME',
      region: 'us-east-1',
      forcePathStyle: true,
      checksumMode: 'when_required',
    });
    const clientConfig = s3ClientConfig(options);
    // The SDK resolves the configuration on construction; nothing is sent until a command is.
    const client = new S3Client(clientConfig);
    try {
      assert.equal(await client.config.requestChecksumCalculation(), 'WHEN_REQUIRED');
      assert.equal(await client.config.responseChecksumValidation(), 'WHEN_REQUIRED');
      assert.equal(client.config.forcePathStyle, true);
      assert.equal(await client.config.region(), 'us-east-1');
      const endpoint = await client.config.endpoint?.();
      assert.equal(endpoint?.hostname, 'localhost');
      assert.equal(endpoint?.port, 9000);
      const creds = await client.config.credentials();
      assert.equal(creds.accessKeyId, 'CHANGE-ME');
    } finally {
      client.destroy();
    }
    const store = createS3BlobStore(options);
    assert.equal(store.kind, 's3');
    await store.close();
  });

  it('environment variables override the generated S3 keys (as docker compose sets them)', async () => {
    const config = await loadGenerated({
      PACS_STORAGE__ENDPOINT: 'http://minio:9000',
      PACS_STORAGE__BUCKET: 'archive',
      PACS_STORAGE__CHECKSUM_MODE: 'when_supported',
      PACS_STORAGE__FORCE_PATH_STYLE: 'false',
    });
    const c = s3ClientConfig(s3OptionsFromConfig(config.storage));
    assert.equal(c.endpoint, 'http://minio:9000');
    assert.equal(c.forcePathStyle, false);
    assert.equal(c.requestChecksumCalculation, 'WHEN_SUPPORTED');
    assert.equal(s3OptionsFromConfig(config.storage).bucket, 'archive');
  });

  it('the generated database URL is a PostgreSQL connection string the pg pool accepts', async () => {
    const config = await loadGenerated();
    assert.equal(databaseKind(config.database.url), 'postgres');
    const url = new URL(config.database.url);
    assert.equal(url.protocol, 'postgres:');
    assert.ok(url.hostname !== '' && url.username !== '' && url.password !== '');
    assert.match(url.port, /^\d+$/);
    assert.match(url.pathname, /^\/[A-Za-z0-9_]+$/, 'one database name');
  });

  it('a half-given key pair is refused with a message naming both keys', async () => {
    const config = await loadGenerated({ PACS_STORAGE__SECRET_KEY: '' });
    assert.throws(
      () => s3ClientConfig(s3OptionsFromConfig(config.storage)),
      (e: unknown) => isStorageError(e) && /access_key.*secret_key/.test(e.message),
    );
  });
});
