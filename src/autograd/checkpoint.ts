// Activation checkpointing: run a block without keeping its intermediates, and recompute them in the
// backward (trading one extra forward for the block's activation memory). Dropout inside the block
// replays the same masks because the Philox stream position is restored for the recomputation.

import { dropoutStream } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { backward } from './backward.js';
import { enableGrad, isGradEnabled, noGrad, record } from './graph.js';

/**
 * fn(...inputs) with its activations recomputed in backward. `params` lists trainable tensors fn uses
 * besides its inputs (a block's parameters): they receive gradients during the recomputation.
 */
export function checkpoint(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: readonly Tensor[],
  params: readonly Tensor[] = [],
): Tensor {
  if (!isGradEnabled() || ![...inputs, ...params].some((t) => t.requiresGrad)) return fn(...inputs);
  const rng = dropoutStream.state();
  const out = noGrad(() => fn(...inputs));
  const after = dropoutStream.state();
  const all = [...inputs, ...params];
  return record('checkpoint', out, all, (dy, needs) => {
    dropoutStream.restore(rng);
    const detached = inputs.map((x, i) => {
      const d = new Tensor(x.storage, x.shape, x.strides, x.offset);
      d.requiresGrad = needs[i]!;
      return d;
    });
    scope(() => {
      const y = enableGrad(() => fn(...detached));
      if (y.requiresGrad) backward(y, { grad: dy });
    });
    dropoutStream.restore(after);
    const grads = detached.map((d) => {
      const g = d.grad;
      d.grad = null;
      d.dispose();
      return g;
    });
    return [...grads, ...params.map(() => null)];
  });
}
