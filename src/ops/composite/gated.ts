// A gated MLP's activation, out = f(gate) · up (SwiGLU's silu, GeGLU's gelu), and its gradients from
// the unary, binary and unaryGrad primitives, through f32 (f64 on js) temporaries: the fused kernel
// forms the same values without writing the intermediates.

import type { Backend, UnaryGradOp, UnaryOp, View } from '../../backends/backend.js';
import { isContiguous, wideDType, withScratch } from './scratch.js';

function check(op: string, views: readonly (View | null)[], names: readonly string[]): void {
  const first = views.find((v): v is View => v !== null)!;
  views.forEach((v, i) => {
    if (!v) return;
    if (v.shape.length !== first.shape.length || v.shape.some((d, j) => d !== first.shape[j]))
      throw new Error(`[${op}] ${names[i]} (${v.shape.join(', ')}) differs in shape from (${first.shape.join(', ')})`);
    if (!isContiguous(v)) throw new Error(`[${op}] ${names[i]} must be contiguous`);
  });
}

/** backend.gatedActivation's semantics: out = f(gate) · up. */
export function gatedActivation(b: Backend, out: View, gate: View, up: View, op: UnaryGradOp): void {
  check('gatedActivation', [out, gate, up], ['out', 'gate', 'up']);
  withScratch(b, (s) => {
    const a = s.tmp(wideDType(out), gate.shape);
    b.unary(op as UnaryOp, a, gate);
    b.binary('mul', out, a, up);
  });
}

/** backend.gatedActivationBackward's semantics: dgate = f'(gate) · (dy · up), dup = dy · f(gate). */
export function gatedActivationBackward(
  b: Backend,
  dgate: View | null,
  dup: View | null,
  gate: View,
  up: View,
  dy: View,
  op: UnaryGradOp,
): void {
  check('gatedActivationBackward', [dgate, dup, gate, up, dy], ['dgate', 'dup', 'gate', 'up', 'dy']);
  withScratch(b, (s) => {
    const t = s.tmp(wideDType(dy), gate.shape);
    if (dgate) {
      b.binary('mul', t, dy, up);
      b.unaryGrad(op, dgate, gate, t);
    }
    if (dup) {
      b.unary(op as UnaryOp, t, gate);
      b.binary('mul', dup, dy, t);
    }
  });
}
