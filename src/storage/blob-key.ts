import { StorageError } from './errors.js';

/**
 * The one rule for blob keys, shared by every BlobStore adapter so they accept and refuse the
 * same keys: relative `/`-separated paths (e.g. `2026/11/<uuid>.dcm`), no NUL or control
 * characters, no backslash, no empty, `.`/`..` or dot-leading segment (`.tmp` is reserved for
 * temporaries), at most 1024 characters.
 */
export function assertValidBlobKey(key: string): void {
  const fail = (why: string): never => {
    throw new StorageError('INVALID_PARAMETER', `invalid blob key: ${why}`);
  };
  if (typeof key !== 'string' || key.length === 0) fail('empty');
  if (key.length > 1024) fail('too long');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) fail('control character');
  if (key.includes('\\')) fail('backslash');
  if (key.startsWith('/')) fail('absolute');
  for (const segment of key.split('/')) {
    if (segment === '') fail('empty segment');
    if (segment.startsWith('.')) fail('dot segment');
  }
}
