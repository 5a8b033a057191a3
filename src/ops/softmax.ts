// Softmax and log-softmax along an axis (the last by default), with fused backward kernels.

import { recordReads } from '../autograd/graph.js';
import { normAxis } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { fused } from './kernels.js';
import { contiguous, transpose } from './movement.js';
import { allocLike, floatDType } from './util.js';

function rowwise(log: boolean, a: Tensor, axis: number): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  floatDType(op, a);
  const ax = normAxis(op, axis, a.rank);
  if (ax !== a.rank - 1) {
    // Move the axis last, apply, move it back (views; the kernel needs rows contiguous).
    const t = transpose(a, ax, -1);
    const y = rowwise(log, t, -1);
    const out = transpose(y, ax, -1);
    t.dispose();
    return out;
  }
  const x = contiguous(a);
  const y = allocLike(a);
  fused(a.backend).softmax(y.view(op), x.view(op), log);
  if (x !== a) x.dispose();
  return recordReads(
    op,
    y,
    [a],
    (dy) => {
      const g = contiguous(dy);
      const dx = allocLike(y);
      fused(a.backend).softmaxBackward(dx.view(op), y.view(op), g.view(op), log);
      if (g !== dy) g.dispose();
      return [dx];
    },
    [y], // the output alone: not the input
  );
}

export function softmax(a: Tensor, axis = -1): Tensor {
  return rowwise(false, a, axis);
}

export function logSoftmax(a: Tensor, axis = -1): Tensor {
  return rowwise(true, a, axis);
}
