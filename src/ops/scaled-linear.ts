// y = (x·Wᵀ) ⊙ s, s scaling each output feature: VeRA's λ_b after its B projection. Two formulations
// give the same function:
//   scale the output:  u = x·Wᵀ, y = u ⊙ s        — elementwise passes over [rows, out] (the backward's
//                                                    dy ⊙ s and Σ dy ⊙ u), u saved for the backward;
//   fold into W:       y = x·(s ⊙ W)ᵀ              — elementwise passes over [out, in] only, and when s
//                                                    is trained, one more GEMM: dW' = dyᵀ·x, ds = Σ dW' ⊙ W.
// Which is cheaper depends on the machine: the fold trades memory traffic for GEMM work, a bargain on
// a GPU (hundreds of FLOPs per byte moved) and a loss on a CPU. Backends state that balance
// (Backend.gemmFlopsPerByte) and the op picks the cheaper side from the shapes, so model code stays
// the same on every backend; a backend that states none gets PEFT's order of operations (the output
// scaled), so CPU results stay bit-identical to the unfused formula. Over a bf16 weight the folded weight is rounded to bf16, keeping the GEMM
// in bf16 as torch.autocast runs it.

import { isGradEnabled, noGrad, recordReads } from '../autograd/graph.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { scope } from '../tensor/scope.js';
import { numel } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast, mul, mulScalar } from './elementwise.js';
import { linear, matmul } from './matmul.js';
import { reshape, transpose } from './movement.js';
import { sum } from './reduce.js';
import { sumToShape } from './util.js';

/** Bytes moved per element by one f32 elementwise pass that reads `reads` tensors and writes one. */
const pass = (reads: number): number => 4 * (reads + 1);

/**
 * Whether folding s into W is cheaper than scaling the output, in bytes-equivalent: GEMM FLOPs count
 * 1/balance bytes each.
 */
export function foldsScale(rows: number, out: number, inF: number, scaleTrains: boolean, balance: number): boolean {
  // Output side: the forward's u ⊙ s; trained: dy ⊙ s, dy ⊙ u and its reduction over rows.
  const outputSide = rows * out * (pass(2) + (scaleTrains ? pass(2) + pass(2) + pass(1) : pass(2)));
  // Weight side: s ⊙ W (and its bf16 rounding); trained: the dW' GEMM, dW' ⊙ W and its reduction.
  const gemm = scaleTrains ? (2 * rows * out * inF) / balance : 0;
  const weightSide = out * inF * (pass(2) + pass(1) + (scaleTrains ? pass(2) + pass(1) : 0)) + gemm;
  return weightSide < outputSide;
}

/**
 * ((x ⊙ inScale)·Wᵀ) ⊙ s: x [..., in], weight [out, in] (f32, or bf16: the GEMMs then run in bf16),
 * s [out] (f32), inScale [in] (f32, optional: VeRA's λ_d). `master`, when given, is the f32 tensor a
 * bf16 weight was rounded from; the fold scales it instead of widening the bf16 copy. With inScale, the
 * folded form keeps x (shared by every target reading it) and recomputes x ⊙ inScale in the backward,
 * instead of keeping one scaled copy per target.
 */
export function scaledLinear(x: Tensor, weight: Tensor, s: Tensor, master?: Tensor, inScale?: Tensor): Tensor {
  if (weight.rank !== 2 || s.rank !== 1 || s.shape[0] !== weight.shape[0]) {
    throw new ShapeError(`[scaledLinear] Scale ${fmtShape(s.shape)} does not fit weight ${fmtShape(weight.shape)}`);
  }
  const [out, inF] = weight.shape as [number, number];
  if (inScale && (inScale.rank !== 1 || inScale.shape[0] !== inF))
    throw new ShapeError(
      `[scaledLinear] Input scale ${fmtShape(inScale.shape)} does not fit weight ${fmtShape(weight.shape)}`,
    );
  const rows = numel(x.shape.slice(0, -1));
  const trains = s.requiresGrad && isGradEnabled();
  const balance = x.backend.gemmFlopsPerByte;
  if (balance === undefined || !foldsScale(rows, out, inF, trains, balance))
    return mul(linear(inScale ? mul(x, inScale) : x, weight), s);
  if (master && (master.dtype === 'bf16' || master.shape[0] !== out || master.shape[1] !== inF)) {
    throw new ShapeError(
      `[scaledLinear] Master ${master.dtype} ${fmtShape(master.shape)} is not a float copy of weight ${fmtShape(weight.shape)}`,
    );
  }
  if (!inScale) return foldedLinear(x, weight, s, master);
  return foldedLinear(
    noGrad(() => mul(x, inScale)),
    weight,
    s,
    master,
    { x, inScale },
  );
}

