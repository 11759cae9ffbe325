import { statSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface PathSync {
  /**
   * Resolves once an fsync of the path that STARTED after this call has completed: everything
   * written (or renamed into a directory) before the call is then durable. Callers arriving while
   * one fsync runs share the next one.
   */
  sync(): Promise<void>;
  close(): Promise<void>;
}

export interface PathSyncOptions {
  /** Replaces the fsync itself (tests). */
  fsync?: (handle: FileHandle) => Promise<void>;
  /** Also fsync the parent directory once after the path is (re)opened, so its entry is durable. */
  syncParentOnOpen?: boolean;
}

/**
 * Coalesced fsync of one file or directory from libuv's thread pool, through a read-only handle
 * kept open (Linux syncs an inode whatever descriptor asks). The inode is compared on each sync
 * (a cheap stat) so that a file or directory replaced since is reopened; a path that no longer
 * exists makes the sync fail.
 */
export function createPathSync(path: string, options: PathSyncOptions = {}): PathSync {
  const fsync = options.fsync ?? ((fh: FileHandle) => fh.sync());
  let handle: { fh: FileHandle; ino: number } | undefined;
  let opening: Promise<{ fh: FileHandle; ino: number }> | undefined;
  let closed = false;

  async function openHandle(): Promise<{ fh: FileHandle; ino: number }> {
    const fh = await open(path, 'r');
    try {
      const ino = (await fh.stat()).ino;
      if (options.syncParentOnOpen) {
        const dir = await open(dirname(path), 'r');
        try {
          await dir.sync();
        } finally {
          await dir.close();
        }
      }
      return { fh, ino };
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  async function current(): Promise<{ fh: FileHandle; ino: number }> {
    let ino: number;
    try {
      ino = statSync(path).ino;
    } catch {
      ino = -1;
    }
    if (handle && handle.ino === ino) return handle;
    if (!opening) {
      const previous = handle;
      handle = undefined;
      opening = openHandle().finally(() => {
        opening = undefined;
      });
      if (previous) void previous.fh.close().catch(() => undefined);
      handle = await opening;
      return handle;
    }
    return opening;
  }

  // One fsync at a time: a caller arriving while one runs waits for the next, which starts after it
  // (the running one may have begun before the caller's write); callers arriving meanwhile share it.
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const syncOnce = async (): Promise<void> => {
    if (closed) return;
    await fsync((await current()).fh);
  };
  const sync = (): Promise<void> => {
    if (!running) {
      running = syncOnce().finally(() => {
        running = undefined;
      });
      return running;
    }
    next ??= running
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return sync();
      });
    return next;
  };

  return {
    sync,
    async close() {
      // Syncs already asked for still happen (a caller is waiting on its durability); later ones
      // resolve without syncing.
      await (next ?? running)?.catch(() => undefined);
      closed = true;
      const h = handle ?? (await opening?.catch(() => undefined));
      handle = undefined;
      await h?.fh.close().catch(() => undefined);
    },
  };
}
