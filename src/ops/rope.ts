// Rotary position embedding in HF's rotate_half layout: x·cos + rotate_half(x)·sin over the head
// axis. The angle tables come from the model (they depend on rope_theta and scaling) and hold each
// frequency once ([.., D/2]); the op only rotates, and its adjoint is the rotation by −angle.

import { recordReads } from '../autograd/graph.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { fused } from './kernels.js';
import { contiguous } from './movement.js';
import { allocLike, paramDTypes, sameBackend } from './util.js';

/** Rotates x [B, T, H, D] (head axis contiguous) by angle tables cos, sin [B or 1, T, D/2]. */
export function rope(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  paramDTypes('rope', x, [cos, sin]); // the angle tables are f32 for a bf16 x
  const backend = sameBackend('rope', x, cos, sin);
  if (x.rank !== 4 || x.shape[3]! % 2 !== 0)
    throw new ShapeError(`[rope] Input must be [B, T, H, D] with even D, got ${fmtShape(x.shape)}`);
  const [b, t, , d] = x.shape as [number, number, number, number];
  for (const tab of [cos, sin]) {
    if (tab.rank !== 3 || (tab.shape[0] !== 1 && tab.shape[0] !== b) || tab.shape[1] !== t || tab.shape[2] !== d / 2) {
      throw new ShapeError(
        `[rope] Table of shape ${fmtShape(tab.shape)} does not fit input ${fmtShape(x.shape)} (expected [${b} or 1, ${t}, ${d / 2}])`,
      );
    }
  }
  const xs = x.strides[3] === 1 ? x : contiguous(x);
  const c = contiguous(cos);
  const s = contiguous(sin);
  const out = allocLike(x);
  fused(backend).rope(out.view('rope'), xs.view('rope'), c.view('rope'), s.view('rope'), false);
  if (xs !== x) xs.dispose();
  const owned = [c !== cos ? c : null, s !== sin ? s : null].filter((v): v is Tensor => v !== null);
  return recordReads(
    'rope',
    out,
    [x],
    (dy) => {
      const g = dy.strides[3] === 1 ? dy : contiguous(dy);
      const dx = allocLike(x);
      fused(backend).rope(dx.view('rope'), g.view('rope'), c.view('rope'), s.view('rope'), true);
      if (g !== dy) g.dispose();
      return [dx];
    },
    [c === cos && cos, s === sin && sin], // the tables, not x or the output
    owned,
  );
}
