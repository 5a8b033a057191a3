// Inverted dropout from primitives: the keep-scale (1/(1 − p) where u(seed, offset + i) ≥ p, else 0)
// is computed on the host from the same Philox stream every backend uses and uploaded (a host → device
// copy, never a read back), then multiplied in. The backward is this function applied to dy.

import type { Backend, View } from '../../backends/backend.js';
import { philoxUniform } from '../../backends/philox.js';
import { numel } from '../../tensor/shape.js';
import { reshaped, withScratch } from './scratch.js';

/** backend.dropout's semantics on contiguous views. */
export function dropout(b: Backend, out: View, a: View, p: number, seed: number, offset: number): void {
  if (!(p >= 0 && p < 1)) throw new Error(`[dropout] p = ${p} must be in [0, 1)`);
  if (a.dtype !== 'f32' && a.dtype !== 'f64') throw new Error(`[dropout] Expected a float tensor, got ${a.dtype}`);
  const n = numel(a.shape);
  const x = reshaped('dropout', 'input', a, [n]);
  const y = reshaped('dropout', 'output', out, [n]);
  const keep = a.dtype === 'f64' ? new Float64Array(n) : new Float32Array(n);
  philoxUniform(seed, offset, keep);
  const scale = 1 / (1 - p);
  for (let i = 0; i < n; i++) keep[i] = keep[i]! >= p ? scale : 0;
  withScratch(b, (s) => {
    const mask = s.tmp(a.dtype, [n]);
    b.upload(mask.buf, a.dtype, 0, keep);
    b.binary('mul', y, x, mask);
  });
}
