import type { Readable } from 'node:stream';

/** One fragment of encapsulated Pixel Data: absolute byte range of its value in the blob. */
export interface Fragment {
  offset: number;
  length: number;
}

export interface FragmentTable {
  /** Basic Offset Table entries (relative to the first fragment's item tag), may be empty. */
  basicOffsets: number[];
  fragments: Fragment[];
  /** Absolute offset of each fragment's item tag (needed to apply the BOT). */
  itemStarts: number[];
}

/**
 * Walks the items of an undefined-length Pixel Data value (PS3.5 A.4) starting at `valueOffset`,
 * keeping only 8 item-header bytes at a time: fragment contents are skipped, never buffered.
 */
export async function scanFragments(stream: Readable, valueOffset: number): Promise<FragmentTable> {
  const basicOffsets: number[] = [];
  const fragments: Fragment[] = [];
  const itemStarts: number[] = [];
  let pos = valueOffset; // absolute position of the next unread byte
  let header = Buffer.alloc(0);
  let skip = 0;
  let first = true;
  let done = false;
  let botBytes: Buffer[] | undefined;
  try {
    for await (const raw of stream) {
      let chunk = raw as Buffer;
      while (chunk.length > 0 && !done) {
        if (skip > 0) {
          const n = Math.min(skip, chunk.length);
          if (botBytes) botBytes.push(Buffer.from(chunk.subarray(0, n)));
          skip -= n;
          pos += n;
          chunk = chunk.subarray(n);
          if (skip === 0 && botBytes) {
            const bot = Buffer.concat(botBytes);
            for (let i = 0; i + 4 <= bot.length; i += 4) basicOffsets.push(bot.readUInt32LE(i));
            botBytes = undefined;
          }
          continue;
        }
        const need = 8 - header.length;
        const take = chunk.subarray(0, need);
        header = header.length === 0 ? Buffer.from(take) : Buffer.concat([header, take]);
        chunk = chunk.subarray(take.length);
        pos += take.length;
        if (header.length < 8) continue;
        const group = header.readUInt16LE(0);
        const element = header.readUInt16LE(2);
        const length = header.readUInt32LE(4);
        header = Buffer.alloc(0);
        if (group === 0xfffe && element === 0xe0dd) {
          done = true;
          break;
        }
        if (group !== 0xfffe || element !== 0xe000 || length === 0xffffffff) throw new Error('malformed encapsulated pixel data');
        if (first) {
          // The Basic Offset Table is small (4 bytes per frame): the only item whose bytes are kept.
          first = false;
          if (length > 0) {
            botBytes = [];
            skip = length;
          }
          continue;
        }
        itemStarts.push(pos - 8);
        fragments.push({ offset: pos, length });
        skip = length;
      }
      if (done) break;
    }
  } finally {
    stream.destroy();
  }
  if (!done) throw new Error('encapsulated pixel data without sequence delimiter');
  return { basicOffsets, fragments, itemStarts };
}

/** Groups fragments into frames: BOT when present, else one fragment per frame, else all in one frame. */
export function framesFromFragments(table: FragmentTable, numberOfFrames: number): Fragment[][] {
  const { fragments, basicOffsets, itemStarts } = table;
  if (numberOfFrames <= 1) return [fragments];
  if (fragments.length === numberOfFrames) return fragments.map((f) => [f]);
  if (basicOffsets.length === numberOfFrames && itemStarts.length > 0) {
    const base = itemStarts[0] as number;
    const frames: Fragment[][] = [];
    for (let i = 0; i < numberOfFrames; i++) {
      const start = base + (basicOffsets[i] as number);
      const end = i + 1 < numberOfFrames ? base + (basicOffsets[i + 1] as number) : Number.POSITIVE_INFINITY;
      frames.push(fragments.filter((_f, k) => (itemStarts[k] as number) >= start && (itemStarts[k] as number) < end));
    }
    return frames;
  }
  throw new Error('cannot map fragments to frames (no Basic Offset Table)');
}
