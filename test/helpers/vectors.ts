// Comparisons of two float vectors that tests of numeric policies share (bf16 against f32 runs), and
// the λ_b values their VeRA gradient checks start from.

import type { Tensor } from '../../src/tensor/tensor.js';

/** ‖a − b‖ / ‖b‖. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

/** a·b / (‖a‖‖b‖). */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! ** 2;
    bb += b[i]! ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

/**
 * Sets every VeRA λ_b of a model away from its initial zeros (which give λ_d no gradient): a fixed
 * pattern of ±0.05..0.1, so tests compare gradients of both λ.
 */
export function spreadLambdaB(model: { namedParameters(): [string, Tensor][] }): void {
  for (const [name, p] of model.namedParameters())
    if (name.includes('vera_lambda_b')) {
      const v = Float32Array.from({ length: p.numel }, (_, i) => (i % 2 ? 1 : -1) * (0.05 + (i % 7) / 120));
      p.backend.upload(p.storage.buffer('test'), 'f32', p.offset, v);
    }
}
