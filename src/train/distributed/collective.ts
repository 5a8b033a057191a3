// The process group of data-parallel training: every rank runs the same run on its shard of each
// global batch, and these collectives keep the ranks in step. Two implementations: SingleProcess (a
// group of one, where every collective is the identity) and MpiCollective (mpi.ts, CPU ranks over the
// system's MPI); NcclCollective (nccl.ts, GPU ranks) implements the same interface, reducing backend
// views on the device (`allReduceViewSum`) instead of staging them through host memory.

import type { Backend, View } from '../../backends/backend.js';

export type ReduceOp = 'sum' | 'max' | 'min';

export interface Collective {
  /** 'single', 'mpi' or 'nccl'. */
  readonly kind: string;
  readonly rank: number;
  readonly size: number;
  /** In place: every rank ends with the element-wise reduction over all ranks (the same bits on each). */
  allReduce(data: Float32Array | Float64Array, op?: ReduceOp): void;
  /** In place: root's elements into every rank's array (of the same length). */
  broadcast(data: Float32Array | Float64Array | Uint8Array, root?: number): void;
  /** Every rank's bytes, in rank order. */
  allGather(bytes: Uint8Array): Uint8Array[];
  barrier(): void;
  /**
   * Optional: sums a backend view over the ranks in place without a host copy (a device collective).
   * Without it, allReduceViewSum() downloads, reduces and uploads.
   */
  allReduceViewSum?(backend: Backend, view: View): void;
  /** Ends the whole job: prints `message` (naming this rank) and exits with `code` on every rank. */
  abort(code: number, message: string): never;
  /** Leaves the group (idempotent); no collective may follow. */
  finalize(): void;
}

/** A group of one process: every collective leaves its data as it is. */
export class SingleProcess implements Collective {
  readonly kind = 'single';
  readonly rank = 0;
  readonly size = 1;
  allReduce(_data: Float32Array | Float64Array, _op?: ReduceOp): void {}
  broadcast(_data: Float32Array | Float64Array | Uint8Array, _root?: number): void {}
  allGather(bytes: Uint8Array): Uint8Array[] {
    return [bytes];
  }
  barrier(): void {}
  abort(code: number, message: string): never {
    process.stderr.write(`${message}\n`);
    process.exit(code);
  }
  finalize(): void {}
}

/** Sums a contiguous f32 backend view over the ranks, in place (through the host unless the group reduces views itself). */
export function allReduceViewSum(group: Collective, backend: Backend, view: View): void {
  // A device group reduces even alone (NCCL's one-rank all-reduce), so one GPU runs the path many do.
  if (group.allReduceViewSum) return group.allReduceViewSum(backend, view);
  if (group.size === 1) return;
  const host = backend.download(view);
  if (!(host instanceof Float32Array) && !(host instanceof Float64Array))
    throw new TypeError(`[distributed] allReduceViewSum: ${view.dtype} views are not reduced (f32 or f64 only)`);
  group.allReduce(host, 'sum');
  backend.upload(view.buf, view.dtype, view.offset, host);
}

/** Every rank's JSON value, in rank order. */
export function allGatherJson<T>(group: Collective, value: T): T[] {
  if (group.size === 1) return [value];
  const parts = group.allGather(new TextEncoder().encode(JSON.stringify(value)));
  const dec = new TextDecoder();
  return parts.map((p) => JSON.parse(dec.decode(p)) as T);
}

/** Root's number on every rank. */
export function broadcastNumber(group: Collective, value: number, root = 0): number {
  if (group.size === 1) return value;
  const a = new Float64Array([value]);
  group.broadcast(a, root);
  return a[0]!;
}

/**
 * The examples of a global micro-batch that `rank` of `size` computes: a contiguous slice, the first
 * (length mod size) ranks one longer. A rank may get none (fewer examples than ranks).
 */
export function shardRange(length: number, rank: number, size: number): [number, number] {
  const base = Math.floor(length / size);
  const extra = length % size;
  const from = rank * base + Math.min(rank, extra);
  return [from, from + base + (rank < extra ? 1 : 0)];
}
