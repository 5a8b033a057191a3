// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_), one host read per call.

import { noGrad } from '../autograd/graph.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, mulScalar, square } from '../ops/elementwise.js';
import { sum } from '../ops/reduce.js';

/** Scales gradients in place so their global L2 norm is at most maxNorm; returns the norm before. */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const withGrad = params.filter((p) => p.grad);
  if (withGrad.length === 0) return 0;
  const total = Math.sqrt(
    noGrad(() =>
      scope(() =>
        withGrad
          .map((p) => sum(square(p.grad!)))
          .reduce((a, b) => add(a, b))
          .item(),
      ),
    ),
  );
  const coef = maxNorm / (total + 1e-6);
  if (coef < 1) {
    noGrad(() => {
      for (const p of withGrad) {
        const scaled = mulScalar(p.grad!, coef);
        p.backend.copy(p.grad!.view('clipGradNorm'), scaled.view('clipGradNorm'));
        scaled.dispose();
      }
    });
  }
  return total;
}
