/**
 * A received C-STORE data set as a Part-10 byte stream: a File Meta header built from the
 * presentation context and the command (PS3.10 7.1), then the data set bytes exactly as they
 * arrive, chunk by chunk (ARCHITECTURE rules 4 and 5). Whoever reads it (archive.ingest, a file
 * writer) sets the pace: while it does not read, the data set stream fills up and the transport
 * pauses. Used by the Storage SCP (scp/store.ts) and the C-GET SCU.
 */
import type { Readable } from 'node:stream';
import { encodeFileMeta } from '../../dicom/writer.js';
import { chunksOf } from '../../util/chunks.js';

export interface Part10Identity {
  /** (0002,0002): the command's Affected SOP Class UID. */
  sopClassUid: string;
  /** (0002,0003): the command's Affected SOP Instance UID. */
  sopInstanceUid: string;
  /** (0002,0010): the presentation context's transfer syntax. */
  transferSyntaxUid: string;
  /** (0002,0016) Source Application Entity Title: the AE that sent the data set. */
  sourceAeTitle?: string;
}

export interface Part10Stream {
  /** File Meta, then the data set bytes as received. Iterate once. */
  body: AsyncIterable<Uint8Array>;
  /** Data set bytes read so far (File Meta not counted). */
  readonly dataSetBytes: number;
}

export function part10Stream(identity: Part10Identity, dataSet: Readable): Part10Stream {
  const meta = encodeFileMeta({
    sopClassUid: identity.sopClassUid,
    sopInstanceUid: identity.sopInstanceUid,
    transferSyntaxUid: identity.transferSyntaxUid,
    ...(identity.sourceAeTitle !== undefined ? { sourceAeTitle: identity.sourceAeTitle } : {}),
  });
  let bytes = 0;
  async function* body(): AsyncGenerator<Uint8Array> {
    yield meta;
    // chunksOf: chunk by chunk as pushed (for-await on a Readable joins buffered chunks: a copy).
    for await (const chunk of chunksOf(dataSet)) {
      bytes += chunk.length;
      yield chunk;
    }
  }
  return {
    body: body(),
    get dataSetBytes() {
      return bytes;
    },
  };
}

/**
 * Reads a data set stream to its end, discarding it (a consumer stopped early): the association
 * goes on with the next message only once the data set has been taken off it. Never rejects.
 */
export async function drainDataSet(dataSet: Readable): Promise<void> {
  if (dataSet.readableEnded || dataSet.destroyed) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      dataSet.off('end', done);
      dataSet.off('close', done);
      dataSet.off('error', done);
      resolve();
    };
    dataSet.on('end', done);
    dataSet.on('close', done);
    dataSet.on('error', done);
    dataSet.resume();
  });
}
