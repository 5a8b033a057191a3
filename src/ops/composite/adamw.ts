// One AdamW step from in-place elementwise primitives, in torch.optim.AdamW's order of operations
// (the single-tensor path, as the js kernel writes it):
//   p ← p·(1 − lr·wd);  m ← m + (1 − β1)·(g − m);  v ← v·β2 + (1 − β2)·g·g;
//   p ← p − (lr / (1 − β1ᵗ))·(m / (√v / √(1 − β2ᵗ) + eps)).
// In f64 each step rounds exactly as the js kernel's expressions do; in f32 every step rounds to f32,
// as torch's own per-op f32 arithmetic does.

import type { AdamWParams, Backend, View } from '../../backends/backend.js';
import { numel } from '../../tensor/shape.js';
import { reshaped, withScratch } from './scratch.js';

/** backend.adamw's semantics: param, m and v updated in place (contiguous, same size as grad). */
export function adamw(b: Backend, param: View, grad: View, m: View, v: View, hp: AdamWParams): void {
  const n = numel(param.shape);
  const p = reshaped('adamw', 'param', param, [n]);
  const g = reshaped('adamw', 'grad', grad, [n]);
  const mv = reshaped('adamw', 'm', m, [n]);
  const vv = reshaped('adamw', 'v', v, [n]);
  const bc1 = 1 - hp.beta1 ** hp.step;
  const bc2Sqrt = Math.sqrt(1 - hp.beta2 ** hp.step);
  withScratch(b, (s) => {
    const t = s.tmp(param.dtype, [n]);
    b.scalar('mul_s', p, p, 1 - hp.lr * hp.weightDecay);
    b.binary('sub', t, g, mv);
    b.scalar('mul_s', t, t, 1 - hp.beta1);
    b.binary('add', mv, mv, t);
    b.scalar('mul_s', vv, vv, hp.beta2);
    b.scalar('mul_s', t, g, 1 - hp.beta2);
    b.binary('mul', t, t, g);
    b.binary('add', vv, vv, t);
    b.unary('sqrt', t, vv);
    b.binary('div', t, t, s.constant(param.dtype, bc2Sqrt, [n]));
    b.scalar('add_s', t, t, hp.eps);
    b.binary('div', t, mv, t);
    b.scalar('mul_s', t, t, hp.lr / bc1);
    b.binary('sub', p, p, t);
  });
}
