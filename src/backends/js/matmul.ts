// Batched GEMM of the js backend: plain loops over strided 3-D views, float64 accumulation. When either
// operand is bf16 the GEMM computes in bf16 (the contract's rule): bf16 values are widened exactly, and
// the f32/f64 operand is rounded to bf16 first — over the range of the buffer each view spans.

import type { View } from '../backend.js';
import { bf16ToF32, f32ToBf16 } from '../dtype.js';
import { contiguousStart, dataOf, floats, viewOffsets } from './buffer.js';

/**
 * The values an operand contributes, and the buffer offset of its element 0: the float data itself, or,
 * in a bf16 GEMM, a copy of the span the view covers holding bf16 values (widened or rounded).
 */
function operand(v: View, bf16: boolean): { data: ArrayLike<number>; base: number } {
  if (!bf16) return { data: floats(v, 'matmul'), base: 0 };
  let end = v.offset;
  for (let d = 0; d < v.shape.length; d++) if (v.shape[d]! > 0) end += (v.shape[d]! - 1) * v.strides[d]!;
  const span = v.shape.some((s) => s === 0) ? 0 : end - v.offset + 1;
  const data = new Float64Array(span);
  if (v.dtype === 'bf16') {
    const bits = dataOf(v, 'matmul') as Uint16Array;
    for (let i = 0; i < span; i++) data[i] = bf16ToF32(bits[v.offset + i]!);
  } else {
    const x = floats(v, 'matmul');
    for (let i = 0; i < span; i++) data[i] = bf16ToF32(f32ToBf16(x[v.offset + i]!));
  }
  return { data, base: v.offset };
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
  if (out.dtype === 'bf16') throw new Error('[js matmul] The output must be f32 or f64, got bf16');
  const od = floats(out, 'matmul');
  viewOffsets(a, 'matmul'); // bounds checks
  viewOffsets(b, 'matmul');
  const bf16 = a.dtype === 'bf16' || b.dtype === 'bf16';
  const { data: ad, base: baseA } = operand(a, bf16);
  const { data: bd, base } = operand(b, bf16);
  const os = contiguousStart(out, 'matmul');
  const [sa0, sa1, sa2] = a.strides as [number, number, number];
  const [sb0, sb1, sb2] = b.strides as [number, number, number];
  const row = new Float64Array(n);
  for (let p = 0; p < bt; p++) {
    for (let i = 0; i < m; i++) {
      row.fill(0);
      const aRow = a.offset - baseA + p * sa0 + i * sa1;
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
