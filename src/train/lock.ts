// One training run per output directory. Two runs sharing one would tidy away each other's half-written
// checkpoints (recoverDirs) and interleave their metrics, so a run holds <output_dir>/.vera-lock, a
// file naming its process and host, for as long as it trains. A lock whose process is gone — a run
// killed with SIGKILL, say — is taken over, which is what `--resume` after a kill needs.

import { closeSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from './config.js';

export const LOCK_FILE = '.vera-lock';

interface Owner {
  pid: number;
  host: string;
  started: string;
}

/** Output directories this process holds (a second train() on one of them in-process is refused too). */
const held = new Set<string>();

/**
 * Whether the process `pid` on this host still runs (EPERM: it runs, as another user). A zombie — ended,
 * not yet reaped, as a killed MPI rank can stay for a while once mpirun is gone — does not (Linux /proc).
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return true; // no /proc: kill(pid, 0) is all we know
  }
}

function readOwner(file: string): Owner | null {
  try {
    const o = JSON.parse(readFileSync(file, 'utf8')) as Partial<Owner>;
    return typeof o.pid === 'number' && typeof o.host === 'string'
      ? { pid: o.pid, host: o.host, started: String(o.started) }
      : null;
  } catch {
    return null; // unreadable or cut short: its writer died before finishing it
  }
}

/** Creates the lock file if none exists; false when one does. */
function create(file: string, owner: Owner): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    writeSync(fd, `${JSON.stringify(owner)}\n`);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Takes `dir`'s lock (creating `dir`), or throws a ConfigError naming the run that holds it. Returns the
 * function that gives it back.
 */
export function lockOutputDir(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, LOCK_FILE);
  const inUse = (o: Owner) =>
    new ConfigError(
      `${dir} is in use by another training run (process ${o.pid} on ${o.host}, since ${o.started}); wait for it to end or choose another --output_dir`,
    );
  if (held.has(file)) throw inUse({ pid: process.pid, host: hostname(), started: 'now' });
  const me: Owner = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  if (!create(file, me)) {
    const owner = readOwner(file);
    if (owner && owner.host !== me.host)
      throw new ConfigError(
        `${dir} is locked by process ${owner.pid} on another host (${owner.host}); if no run uses it any more, delete ${file}`,
      );
    if (owner && alive(owner.pid)) throw inUse(owner);
    // Stale: its process is gone. Set it aside atomically and check that what was set aside is the stale
    // lock, not one that a run taking over at the same moment has just written (that one goes back).
    const aside = `${file}.stale-${process.pid}`;
    try {
      renameSync(file, aside);
    } catch {
      throw inUse(readOwner(file) ?? me); // another run took it over first
    }
    const moved = readOwner(aside);
    if (moved && owner && (moved.pid !== owner.pid || moved.started !== owner.started)) {
      renameSync(aside, file);
      throw inUse(moved);
    }
    unlinkSync(aside);
    if (!create(file, me)) throw inUse(readOwner(file) ?? me);
  }
  held.add(file);
  return () => {
    held.delete(file);
    if (readOwner(file)?.pid === process.pid) unlinkSync(file);
  };
}
