// The DICOMweb end-to-end suite (test/e2e/dicomweb.scenarios.ts) on the run's profile:
// standalone (SQLite + filesystem) unless PACS_TEST_PROFILE=production.
import { describeDicomweb } from './dicomweb.scenarios.js';

describeDicomweb();
