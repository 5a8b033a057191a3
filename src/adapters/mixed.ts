// Mixed-adapter batches (PEFT's `adapter_names` forward argument): each row of a batch runs its own
// adapter, or none. VeRA is where this pays: its adapters share A and B, so the rows' λ vectors are
// gathered into per-row scales and the whole batch still takes one A·x and one B·h, whatever the mix.

import * as ops from '../ops/index.js';
import { tensor } from '../tensor/creation.js';
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
 * y where the rows are selected, else `rest` ([B, …] both; the selection broadcasts over the other axes).
 * A select, not a product with a 0/1 mask: a row's inf or NaN from another module must not leak into it.
 */
export function selectRows(selected: readonly boolean[], y: Tensor, rest: Tensor): Tensor {
  const shape = [selected.length, ...Array<number>(y.rank - 1).fill(1)];
  const mask = tensor(
    Uint8Array.from(selected, (s) => (s ? 1 : 0)),
    { shape, dtype: 'bool', backend: y.backend },
  );
  return ops.where(mask, y, rest);
}

/**
 * [B, 1, …, 1, n] (rank `rank`): row i holds vectorOf(rows[i]), or zeros where that is undefined (rows
 * of other adapters, or of none). Every vector has n values.
 */
export function rowVectors(
  rows: RowAdapters,
  vectorOf: (name: string) => Tensor | undefined,
  n: number,
  rank: number,
  like: Tensor,
): Tensor {
  const zeros = tensor(new Float32Array(n), { shape: [1, n], backend: like.backend });
  const parts = rows.map((name) => {
    const v = name === null ? undefined : vectorOf(name);
    return v === undefined ? zeros : ops.reshape(v, [1, n]);
  });
  return ops.reshape(ops.concat(parts, 0), [rows.length, ...Array<number>(rank - 2).fill(1), n]);
}
