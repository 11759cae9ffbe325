// The DICOMweb end-to-end suite (test/e2e/dicomweb.scenarios.ts) on the production profile:
// each server on a fresh PostgreSQL database and its own s3rver bucket, through the real AWS SDK.
import { describeDicomweb } from './dicomweb.scenarios.js';

describeDicomweb('production');
