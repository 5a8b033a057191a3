// Batched GEMM of the js backend: plain loops over strided 3-D views, float64 accumulation.

import type { View } from '../backend.js';
import { contiguousStart, floats, viewOffsets } from './buffer.js';

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
  const bd = floats(b, 'matmul');
  const od = floats(out, 'matmul');
  viewOffsets(a, 'matmul'); // bounds checks
  viewOffsets(b, 'matmul');
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
        const bRow = b.offset + p * sb0 + kk * sb1;
        for (let j = 0; j < n; j++) row[j]! += av * bd[bRow + j * sb2]!;
      }
      const o = os + (p * m + i) * n;
      if (accumulate) for (let j = 0; j < n; j++) od[o + j]! += row[j]!;
      else for (let j = 0; j < n; j++) od[o + j] = row[j]!;
    }
  }
}
