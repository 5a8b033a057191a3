// Index-driven kernels of the js backend: embedding gather / scatter-add and torch.gather / scatter_add.
// The embedding lookup also reads a bf16 table, widening the rows it selects.

import type { View } from '../backend.js';
import { bf16ToF32 } from '../dtype.js';
import { contiguousStart, dataOf, floats, ints, sizeOf } from './buffer.js';

// Every id is checked before anything is written, as the native kernels do: a bad id leaves out alone.
function checkIds(op: string, id: Int32Array, start: number, n: number, rows: number): void {
  for (let i = 0; i < n; i++) {
    const row = id[start + i]!;
    if (row < 0 || row >= rows)
      throw new Error(`[js ${op}] Id ${row} at position ${i} is out of range for a table of ${rows} rows`);
  }
}

export function embedding(out: View, weight: View, ids: View): void {
  const [v, c] = weight.shape as [number, number];
  const n = sizeOf(ids.shape);
  const od = floats(out, 'embedding');
  // A bf16 table is read as stored and each selected element widened exactly (bf16ToF32).
  const half = weight.dtype === 'bf16';
  if (half && !(dataOf(weight, 'embedding') instanceof Uint16Array))
    throw new Error('[js embedding] A bf16 weight needs bf16 storage');
  const wd = half ? (dataOf(weight, 'embedding') as Uint16Array) : floats(weight, 'embedding');
  const id = ints(ids, 'embedding');
  const os = contiguousStart(out, 'embedding');
  const ws = contiguousStart(weight, 'embedding');
  const is = contiguousStart(ids, 'embedding');
  if (sizeOf(out.shape) !== n * c) throw new Error('[js embedding] Output size does not match ids × width');
  checkIds('embedding', id, is, n, v);
  for (let i = 0; i < n; i++) {
    const row = id[is + i]!;
    for (let j = 0; j < c; j++) {
      const x = wd[ws + row * c + j]!;
      od[os + i * c + j] = half ? bf16ToF32(x) : x;
    }
  }
}

export function embeddingBackward(dweight: View, dy: View, ids: View): void {
  const [v, c] = dweight.shape as [number, number];
  const n = sizeOf(ids.shape);
  const gd = floats(dweight, 'embeddingBackward');
  const dd = floats(dy, 'embeddingBackward');
  const id = ints(ids, 'embeddingBackward');
  const gs = contiguousStart(dweight, 'embeddingBackward');
  const ds = contiguousStart(dy, 'embeddingBackward');
  const is = contiguousStart(ids, 'embeddingBackward');
  checkIds('embeddingBackward', id, is, n, v);
  for (let i = 0; i < n; i++) {
    const row = id[is + i]!;
    for (let j = 0; j < c; j++) gd[gs + row * c + j]! += dd[ds + i * c + j]!;
  }
}

// Splits a contiguous shape around `axis` into (outer, size along axis, inner).
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis]!, sizeOf(shape.slice(axis + 1))];
}

// Every index is checked before anything is written (as the native kernels do).
function checkIndices(op: string, id: Int32Array, start: number, n: number, size: number, axis: number): void {
  for (let k = 0; k < n; k++) {
    const j = id[start + k]!;
    if (j < 0 || j >= size)
      throw new Error(`[js ${op}] Index ${j} at position ${k} is out of range for axis ${axis} of size ${size}`);
  }
}

function checkIndexShape(op: string, a: View, index: View, axis: number): void {
  if (a.shape.length !== index.shape.length) throw new Error(`[js ${op}] Index rank differs from the tensor's`);
  for (let d = 0; d < a.shape.length; d++) {
    if (d !== axis && index.shape[d] !== a.shape[d]) {
      throw new Error(
        `[js ${op}] Index shape (${index.shape.join(', ')}) must match (${a.shape.join(', ')}) outside axis ${axis}`,
      );
    }
  }
}

export function gather(out: View, a: View, index: View, axis: number): void {
  checkIndexShape('gather', a, index, axis);
  const [outer, na, inner] = around(a.shape, axis);
  const ni = index.shape[axis]!;
  const od = floats(out, 'gather');
  const ad = floats(a, 'gather');
  const id = ints(index, 'gather');
  const os = contiguousStart(out, 'gather');
  const as = contiguousStart(a, 'gather');
  const is = contiguousStart(index, 'gather');
  checkIndices('gather', id, is, outer * ni * inner, na, axis);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < ni; i++) {
      for (let r = 0; r < inner; r++) {
        const k = (o * ni + i) * inner + r;
        const j = id[is + k]!;
        od[os + k] = ad[as + (o * na + j) * inner + r]!;
      }
    }
  }
}

export function scatterAdd(out: View, index: View, src: View, axis: number): void {
  checkIndexShape('scatterAdd', out, index, axis);
  const [outer, na, inner] = around(out.shape, axis);
  const ni = index.shape[axis]!;
  const od = floats(out, 'scatterAdd');
  const sd = floats(src, 'scatterAdd');
  const id = ints(index, 'scatterAdd');
  const os = contiguousStart(out, 'scatterAdd');
  const ss = contiguousStart(src, 'scatterAdd');
  const is = contiguousStart(index, 'scatterAdd');
  checkIndices('scatterAdd', id, is, outer * ni * inner, na, axis);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < ni; i++) {
      for (let r = 0; r < inner; r++) {
        const k = (o * ni + i) * inner + r;
        const j = id[is + k]!;
        od[os + (o * na + j) * inner + r]! += sd[ss + k]!;
      }
    }
  }
}
