// File-system helpers of the folder store: durable writes, directory fsync, and a lock that several
// processes sharing one store folder respect.

import { closeSync, fsyncSync, linkSync, openSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import { writeAll } from '../../io/atomic.js';
import { StoreError } from './types.js';

/** Writes a new file and fsyncs it (the caller renames its folder into place, then fsyncs that). */
export function writeFileDurable(path: string, data: Uint8Array | string): void {
  const fd = openSync(path, 'wx', 0o644);
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Makes renames in `dir` durable; a file system that cannot fsync a folder is not an error. */
export function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // some file systems refuse; the rename itself has happened
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
const sleep = (ms: number) => Atomics.wait(sleeper, 0, 0, ms);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A lock file created with O_EXCL holding the owner's pid. Held only around synchronous work, so one
 * process never waits for itself (a nested hold in the same process re-enters). A lock whose process is
 * gone (killed mid-put) is taken over. Waiting blocks the thread, at most `timeoutMs`, then fails with
 * StoreError 'unavailable'.
 */
export class FileLock {
  #depth = 0;
  constructor(
    readonly path: string,
    readonly timeoutMs = 10_000,
  ) {}

  hold<T>(fn: () => T): T {
    if (this.#depth > 0) return this.#run(fn);
    const deadline = Date.now() + this.timeoutMs;
    // The pid is written to a file of our own first and linked into place (link fails if the lock
    // exists), so the lock file always names its owner: a process killed while taking the lock leaves
    // no empty lock behind.
    const mine = `${this.path}.${process.pid}.${threadId}`;
    for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
      writeFileSync(mine, String(process.pid));
      try {
        linkSync(mine, this.path);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      } finally {
        try {
          unlinkSync(mine);
        } catch {
          // gone already
        }
      }
      const text = readQuietly(this.path);
      const pid = Number(text);
      const named = /^\d+$/.test(text) && pid > 0;
      // Another handle of this process holding it would be a bug (holds are synchronous), so ours is
      // stale too; a lock naming nobody (written by an older version killed mid-write) is stale after 1 s.
      if ((named && (!alive(pid) || pid === process.pid)) || (!named && ageMs(this.path) > 1000)) {
        try {
          unlinkSync(this.path);
        } catch {
          // taken over by another process first
        }
        continue;
      }
      if (Date.now() > deadline)
        throw new StoreError('unavailable', `${this.path}: held by process ${pid} for over ${this.timeoutMs} ms`);
      sleep(wait);
    }
    try {
      return this.#run(fn);
    } finally {
      try {
        unlinkSync(this.path);
      } catch {
        // already gone
      }
    }
  }

  #run<T>(fn: () => T): T {
    this.#depth++;
    try {
      return fn();
    } finally {
      this.#depth--;
    }
  }
}

/** How long ago `path` was last modified (0 when it is gone). */
function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function readQuietly(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
