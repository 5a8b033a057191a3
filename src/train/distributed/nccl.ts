// GPU ranks over NCCL: one process per GPU, each joined to one communicator through its backend's
// DeviceCommunicator (the cuda backend's, native/cuda/nccl.cu). The gradient arena is all-reduced on
// the device, on the backend's stream; the trainer's few host collectives (the resume step, the
// initial parameters, loss sums, gathered metrics) go through the device too, so no MPI is needed.
// NCCL leaves handing its id from rank 0 to the others to the caller: rendezvous.ts does that over
// MASTER_ADDR:MASTER_PORT.

import type { Backend, DeviceCommunicator, View } from '../../backends/backend.js';
import type { Collective, ReduceOp } from './collective.js';
import { leaveAbortFile } from './launch-dir.js';
import { exchangeId } from './rendezvous.js';
import type { WorldEnv } from './world.js';

export class NcclCollective implements Collective {
  readonly kind = 'nccl';
  readonly library: string;
  readonly #c: DeviceCommunicator;
  readonly #backend: Backend;
  #left = false;

  /** Joins the communicator named by `id` (every rank passes rank 0's). */
  constructor(
    backend: Backend,
    id: Uint8Array,
    readonly rank: number,
    readonly size: number,
  ) {
    const c = backend.communicator;
    if (!c) throw new Error(`[distributed] the ${backend.name} backend has no device collectives (NCCL is on cuda)`);
    this.#c = c;
    this.#backend = backend;
    this.library = c.library();
    c.join(id, size, rank);
  }

  allReduce(data: Float32Array | Float64Array, op: ReduceOp = 'sum'): void {
    if (op !== 'sum' && op !== 'max' && op !== 'min')
      throw new Error(`[distributed] allreduce: op must be 'sum', 'max' or 'min', got '${String(op)}'`);
    this.#c.allReduceHost(data, op);
  }

  broadcast(data: Float32Array | Float64Array | Uint8Array, root = 0): void {
    this.#c.broadcastHost(data, root);
  }

  allGather(bytes: Uint8Array): Uint8Array[] {
    // Lengths first, then every rank's bytes padded to the longest.
    const lengths = new Float64Array(this.size);
    lengths[this.rank] = bytes.length;
    this.#c.allReduceHost(lengths, 'sum');
    const longest = Math.max(...lengths);
    const send = new Uint8Array(longest);
    send.set(bytes);
    const recv = new Uint8Array(longest * this.size);
    this.#c.allGatherHost(send, recv);
    return Array.from(lengths, (n, r) => recv.slice(r * longest, r * longest + n));
  }

  barrier(): void {
    this.#c.allReduceHost(new Float32Array(1), 'sum');
  }

  allReduceViewSum(backend: Backend, view: View): void {
    if (backend !== this.#backend)
      throw new Error(`[distributed] NCCL reduces ${this.#backend.name} views, got a ${backend.name} view`);
    this.#c.allReduce(view, 'sum');
  }

  abort(code: number, message: string): never {
    process.stderr.write(`${message}\n`);
    // The launcher names this rank from its file (the other ranks may be waiting inside NCCL for ever).
    leaveAbortFile(this.rank, message);
    if (!this.#left) {
      this.#left = true;
      this.#c.leave(true);
    }
    process.exit(code);
  }

  finalize(): void {
    if (this.#left) return;
    this.#left = true;
    this.#c.leave(false);
  }
}

/**
 * Joins the NCCL group of the ranks `world` describes (torchrun-style RANK, WORLD_SIZE, LOCAL_RANK and
 * MASTER_ADDR:MASTER_PORT, as `vera train --nproc` sets them): rank 0 makes the id and hands it out.
 */
export async function joinNccl(
  backend: Backend,
  world: WorldEnv,
  env: NodeJS.ProcessEnv = process.env,
): Promise<NcclCollective> {
  const c = backend.communicator;
  if (!c)
    throw new Error(`[distributed] --device cuda ranks need NCCL, which the ${backend.name} backend does not have`);
  c.library(); // NCCL missing: say so before waiting for the other ranks
  const id = await exchangeId(world.rank, world.size, world.rank === 0 ? c.uniqueId() : null, env);
  return new NcclCollective(backend, id, world.rank, world.size);
}
