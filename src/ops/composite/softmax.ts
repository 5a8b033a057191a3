// Softmax and log-softmax over the last axis, and their backward, from primitives: the row max is
// subtracted before exp (as the fused kernels do), so large logits do not overflow.

import type { Backend, View } from '../../backends/backend.js';
import { perRow, reshaped, rowsOf, withScratch } from './scratch.js';

/** backend.softmax's semantics: out = softmax(a) (or log-softmax) over the last axis of contiguous [R, N]. */
export function softmax(b: Backend, out: View, a: View, log: boolean): void {
  const [r, n] = rowsOf(a);
  const x = reshaped('softmax', 'input', a, [r, n]);
  const y = reshaped('softmax', 'output', out, [r, n]);
  withScratch(b, (s) => {
    const stat = s.tmp(a.dtype, [r, 1]);
    b.reduce('max', stat, x, [1]);
    b.binary('sub', y, x, perRow(stat, r, n)); // z = x − max
    const e = s.tmp(a.dtype, [r, n]);
    b.unary('exp', e, y);
    b.reduce('sum', stat, e, [1]);
    if (log) {
      b.unary('log', stat, stat);
      b.binary('sub', y, y, perRow(stat, r, n)); // z − log Σ e^z
    } else {
      b.binary('div', y, e, perRow(stat, r, n));
    }
  });
}

/** backend.softmaxBackward's semantics: dx from the forward output y and dy. */
export function softmaxBackward(b: Backend, dx: View, y: View, dy: View, log: boolean): void {
  const [r, n] = rowsOf(y);
  const yv = reshaped('softmaxBackward', 'y', y, [r, n]);
  const gv = reshaped('softmaxBackward', 'dy', dy, [r, n]);
  const out = reshaped('softmaxBackward', 'dx', dx, [r, n]);
  withScratch(b, (s) => {
    const sum = s.tmp(y.dtype, [r, 1]);
    const t = s.tmp(y.dtype, [r, n]);
    if (log) {
      // dx = dy − exp(y)·Σ dy
      b.reduce('sum', sum, gv, [1]);
      b.unary('exp', t, yv);
      b.binary('mul', t, t, perRow(sum, r, n));
      b.binary('sub', out, gv, t);
    } else {
      // dx = y·(dy − Σ dy·y)
      b.binary('mul', t, gv, yv);
      b.reduce('sum', sum, t, [1]);
      b.binary('sub', out, gv, perRow(sum, r, n));
      b.binary('mul', out, out, yv);
    }
  });
}
