// An activation and its derivative, out = f(x) and grad = f'(x), over primitives: unary, then
// unaryGrad against a broadcast 1 (the backward's dy · f'(x) with dy = 1, which is f'(x) exactly).

import type { Backend, UnaryGradOp, View } from '../../backends/backend.js';
import { wideDType, withScratch } from './scratch.js';

/** backend.unaryWithGrad's semantics. */
export function unaryWithGrad(b: Backend, op: UnaryGradOp, out: View, grad: View, x: View): void {
  b.unary(op, out, x);
  withScratch(b, (s) => b.unaryGrad(op, grad, x, s.constant(wideDType(x), 1, x.shape)));
}
