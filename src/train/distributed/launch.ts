// `vera train --nproc N`: N ranks of the same command on this machine, started by mpirun (Open MPI;
// VERA_MPIRUN names another launcher binary with mpirun's flags). Ctrl-C is passed to the ranks as
// SIGUSR2 (which mpirun forwards), so they stop together after the current step with a checkpoint; a
// second Ctrl-C ends the job. A rank that dies ends the job (MPI's default), and the launcher says
// which in one line.

import { spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { LAUNCH_DIR_ENV, firstAbort } from './launch-dir.js';
import { mpiUnavailable } from './mpi.js';

export interface LaunchOptions {
  nproc: number;
  /** The command each rank runs: [executable, ...args]. */
  command: string[];
  /** Threads per rank (default: this machine's cores divided among the ranks, at least 1). */
  threadsPerRank?: number;
  env?: NodeJS.ProcessEnv;
  /** Where the launcher's own lines go (default: stderr). */
  say?: (line: string) => void;
}

function which(cmd: string): string | null {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
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

/** The pids whose parent is `pid` (Linux /proc; empty elsewhere). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        // "pid (comm) state ppid …": comm may hold spaces, so read after its closing parenthesis.
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(p));
      } catch {
        // gone
      }
    }
  } catch {
    // no /proc
  }
  return out;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\S+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The launcher's words for a rank that aborted the job (named by mpirun or by its abort file). */
const abortedJob = (rank: number | string): string => `rank ${rank} failed (its message is above) and aborted the job`;

/** mpirun's arguments for `nproc` ranks of `command` on this host. */
export function mpirunArgs(nproc: number, command: string[], threadsPerRank: number, launchDir?: string): string[] {
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  return [
    ...(root ? ['--allow-run-as-root'] : []),
    '-np',
    String(nproc),
    // Ranks placed here on purpose: more ranks than cores is allowed, and each rank's threads may use any core.
    '--oversubscribe',
    '--bind-to',
    'none',
    '-x',
    `VERA_NUM_THREADS=${threadsPerRank}`,
    '-x',
    'OMP_WAIT_POLICY',
    ...(launchDir ? ['-x', `${LAUNCH_DIR_ENV}=${launchDir}`] : []),
    ...command,
  ];
}

/** Runs the ranks and resolves with the job's exit status (a dead rank is named on stderr). */
export async function launchRanks(o: LaunchOptions): Promise<number> {
  const say = o.say ?? ((l: string) => void process.stderr.write(`${l}\n`));
  if (!Number.isSafeInteger(o.nproc) || o.nproc < 1)
    throw new Error(`--nproc must be an integer ≥ 1, got ${JSON.stringify(o.nproc)}`);
  const why = mpiUnavailable();
  if (why) throw new Error(`--nproc ${o.nproc} starts MPI ranks, but ${why}`);
  const mpirun = (o.env ?? process.env)['VERA_MPIRUN'] || which('mpirun') || which('mpiexec');
  if (!mpirun)
    throw new Error(
      `--nproc ${o.nproc} starts ranks with mpirun, which is not on PATH (sudo apt-get install -y openmpi-bin, or set VERA_MPIRUN)`,
    );
  const threads = o.threadsPerRank ?? Math.max(1, Math.floor(availableParallelism() / o.nproc));
  // OpenMP's idle threads spin by default; beside MPI's own polling they take the cores a rank waits on.
  const launchDir = mkdtempSync(join(tmpdir(), 'vera-launch-'));
  const env = { OMP_WAIT_POLICY: 'passive', ...(o.env ?? process.env) };
  const child = spawn(mpirun, mpirunArgs(o.nproc, o.command, threads, launchDir), {
    stdio: ['ignore', 'inherit', 'pipe'],
    env,
    // Its own process group: a terminal's Ctrl-C reaches the launcher only, which passes it on.
    detached: true,
  });
  let dead: string | null = null;
  let tail = '';
  // The ranks still running when one died: mpirun ends them, and the launcher returns once they are
  // gone, so a --resume right after finds the output directory's lock released.
  let survivors: number[] = [];
  child.stderr!.on('data', (d: Buffer) => {
    process.stderr.write(d);
    tail = (tail + d.toString('utf8')).slice(-8192);
    const m = /process rank (\d+) with PID (\d+) on node (\S+) exited on signal (\d+)(?: \(([^)]*)\))?/.exec(tail);
    // (Open MPI 4.1 may report PID 0.)
    if (m && !dead)
      dead = `rank ${m[1]} (${m[2] !== '0' ? `pid ${m[2]} ` : ''}on ${m[3]}) died of signal ${m[4]}${m[5] ? ` (${m[5]})` : ''}`;
    const a = /MPI_ABORT was invoked on rank (\d+)/.exec(tail);
    if (a && !dead) dead = abortedJob(a[1]!);
    if (dead && survivors.length === 0 && child.pid !== undefined) survivors = childrenOf(child.pid);
  });
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    try {
      if (interrupts === 1) {
        say('\nvera: stopping every rank after this step with a checkpoint (Ctrl-C again to quit at once)');
        child.kill('SIGUSR2');
      } else child.kill('SIGTERM');
    } catch {
      // already gone
    }
  };
  process.on('SIGINT', onSigint);
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((res, rej) => {
      child.on('error', rej);
      child.on('close', (c, s) => res([c, s]));
    });
    if (code === 0) return 0;
    for (const t0 = Date.now(); survivors.some(isAlive) && Date.now() - t0 < 10_000;)
      await new Promise((r) => setTimeout(r, 20));
    const aborted = firstAbort(launchDir);
    dead ??= aborted ? abortedJob(aborted.rank) : null;
    if (dead) say(`vera: ${dead}; the run stopped: continue it with --resume (the last checkpoint is intact)`);
    else if (signal) say(`vera: mpirun ended by ${signal}`);
    else say(`vera: the job ended with exit status ${code} and mpirun named no rank (its messages are above)`);
    return code ?? 1;
  } finally {
    process.off('SIGINT', onSigint);
    rmSync(launchDir, { recursive: true, force: true });
  }
}
