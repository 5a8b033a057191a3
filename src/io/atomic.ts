// Atomic file replacement: write a temporary file in the target's directory, fsync it, rename it over
// the target and fsync the directory. Readers see the old file or the new one, never a torn write,
// even when the process dies or the machine loses power half-way.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { IoError, describeError } from './errors.js';

/** Writes `data` to `path` atomically (see the file comment). Throws IoError naming the file. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  writeAtomically(path, (fd) => writeAll(fd, bytes));
}

/**
 * Runs `write` on a fresh temporary file next to `path`, then makes it `path` atomically. When anything
 * fails the temporary file is removed and the target is untouched; an IoError thrown by `write` passes
 * unchanged, any other error is wrapped in an IoError naming `path`.
 */
export function writeAtomically(path: string, write: (fd: number) => void): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(tmp, 'wx', 0o666);
  } catch (e) {
    throw new IoError(`[io] ${path}: cannot create a temporary file in its directory: ${describeError(e)}`, {
      file: path,
      cause: e,
    });
  }
  try {
    try {
      write(fd);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    removeQuietly(tmp);
    if (e instanceof IoError) throw e;
    throw new IoError(`[io] ${path}: write failed: ${describeError(e)}`, { file: path, cause: e });
  }
  syncDirectory(dirname(path));
}

/** Writes every byte of `bytes` at the file's current position (writeSync may write less than asked). */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

/** Makes a rename durable. Some platforms and filesystems cannot fsync a directory; that is not an error. */
function syncDirectory(dir: string): void {
  let fd: number | null = null;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Windows and some network filesystems refuse: the rename itself already happened.
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
