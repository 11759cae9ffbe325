// `pacsnode generate-config production`: PostgreSQL + S3-compatible object storage, several
// stateless instances behind a load balancer.
import type { TemplateProfile } from './profile.js';

export const productionProfile: TemplateProfile = {
  name: 'production',
  intro: [
    'Production: PostgreSQL and S3-compatible object storage; several pacsnode instances can serve',
    'the same database and bucket behind a load balancer. Replace every CHANGE-ME and the sample',
    'credentials. Terminate TLS at a reverse proxy in front of pacsnode.',
  ],
  values: {
    database: { url: 'postgres://pacs:pacs@localhost:5432/pacs' },
    storage: {
      backend: 's3',
      endpoint: 'http://localhost:9000',
      bucket: 'pacs',
      access_key: 'CHANGE-ME',
      secret_key: 'CHANGE-ME',
    },
  },
  notes: {
    'server.http_remote_access': [
      'Behind a load balancer every request comes from a non-loopback address, so with false every',
      'HTTP request gets 403 until an auth plugin is enabled. Set it true only if the network in front',
      'of pacsnode restricts who can reach it (start-up warns when true without auth).',
    ],
    'database.url': ['Sample credentials: change them. The password is masked in logs.'],
    'storage.bucket': ['Create the bucket first: pacsnode never creates it, and a missing bucket stops start-up.'],
    'storage.checksum_mode': ['Keep "when_required" with MinIO and other S3-compatible servers: with the SDK default some store streamed bodies corrupt.'],
  },
};