/**
 * x·(s ⊙ W)ᵀ with its own backward: dx = dy·(s ⊙ W), ds = Σ_in (dyᵀ·x) ⊙ W, dW = (dyᵀ·x) ⊙ s. The
 * folded weight is made in f32 (from the master, or a bf16 weight widened), rounded to the weight's
 * dtype for the GEMMs, and kept for the backward's dx; over a bf16 weight the dW' GEMM runs in bf16 too
 * (x rounded), as autocast runs every GEMM of the step.
 */
function foldedLinear(
  x: Tensor,
  weight: Tensor,
  s: Tensor,
  master: Tensor | undefined,
  pre?: { x: Tensor; inScale: Tensor },
): Tensor {
  const [out, inF] = weight.shape as [number, number];
  const rows = numel(x.shape.slice(0, -1));
  const w32 = (): Tensor => master ?? (weight.dtype === 'bf16' ? cast(weight, 'f32') : weight);
  const folded = noGrad(() => scope(() => cast(mul(w32(), reshape(s, [out, 1])), weight.dtype)));
  const y = noGrad(() => linear(x, folded));
  // With `pre`, x is pre.x ⊙ pre.inScale: the node's inputs are pre.x and inScale, x is dropped after the
  // forward and rebuilt by the backward when the GEMM for d/d(s ⊙ W) needs it.
  const inputs = pre ? [pre.x, pre.inScale, weight, s] : [x, weight, s];
  const wantsX = weight.requiresGrad || s.requiresGrad;
  const rule = (dy: Tensor, needs: readonly boolean[]): (Tensor | null)[] =>
    scope(() => {
      const [nx, nw, ns] = pre ? [needs[0]! || needs[1]!, needs[2]!, needs[3]!] : [needs[0]!, needs[1]!, needs[2]!];
      const dy2 = reshape(dy, [rows, out]);
      const dxs = nx ? reshape(matmul(dy2, folded), x.shape) : null; // d/dx of the scaled input
      let grads: (Tensor | null)[] = [dxs];
      if (pre) {
        const dpx = needs[0] && dxs ? mul(dxs, pre.inScale) : null;
        const dsc = needs[1] && dxs ? sumToShape(mul(dxs, pre.x), [inF], pre.inScale.dtype) : null;
        grads = [dpx, dsc];
      }
      if (!nw && !ns) return [...grads, null, null];
      const xs = pre ? mul(pre.x, pre.inScale) : x;
      const x2 = reshape(xs, [rows, inF]);
      const g = matmul(transpose(dy2), folded.dtype === 'bf16' ? cast(x2, 'bf16') : x2); // d/d(s ⊙ W)
      const dw = nw ? mul(g, reshape(s, [out, 1])) : null;
      const ds = ns ? reshape(sum(mul(g, w32()), 1), [out]) : null;
      return [...grads, dw, ds];
    });
  const reads = pre
    ? [
        (pre.inScale.requiresGrad || wantsX) && pre.x,
        pre.inScale,
        s.requiresGrad && (master ?? weight),
        weight.requiresGrad && s,
      ]
    : [wantsX && x, s.requiresGrad && (master ?? weight), weight.requiresGrad && s];
  recordReads('scaledLinear', y, inputs, rule, reads, [folded]);
  if (pre) x.dispose(); // the scaled input: rebuilt by the backward, never held
  return y;
}

/**
 * scale · (x·Wᵀ) with every GEMM of the forward and backward in `dtype`, as torch.autocast runs an f32
 * trained weight (LoRA's A and B over a bf16 base): W is rounded once per call with the scale folded in
 * (a pass over [out, in], never over [rows, out]); x and dy are rounded by the GEMMs; x and W get f32
 * gradients. With `dtype` equal to W's own, it is plain linear and mulScalar.
 */
export function castLinear(x: Tensor, weight: Tensor, dtype: 'f32' | 'bf16', scale = 1): Tensor {
  if (dtype === weight.dtype || weight.dtype === 'f64') {
    const y = linear(x, weight);
    return scale === 1 ? y : mulScalar(y, scale);
  }
  if (weight.rank !== 2) throw new ShapeError(`[castLinear] Weight ${fmtShape(weight.shape)} is not a matrix`);
  const [out, inF] = weight.shape as [number, number];
  const rows = numel(x.shape.slice(0, -1));
  const w16 = noGrad(() => scope(() => cast(scale === 1 ? weight : mulScalar(weight, scale), dtype)));
  const y = noGrad(() => linear(x, w16));
  return recordReads(
    'castLinear',
    y,
    [x, weight],
    (dy, needs) =>
      scope(() => {
        const dy2 = reshape(dy, [rows, out]);
        const dx = needs[0] ? reshape(matmul(dy2, w16), x.shape) : null;
        if (!needs[1]) return [dx, null];
        const g = matmul(transpose(dy2), cast(reshape(x, [rows, inF]), dtype));
        return [dx, scale === 1 ? g : mulScalar(g, scale)];
      }),
    [weight.requiresGrad && x],
    [w16],
  );
}
