// Batched GEMM of the js backend: plain loops over strided 3-D views, float64 accumulation. A bf16 `b`
// (a frozen weight) is widened exactly with bf16ToF32 over the range of the buffer the view spans.

import type { View } from '../backend.js';
import { bf16ToF32 } from '../../tensor/dtype.js';
import { contiguousStart, dataOf, floats, viewOffsets } from './buffer.js';

/** The float data `b` reads, and the buffer offset of its element 0 (bf16 is widened to f32 first). */
function operandB(b: View): { data: ArrayLike<number>; base: number } {
  if (b.dtype !== 'bf16') return { data: floats(b, 'matmul'), base: 0 };
  const bits = dataOf(b, 'matmul') as Uint16Array;
  let end = b.offset;
  for (let d = 0; d < b.shape.length; d++) if (b.shape[d]! > 0) end += (b.shape[d]! - 1) * b.strides[d]!;
  const span = b.shape.some((s) => s === 0) ? 0 : end - b.offset + 1;
  const data = new Float32Array(span);
  for (let i = 0; i < span; i++) data[i] = bf16ToF32(bits[b.offset + i]!);
  return { data, base: b.offset };
}

export function matmul(out: View, a: View, b: View, accumulate: boolean): void {
  if (a.shape.length !== 3 || b.shape.length !== 3 || out.shape.length !== 3) {
    throw new Error('[js matmul] Expected 3-D views [batch, rows, cols]');
  }
  const [bt, m, k] = a.shape as [number, number, number];
  const [bt2, k2, n] = b.shape as [number, number, number];
  if (k !== k2 || bt !== bt2 || out.shape[0] !== bt || out.shape[1] !== m || out.shape[2] !== n) {
    throw new Error(
      `[js matmul] Shapes (${a.shape.join(', ')}) · (${b.shape.join(', ')}) → (${out.shape.join(', ')}) do not agree`,
    );
  }
  const ad = floats(a, 'matmul');
  const od = floats(out, 'matmul');
  viewOffsets(a, 'matmul'); // bounds checks
  viewOffsets(b, 'matmul');
  const { data: bd, base } = operandB(b);
  const os = contiguousStart(out, 'matmul');
  const [sa0, sa1, sa2] = a.strides as [number, number, number];
  const [sb0, sb1, sb2] = b.strides as [number, number, number];
  const row = new Float64Array(n);
  for (let p = 0; p < bt; p++) {
    for (let i = 0; i < m; i++) {
      row.fill(0);
      const aRow = a.offset + p * sa0 + i * sa1;
      for (let kk = 0; kk < k; kk++) {
        const av = ad[aRow + kk * sa2]!;
        const bRow = b.offset - base + p * sb0 + kk * sb1;
        for (let j = 0; j < n; j++) row[j]! += av * bd[bRow + j * sb2]!;
      }
      const o = os + (p * m + i) * n;
      if (accumulate) for (let j = 0; j < n; j++) od[o + j]! += row[j]!;
      else for (let j = 0; j < n; j++) od[o + j] = row[j]!;
    }
  }
}
