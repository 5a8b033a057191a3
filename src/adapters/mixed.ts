// Mixed-adapter batches (PEFT's `adapter_names` forward argument): each row of a batch runs its own
// adapter, or none. VeRA is where this pays: its adapters share A and B, so the rows' λ vectors are
// gathered into per-row scales and the whole batch still takes one A·x and one B·h, whatever the mix.

import { isGradEnabled } from '../autograd/graph.js';
import type { Backend } from '../backends/backend.js';
import * as ops from '../ops/index.js';
import { full, tensor } from '../tensor/creation.js';
import { keep, scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdapterError } from './errors.js';

/** The name that selects no adapter for a row (PEFT's). */
export const BASE_ADAPTER = '__base__';

/** Per batch row, the adapter it runs; null runs the base model alone. */
export type RowAdapters = readonly (string | null)[];

/** Throws unless `x` has one batch row per entry of `rows`. */
export function checkRows(rows: RowAdapters, x: Tensor, where: string): void {
  if (x.rank < 1 || x.shape[0] !== rows.length)
    throw new AdapterError(
      `[adapters] ${where}: ${rows.length} adapter names were given for a batch of ${x.rank < 1 ? 'no' : x.shape[0]} rows`,
    );
}

/**
 * What the layers of one mixed-adapter call (PeftModel.withAdapterNames) build from the row names: the
 * 0/1 row masks and the per-row vectors. Each is made once, on its first use, and reused by every later
 * layer and forward of the call (a decoding step runs every layer; a masked select in each would upload
 * its mask every time), then freed when the call ends.
 */
class RowCache {
  readonly #masks = new Map<Backend, Map<string, Tensor>>();
  readonly #vectors = new Map<Tensor | number, { parts: (Tensor | undefined)[]; rank: number; out: Tensor }[]>();

  mask(backend: Backend, selected: readonly boolean[], rank: number, make: () => Tensor): Tensor {
    let byKey = this.#masks.get(backend);
    if (!byKey) this.#masks.set(backend, (byKey = new Map()));
    const key = `${rank}:${selected.map(Number).join('')}`;
    let t = byKey.get(key);
    if (!t) byKey.set(key, (t = keep(make())));
    return t;
  }

  /** Keyed by the vectors themselves (a layer's λ tensors), or by n when no row has one. */
  vectors(parts: (Tensor | undefined)[], n: number, rank: number, make: () => Tensor): Tensor {
    const key = parts.find((p) => p !== undefined) ?? n;
    let list = this.#vectors.get(key);
    if (!list) this.#vectors.set(key, (list = []));
    const hit = list.find((e) => e.rank === rank && e.parts.every((p, i) => p === parts[i]));
    if (hit) return hit.out;
    const out = keep(make());
    list.push({ parts, rank, out });
    return out;
  }

  dispose(): void {
    for (const byKey of this.#masks.values()) for (const t of byKey.values()) t.dispose();
    for (const list of this.#vectors.values()) for (const e of list) e.out.dispose();
    this.#masks.clear();
    this.#vectors.clear();
  }
}

let active: RowCache | null = null;

/**
 * Runs fn (one mixed-adapter call) with a cache of the masks and row vectors that selectRows and
 * rowVectors build, freed when fn returns; a nested call shares the outer one's cache.
 */
export function withRowCache<T>(fn: () => T): T {
  if (active) return fn();
  const cache = new RowCache();
  active = cache;
  try {
    return fn();
  } finally {
    active = null;
    cache.dispose();
  }
}

/**
 * y where the rows are selected, else `rest` ([B, …] both; the selection broadcasts over the other axes).
 * A select, not a product with a 0/1 mask: a row's inf or NaN from another module must not leak into it.
 */
export function selectRows(selected: readonly boolean[], y: Tensor, rest: Tensor): Tensor {
  const shape = [selected.length, ...Array<number>(y.rank - 1).fill(1)];
  const make = () =>
    tensor(
      Uint8Array.from(selected, (s) => (s ? 1 : 0)),
      { shape, dtype: 'bool', backend: y.backend },
    );
  const mask = active ? active.mask(y.backend, selected, y.rank, make) : make();
  return ops.where(mask, y, rest);
}

/**
 * [B, 1, …, 1, n] (rank `rank`): row i holds vectorOf(rows[i]), or zeros where that is undefined (rows
 * of other adapters, or of none). Every vector has n values. Within withRowCache, built once per set of
 * vectors (inference: the λ vectors do not change during the call; not cached while a vector records a
 * gradient, so each forward keeps its own graph).
 */
export function rowVectors(
  rows: RowAdapters,
  vectorOf: (name: string) => Tensor | undefined,
  n: number,
  rank: number,
  like: Tensor,
): Tensor {
  const vectors = rows.map((name) => (name === null ? undefined : vectorOf(name)));
  const make = () => {
    const zeros = full([1, n], 0, { backend: like.backend });
    const parts = vectors.map((v) => (v === undefined ? zeros : ops.reshape(v, [1, n])));
    return ops.reshape(ops.concat(parts, 0), [rows.length, ...Array<number>(rank - 2).fill(1), n]);
  };
  const recordsGrad = isGradEnabled() && vectors.some((v) => v?.requiresGrad);
  return active && !recordsGrad ? active.vectors(vectors, n, rank, () => scope(make)) : make();
}

/**
 * [B, …shape]: row i holds parts[i] (each of `shape`'s size), the parts of the rows stacked (a head's
 * weights per row). Within withRowCache built once per set of parts, as rowVectors is (not cached while
 * a part records a gradient).
 */
export function rowStack(parts: readonly Tensor[], shape: readonly number[]): Tensor {
  const make = () =>
    ops.concat(
      parts.map((p) => ops.reshape(p, [1, ...shape])),
      0,
    );
  const n = shape.reduce((a, d) => a * d, 1);
  const recordsGrad = isGradEnabled() && parts.some((p) => p.requiresGrad);
  // Keyed as rowVectors' are, with a rank of its own (shape's rank + 1 + 100) so the two never meet.
  return active && !recordsGrad ? active.vectors([...parts], n, shape.length + 101, () => scope(make)) : make();
}
