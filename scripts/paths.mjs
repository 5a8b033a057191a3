// File-system helpers the build scripts share (setup, build-cuda, build-mpi).
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Full path of an executable on PATH, or null. */
export function which(cmd) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return null;
}

/** A file's modification time in ms, −∞ when it does not exist. */
export function mtime(p) {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return -Infinity;
  }
}
