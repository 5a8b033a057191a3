// Constants a forward needs on the device, uploaded once rather than on every forward (on an accelerator
// each upload is a host→device copy the forward waits for): position ranges, views of one arange table
// per backend and dtype that grows by doubling, and host arrays such as RoPE's inverse frequencies,
// uploaded once per backend they are used on.

import type { Backend } from '../backends/backend.js';
import { arange, tensor } from '../tensor/creation.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';

type PositionDType = 'i32' | 'f32';

const ranges = new WeakMap<Backend, Map<PositionDType, Tensor>>();

/**
 * arange(start, start + length) [length] as a view of a kept table on `backend` (i32 ids or f32 for
 * arithmetic; f32 is exact below 2^24). The table is built on first use and rebuilt twice as long when a
 * range runs past it, so a run of growing lengths (decoding) uploads O(log n) times in all.
 */
export function positionRange(backend: Backend, start: number, length: number, dtype: PositionDType = 'i32'): Tensor {
  if (!(Number.isInteger(start) && Number.isInteger(length) && start >= 0 && length >= 0))
    throw new RangeError(`[positions] Range start ${start}, length ${length} must be integers ≥ 0`);
  let tables = ranges.get(backend);
  if (!tables) ranges.set(backend, (tables = new Map()));
  let table = tables.get(dtype);
  if (!table || table.numel < start + length) {
    // Views handed out earlier hold the old storage themselves; this handle can go.
    table?.dispose();
    const n = Math.max(start + length, 2 * (table?.numel ?? 0), 64);
    table = keep(arange(0, n, 1, { backend, dtype }));
    tables.set(dtype, table);
  }
  return ops.slice(table, 0, start, start + length);
}

/** An f32 host array uploaded once per backend it is used on, kept until dispose(). */
export class DeviceConstant {
  readonly #copies = new Map<Backend, Tensor>();

  constructor(readonly host: Float32Array) {}

  /** The kept copy on `backend` ([n]; scopes leave it alone, as they leave parameters). */
  on(backend: Backend): Tensor {
    let t = this.#copies.get(backend);
    if (!t) this.#copies.set(backend, (t = keep(tensor(this.host, { backend }))));
    return t;
  }

  dispose(): void {
    for (const t of this.#copies.values()) t.dispose();
    this.#copies.clear();
  }
}
