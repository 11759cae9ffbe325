import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const forbiddenInCore = ['fastify', 'fastify/*', '@fastify/*', 'node:net', 'net', 'pg', 'pg-*', 'better-sqlite3', 'kysely', '@aws-sdk/*', 'node:http', 'http'];

/** A no-restricted-imports rule for one layer: forbidden packages and forbidden sibling folders of src/. */
function layer(files, packages, folders) {
  const patterns = [];
  if (packages.length > 0) patterns.push({ group: packages, message: 'archive/ and dicom/ must not import I/O adapters (ARCHITECTURE.md rule 1).' });
  patterns.push({ regex: `^(\\.\\./)+(${folders.join('|')})(/|\\.js$)`, message: 'dependencies point inward (ARCHITECTURE.md rule 1).' });
  return { files: [files], rules: { 'no-restricted-imports': ['error', { patterns }] } };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', 'web/dist/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setImmediate: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  // Rule 1 of the house: dependencies point inward. http/, dimse/, cli/, plugins/ -> archive/ ->
  // storage/ ports and dicom/; archive/ and dicom/ are pure (no web framework, sockets, drivers, SDKs).
  layer('src/dicom/**/*.ts', [...forbiddenInCore], ['archive', 'storage', 'http', 'dimse', 'cli', 'plugins', 'config', 'main']),
  layer('src/archive/**/*.ts', [...forbiddenInCore], ['http', 'dimse', 'cli', 'plugins', 'config', 'main']),
  layer('src/storage/**/*.ts', [], ['archive', 'http', 'dimse', 'cli', 'plugins', 'main']),
  layer('src/http/**/*.ts', [], ['dimse', 'cli', 'main', 'storage/(fs|memory|sqlite|postgres|s3)']),
  layer('src/dimse/**/*.ts', [], ['http', 'cli', 'main', 'storage/(fs|memory|sqlite|postgres|s3)']),
  {
    // Nothing outside config/ (and the composition root / CLI entry) reads process.env.
    files: ['src/**/*.ts'],
    ignores: ['src/config/**', 'src/main.ts', 'src/cli/**'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read configuration through config/ (rule 9).' }],
    },
  },
);
