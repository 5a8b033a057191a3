// Which process group this process belongs to, from its environment: under mpirun/mpiexec (Open MPI's
// OMPI_COMM_WORLD_*, MPICH/PMIx's PMI_* / PMIX_RANK) it joins MPI_COMM_WORLD; the torchrun-style
// RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT variables name a group too: GPU ranks
// join it through NCCL (nccl.ts, joinNccl), CPU ranks must be started by mpirun; otherwise the process
// trains alone.

import type { Collective } from './collective.js';
import { SingleProcess } from './collective.js';
import { MpiCollective, mpiUnavailable } from './mpi.js';

export interface WorldEnv {
  /** Who started the process: an MPI launcher, torchrun-style variables, or nobody (a single process). */
  launcher: 'mpi' | 'env' | null;
  rank: number;
  size: number;
  localRank: number;
  /** The variable the rank was read from (for messages). */
  source: string | null;
}

const int = (v: string | undefined): number | null => {
  if (v === undefined || v.trim() === '') return null;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
};

/** The group this process's environment describes (nothing is joined). */
export function worldFromEnv(env: NodeJS.ProcessEnv = process.env): WorldEnv {
  const mpi: [string, string, string | null][] = [
    ['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK'],
    ['PMIX_RANK', 'OMPI_COMM_WORLD_SIZE', null],
    ['PMI_RANK', 'PMI_SIZE', 'MPI_LOCALRANKID'],
  ];
  for (const [r, s, l] of mpi) {
    const rank = int(env[r]);
    if (rank === null) continue;
    const size = int(env[s]) ?? 1;
    return { launcher: 'mpi', rank, size, localRank: (l ? int(env[l]) : null) ?? rank, source: r };
  }
  const rank = int(env['RANK']);
  const size = int(env['WORLD_SIZE']);
  if (rank !== null && size !== null)
    return { launcher: 'env', rank, size, localRank: int(env['LOCAL_RANK']) ?? rank, source: 'RANK' };
  return { launcher: null, rank: 0, size: 1, localRank: 0, source: null };
}

let joined: Collective | null = null;

/**
 * The process group of this process, joined once: MPI_COMM_WORLD under an MPI launcher, else a group
 * of one. Throws a one-line Error when the environment names a group this build cannot join.
 */
export function processGroup(env: NodeJS.ProcessEnv = process.env): Collective {
  if (joined) return joined;
  const w = worldFromEnv(env);
  if (w.launcher === 'mpi') {
    const why = mpiUnavailable();
    if (why) throw new Error(`[distributed] started by an MPI launcher (${w.source}=${w.rank}) but ${why}`);
    joined = new MpiCollective();
  } else if (w.launcher === 'env' && w.size > 1) {
    throw new Error(
      `[distributed] RANK=${w.rank} WORLD_SIZE=${w.size} name a group of ${w.size} processes, but CPU ranks join through MPI: start them with mpirun -np ${w.size} (or vera train --nproc ${w.size}); the MASTER_ADDR/MASTER_PORT rendezvous is for GPU ranks (--device cuda, NCCL)`,
    );
  } else joined = new SingleProcess();
  return joined;
}
