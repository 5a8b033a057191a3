// CPU ranks over MPI: build/Release/vera_mpi.node (native/mpi/, built by scripts/setup.mjs where
// libopenmpi-dev is installed) wraps MPI_Init_thread, MPI_Allreduce, MPI_Bcast, MPI_Allgatherv,
// MPI_Barrier, MPI_Finalize and MPI_Abort on MPI_COMM_WORLD. Every call blocks until the collective
// completes. MPI's default error handler stays: a failed collective, or a rank that dies, ends the
// job, and mpirun names the rank.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../io/package-root.js';
import type { Collective, ReduceOp } from './collective.js';
import { leaveAbortFile } from './launch-dir.js';

interface MpiAddon {
  init(): { rank: number; size: number; threadLevel: number; library: string };
  allreduce(data: Float32Array | Float64Array | Int32Array, op?: ReduceOp): void;
  broadcast(data: Float32Array | Float64Array | Int32Array | Uint8Array, root?: number): void;
  allgather(bytes: Uint8Array): Uint8Array[];
  barrier(): void;
  finalize(): void;
  abort(code: number, message?: string): never;
  state(): { initialized: boolean; finalized: boolean };
}

/** Where the MPI addon is expected (VERA_MPI_ADDON overrides it). */
export function mpiAddonPath(): string {
  return process.env['VERA_MPI_ADDON'] || join(PACKAGE_ROOT, 'build', 'Release', 'vera_mpi.node');
}

let cached: MpiAddon | null = null;

/** Why the MPI addon cannot be used, or null when it loads. */
export function mpiUnavailable(): string | null {
  try {
    loadMpiAddon();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

function loadMpiAddon(): MpiAddon {
  if (cached) return cached;
  const path = mpiAddonPath();
  if (!existsSync(path))
    throw new Error(
      `MPI support is not built (${path} does not exist): install Open MPI (sudo apt-get install -y libopenmpi-dev openmpi-bin) and run npm run build`,
    );
  try {
    cached = createRequire(import.meta.url)(path) as MpiAddon;
  } catch (e) {
    throw new Error(`loading the MPI addon ${path} failed: ${(e as Error).message}`, { cause: e });
  }
  return cached;
}

export class MpiCollective implements Collective {
  readonly kind = 'mpi';
  readonly rank: number;
  readonly size: number;
  /** The MPI library's version line. */
  readonly library: string;
  readonly #mpi: MpiAddon;

  /** Joins MPI_COMM_WORLD (MPI_Init_thread once per process). */
  constructor() {
    this.#mpi = loadMpiAddon();
    const w = this.#mpi.init();
    this.rank = w.rank;
    this.size = w.size;
    this.library = w.library;
  }

  allReduce(data: Float32Array | Float64Array, op: ReduceOp = 'sum'): void {
    this.#mpi.allreduce(data, op);
  }

  broadcast(data: Float32Array | Float64Array | Uint8Array, root = 0): void {
    this.#mpi.broadcast(data, root);
  }

  allGather(bytes: Uint8Array): Uint8Array[] {
    return this.#mpi.allgather(bytes);
  }

  barrier(): void {
    this.#mpi.barrier();
  }

  abort(code: number, message: string): never {
    // mpirun's own "MPI_ABORT was invoked on rank N" report can be lost (Open MPI 4.1 may fail to
    // unpack its help text), so the launcher also learns the rank from its abort file.
    leaveAbortFile(this.rank, message);
    return this.#mpi.abort(code, message);
  }

  finalize(): void {
    this.#mpi.finalize();
  }
}
