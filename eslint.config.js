import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const forbiddenInCore = ['fastify', 'fastify/*', '@fastify/*', 'node:net', 'net', 'pg', 'pg-*', 'better-sqlite3', 'kysely', '@aws-sdk/*', 'node:http', 'http'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'coverage/**', 'web/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setImmediate: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    // Rule 1 of the house: archive/ and dicom/ are pure — no web framework, sockets, drivers or SDKs.
    files: ['src/archive/**/*.ts', 'src/dicom/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: forbiddenInCore, message: 'archive/ and dicom/ must not import I/O adapters (ARCHITECTURE.md rule 1).' }] }],
    },
  },
  {
    // Nothing outside config/ (and the composition root / CLI entry) reads process.env.
    files: ['src/**/*.ts'],
    ignores: ['src/config/**', 'src/main.ts', 'src/cli/**'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'Read configuration through config/ (rule 9).' }],
    },
  },
);
