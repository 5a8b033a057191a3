// Inverted dropout driven by the counter-based Philox stream: the mask is a function of (seed,
// element index), so the backward regenerates it instead of storing it, and activation
// checkpointing replays the same mask by restoring the stream position.

import { recordReads } from '../autograd/graph.js';
import { dropoutStream } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { fused } from './kernels.js';
import { contiguous } from './movement.js';
import { allocLike, floatDType } from './util.js';

/** Zeroes each element with probability p and scales the rest by 1/(1 − p); identity when !training or p = 0. */
export function dropout(x: Tensor, p: number, training = true): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`[dropout] p = ${p} must be in [0, 1)`);
  if (!training || p === 0) return x;
  floatDType('dropout', x);
  const { seed, offset } = dropoutStream.take(x.numel);
  const xc = contiguous(x);
  const out = allocLike(x);
  fused(x.backend).dropout(out.view('dropout'), xc.view('dropout'), p, seed, offset);
  if (xc !== x) xc.dispose();
  // The mask is regenerated from (seed, offset): the node holds neither x nor the output.
  return recordReads(
    'dropout',
    out,
    [x],
    (dy) => {
      const g = contiguous(dy);
      const dx = allocLike(x);
      fused(x.backend).dropout(dx.view('dropout'), g.view('dropout'), p, seed, offset);
      if (g !== dy) g.dispose();
      return [dx];
    },
    [],
  );
}
