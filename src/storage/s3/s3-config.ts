import type { StorageConfig } from '../../config/schema.js';
import { StorageError } from '../errors.js';
import type { S3BlobStoreOptions } from './s3-blob-store.js';

/** The `[storage]` keys of SPEC §2 as S3BlobStore options (main.ts uses this when backend = "s3"). */
export function s3OptionsFromConfig(storage: StorageConfig): S3BlobStoreOptions {
  if (storage.bucket === undefined || storage.bucket === '') {
    throw new StorageError('INVALID_PARAMETER', 'storage.bucket is required when storage.backend = "s3"');
  }
  return {
    endpoint: storage.endpoint,
    bucket: storage.bucket,
    accessKey: storage.access_key,
    secretKey: storage.secret_key,
    region: storage.region,
    forcePathStyle: storage.force_path_style,
    checksumMode: storage.checksum_mode,
  };
}
