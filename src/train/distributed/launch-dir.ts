// The folder a launcher (vera train --nproc) shares with its ranks, named by VERA_LAUNCH_DIR: a rank
// that aborts the job leaves `abort-<rank>` there with its message, so the launcher can name it even
// when the job's own report is lost (Open MPI 4.1 may fail to print MPI_ABORT's) or never comes (GPU
// ranks stopped by the launcher).

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const LAUNCH_DIR_ENV = 'VERA_LAUNCH_DIR';

/** Leaves this rank's abort file, where a launcher asked for one (best effort: the exit status remains). */
export function leaveAbortFile(rank: number, message: string): void {
  const dir = process.env[LAUNCH_DIR_ENV];
  if (!dir) return;
  try {
    writeFileSync(join(dir, `abort-${rank}`), message);
  } catch {
    // the launcher still sees the exit status
  }
}

/** The lowest rank that left an abort file in `dir`, with its message, or null. */
export function firstAbort(dir: string): { rank: number; message: string } | null {
  try {
    const ranks = readdirSync(dir)
      .map((f) => /^abort-(\d+)$/.exec(f)?.[1])
      .filter((r): r is string => r !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    if (ranks.length === 0) return null;
    let message = '';
    try {
      message = readFileSync(join(dir, `abort-${ranks[0]}`), 'utf8').trim();
    } catch {
      // named without its message
    }
    return { rank: ranks[0]!, message };
  } catch {
    return null;
  }
}
