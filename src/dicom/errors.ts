/** A query key whose value cannot be matched (PS3.4 C.2.2.2); the archive turns it into INVALID_QUERY. */
export class DicomQueryError extends Error {
  readonly key: string;
  constructor(key: string, message: string) {
    super(message);
    this.name = 'DicomQueryError';
    this.key = key;
  }
}
