// Patch embedding (ViT's Conv2d with stride = kernel, no padding). Non-overlapping patches make
// im2col a pure permutation, so the op is a view, one copy and one GEMM, differentiated by those ops.

import { ShapeError, fmtShape } from '../tensor/errors.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { linear } from './matmul.js';
import { contiguous, permute, reshape } from './movement.js';

/**
 * Conv2d(x, weight, bias, stride = patch) flattened to tokens: x [B, C, H, W], weight [D, C, P, P],
 * bias [D] → [B, (H/P)·(W/P), D] in row-major patch order (as ViT's embeddings flatten(2).transpose(1, 2)).
 */
export function patchEmbed(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  if (x.rank !== 4 || weight.rank !== 4)
    throw new ShapeError(
      `[patchEmbed] Expected x [B, C, H, W] and weight [D, C, P, P], got ${fmtShape(x.shape)} and ${fmtShape(weight.shape)}`,
    );
  const [b, c, h, w] = x.shape as [number, number, number, number];
  const [d, wc, p, p2] = weight.shape as [number, number, number, number];
  if (wc !== c || p !== p2 || h % p !== 0 || w % p !== 0) {
    throw new ShapeError(
      `[patchEmbed] Image ${fmtShape(x.shape)} does not divide into patches of weight ${fmtShape(weight.shape)}`,
    );
  }
  const gh = h / p;
  const gw = w / p;
  return scope(() => {
    // [B, C, gh, P, gw, P] → [B, gh, gw, C, P, P] → [B·gh·gw, C·P·P]
    const patches = contiguous(permute(reshape(x, [b, c, gh, p, gw, p]), [0, 2, 4, 1, 3, 5]));
    const tokens = linear(reshape(patches, [b * gh * gw, c * p * p]), reshape(weight, [d, c * p * p]), bias);
    return reshape(tokens, [b, gh * gw, d]);
  });
}
