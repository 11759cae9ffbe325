// `pacsnode generate-config standalone`: one process, SQLite and local files — the defaults.
import type { TemplateProfile } from './profile.js';

export const standaloneProfile: TemplateProfile = {
  name: 'standalone',
  intro: [
    'Standalone: one process with an SQLite database (./data/pacs.db) and blobs on the local',
    'filesystem (./data/blobs), both relative to the working directory. Every value below is the default.',
  ],
  values: {},
  notes: {
    'server.http_remote_access': [
      'Keep false until an auth plugin is enabled, or the archive is open to everyone who can reach',
      'the port. Only set it true on a trusted network.',
    ],
  },
};
