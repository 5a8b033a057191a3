// `vera train --nproc N --device cuda`: N ranks of the same command on this machine, one per GPU,
// started as torchrun starts them — RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and a
// free MASTER_PORT for NCCL's rendezvous, and VERA_CUDA_DEVICE = LOCAL_RANK — with no MPI involved.
// The first rank to fail ends the job: the launcher names it (from its abort file, else its exit
// status or signal), stops the others (SIGTERM, then SIGKILL after 5 s) and returns once all are gone,
// so a --resume right after finds the output directory free. Ctrl-C is passed on as SIGUSR2 (each rank
// stops after its step with a checkpoint); a second Ctrl-C ends the ranks.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAUNCH_DIR_ENV, firstAbort } from './launch-dir.js';

export interface SpawnOptions {
  nproc: number;
  /** The command each rank runs: [executable, ...args]. */
  command: string[];
  env?: NodeJS.ProcessEnv;
  /** Where the launcher's own lines go (default: stderr). */
  say?: (line: string) => void;
}

/** A TCP port free on loopback now (rank 0 listens on it for the rendezvous). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (a && typeof a === 'object' ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** The environment of local rank `rank` of `size`. */
export function rankEnv(
  base: NodeJS.ProcessEnv,
  rank: number,
  size: number,
  port: number,
  launchDir: string,
): NodeJS.ProcessEnv {
  return {
    ...base,
    RANK: String(rank),
    WORLD_SIZE: String(size),
    LOCAL_RANK: String(rank),
    LOCAL_WORLD_SIZE: String(size),
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(port),
    VERA_CUDA_DEVICE: String(rank),
    [LAUNCH_DIR_ENV]: launchDir,
  };
}

/** Runs the ranks and resolves with the job's exit status (0 when every rank exits 0). */
export async function spawnRanks(o: SpawnOptions): Promise<number> {
  const say = o.say ?? ((l: string) => void process.stderr.write(`${l}\n`));
  if (!Number.isSafeInteger(o.nproc) || o.nproc < 1)
    throw new Error(`--nproc must be an integer ≥ 1, got ${JSON.stringify(o.nproc)}`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'vera-launch-'));
  const base = o.env ?? process.env;
  const ranks: ChildProcess[] = [];
  const exits: Promise<void>[] = [];
  let first: { rank: number; code: number | null; signal: NodeJS.Signals | null } | null = null;
  let stopping: NodeJS.Timeout | null = null;
  const stopAll = () => {
    for (const c of ranks) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    stopping ??= setTimeout(() => {
      for (const c of ranks) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }, 5000);
  };
  for (let r = 0; r < o.nproc; r++) {
    const child = spawn(o.command[0]!, o.command.slice(1), {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: rankEnv(base, r, o.nproc, port, dir),
      // Own process groups: a terminal's Ctrl-C reaches the launcher only, which passes it on once.
      detached: true,
    });
    ranks.push(child);
    exits.push(
      new Promise((resolve) => {
        child.once('error', (e) => {
          say(`vera: rank ${r} could not start: ${e.message}`);
          first ??= { rank: r, code: 1, signal: null };
          stopAll();
          resolve();
        });
        child.once('exit', (code, signal) => {
          if ((code !== 0 || signal) && !first) {
            first = { rank: r, code, signal };
            stopAll();
          }
          resolve();
        });
      }),
    );
  }
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      say('\nvera: stopping every rank after this step with a checkpoint (Ctrl-C again to quit at once)');
      for (const c of ranks) c.kill('SIGUSR2');
    } else stopAll();
  };
  process.on('SIGINT', onSigint);
  try {
    await Promise.all(exits);
    if (stopping) clearTimeout(stopping);
    const f = first as { rank: number; code: number | null; signal: NodeJS.Signals | null } | null;
    if (!f) return 0;
    if (interrupts > 0 && f.code === 130) {
      say('vera: every rank stopped with a checkpoint: continue the run with --resume');
      return 130;
    }
    const aborted = firstAbort(dir);
    const pid = ranks[f.rank]?.pid;
    if (aborted)
      say(
        `vera: rank ${aborted.rank} failed${aborted.message ? ` (${aborted.message})` : ' (its message is above)'} and stopped the job`,
      );
    else
      say(
        `vera: rank ${f.rank}${pid ? ` (pid ${pid})` : ''} ${f.signal ? `died of signal ${f.signal}` : `exited with status ${f.code}`}; the other ranks were stopped`,
      );
    say('vera: the run stopped: continue it with --resume (the last checkpoint is intact)');
    return f.code ?? 1;
  } finally {
    process.off('SIGINT', onSigint);
    rmSync(dir, { recursive: true, force: true });
  }
}
