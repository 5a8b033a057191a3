// Index-driven kernels of the js backend: embedding gather / scatter-add and torch.gather / scatter_add.

import type { View } from '../backend.js';
import { contiguousStart, floats, ints, sizeOf } from './buffer.js';

export function embedding(out: View, weight: View, ids: View): void {
  const [v, c] = weight.shape as [number, number];
  const n = sizeOf(ids.shape);
  const od = floats(out, 'embedding');
  const wd = floats(weight, 'embedding');
  const id = ints(ids, 'embedding');
  const os = contiguousStart(out, 'embedding');
  const ws = contiguousStart(weight, 'embedding');
  const is = contiguousStart(ids, 'embedding');
  if (sizeOf(out.shape) !== n * c) throw new Error('[js embedding] Output size does not match ids × width');
  for (let i = 0; i < n; i++) {
    const row = id[is + i]!;
    if (row < 0 || row >= v)
      throw new Error(`[js embedding] Id ${row} at position ${i} is out of range for a table of ${v} rows`);
    for (let j = 0; j < c; j++) od[os + i * c + j] = wd[ws + row * c + j]!;
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
  for (let i = 0; i < n; i++) {
    const row = id[is + i]!;
    if (row < 0 || row >= v)
      throw new Error(`[js embeddingBackward] Id ${row} at position ${i} is out of range for a table of ${v} rows`);
    for (let j = 0; j < c; j++) gd[gs + row * c + j]! += dd[ds + i * c + j]!;
  }
}

// Splits a contiguous shape around `axis` into (outer, size along axis, inner).
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis]!, sizeOf(shape.slice(axis + 1))];
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
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < ni; i++) {
      for (let r = 0; r < inner; r++) {
        const k = (o * ni + i) * inner + r;
        const j = id[is + k]!;
        if (j < 0 || j >= na) throw new Error(`[js gather] Index ${j} is out of range for axis ${axis} of size ${na}`);
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
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < ni; i++) {
      for (let r = 0; r < inner; r++) {
        const k = (o * ni + i) * inner + r;
        const j = id[is + k]!;
        if (j < 0 || j >= na)
          throw new Error(`[js scatterAdd] Index ${j} is out of range for axis ${axis} of size ${na}`);
        od[os + (o * na + j) * inner + r]! += sd[ss + k]!;
      }
    }
  }
}
