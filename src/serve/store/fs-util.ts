// File-system helpers of the folder store: durable writes, directory fsync, and a lock that several
// processes sharing one store folder respect.

import { closeSync, fsyncSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
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
    for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
      try {
        const fd = openSync(this.path, 'wx', 0o644);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const pid = Number(readQuietly(this.path));
      // Another handle of this process holding it would be a bug (holds are synchronous), so ours is stale too.
      if (Number.isInteger(pid) && pid > 0 && (!alive(pid) || pid === process.pid)) {
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

function readQuietly(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
