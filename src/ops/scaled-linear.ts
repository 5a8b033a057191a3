// y = ((x ⊙ inScale)·Wᵀ) ⊙ s, s scaling each output feature (VeRA's λ_b after its B projection),
// inScale each input feature (λ_d). Two formulations give the same function:
//   scale the output:  u = x·Wᵀ, y = u ⊙ s        — elementwise passes over [rows, out] (the backward's
//                                                    dy ⊙ s and Σ dy ⊙ u), u saved for the backward;
//   fold into W:       y = x·(s ⊙ W ⊙ inScale)ᵀ    — passes over [out, in] only (backend.scaleFold, in
//                                                    the forward and again in the backward), and when a
//                                                    scale trains one more GEMM, G = dyᵀ·x, whose
//                                                    products with W give both scales' gradients
//                                                    (backend.scaleGrads).
// Which is cheaper depends on the machine: the fold trades memory traffic for GEMM work, a bargain on
// a GPU (hundreds of FLOPs per byte moved) and a loss on a CPU. Backends state that balance
// (Backend.gemmFlopsPerByte) and the op picks the cheaper side from the shapes, so model code stays
// the same on every backend; a backend that states none gets PEFT's order of operations (the output
// scaled), so CPU outputs stay bit-identical to the unfused formula. Over a bf16 weight the folded
// weight is rounded to bf16, keeping the GEMM in bf16 as torch.autocast runs it.

import { isGradEnabled, noGrad, recordReads } from '../autograd/graph.js';
import type { View } from '../backends/backend.js';
import type { DType } from '../backends/dtype.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { scope } from '../tensor/scope.js';
import { numel } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, cast, mul, mulScalar } from './elementwise.js';
import { linear, matmul } from './matmul.js';
import { fused } from './kernels.js';
import { contiguous, reshape, transpose } from './movement.js';
import { alloc, mixedDType } from './util.js';

/** Bytes moved per element by one f32 elementwise pass that reads `reads` tensors and writes one. */
const pass = (reads: number): number => 4 * (reads + 1);

/**
 * Whether folding s into W is cheaper than scaling the output, in bytes-equivalent: GEMM FLOPs count
 * 1/balance bytes each.
 */
export function foldsScale(rows: number, out: number, inF: number, scaleTrains: boolean, balance: number): boolean {
  // Output side: the forward's u ⊙ s; trained: dy ⊙ s, dy ⊙ u and its reduction over rows (the passes
  // of scaleBackward's composite, which a backend that states a balance — cuda — runs until it lists its
  // own one-pass kernel; backends without a balance never fold).
  const outputSide = rows * out * (pass(2) + (scaleTrains ? pass(2) + pass(2) + pass(1) : pass(2)));
  // Weight side: the fold (reads W and s, writes W'); trained: the G GEMM and the pass over G and W.
  const gemm = scaleTrains ? (2 * rows * out * inF) / balance : 0;
  const weightSide = out * inF * (pass(2) + pass(1) + (scaleTrains ? pass(2) + pass(1) : 0)) + gemm;
  return weightSide < outputSide;
}

/**
 * ((x ⊙ inScale)·Wᵀ) ⊙ s (+ addTo): x [..., in], weight [out, in] (f32, or bf16: the GEMMs then run in bf16),
 * s [out] (f32), inScale [in] (f32, optional: VeRA's λ_d). `master`, when given, is the f32 tensor a
 * bf16 weight was rounded from; the fold scales it instead of widening the bf16 copy. Folded, both
 * scales go into the weight (s ⊙ W ⊙ inScale), so the op keeps only x for the backward — shared by
 * every target reading it — and no scaled copy of x or of the weight. With `addTo` (a base layer's
 * output of the result's shape) the sum is returned; scaling the output, that is one pass
 * (backend.scaleAdd) instead of a scale and an add.
 */
export function scaledLinear(
  x: Tensor,
  weight: Tensor,
  s: Tensor,
  master?: Tensor,
  inScale?: Tensor,
  addTo?: Tensor,
): Tensor {
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
    return outputScaledLinear(inScale ? scaleColumns(x, inScale) : x, weight, s, addTo);
  if (master && (master.dtype === 'bf16' || master.shape[0] !== out || master.shape[1] !== inF)) {
    throw new ShapeError(
      `[scaledLinear] Master ${master.dtype} ${fmtShape(master.shape)} is not a float copy of weight ${fmtShape(weight.shape)}`,
    );
  }
  const y = foldedLinear(x, weight, s, master, inScale);
  return addTo ? add(addTo, y) : y;
}

/**
 * (x·Wᵀ) ⊙ s (+ addTo), the output scaled, as one graph node: linear then scaledAdd (or scaleColumns)
 * give its values, the same f32 products and roundings. Its backward is one pass over [rows, out]
 * (backend.scaleBackward) for dv = dy ⊙ s and ds = Σ_rows dy ⊙ v, where the composed ops took a mul, a
 * column sum and the dX GEMM's rounding of dv: over a bf16 weight dv is written in bf16, the operand
 * that GEMM reads (the same bits it would round to). v = x·Wᵀ is kept only when s trains.
 */
function outputScaledLinear(x: Tensor, weight: Tensor, s: Tensor, addTo?: Tensor): Tensor {
  const [out, inF] = weight.shape as [number, number];
  const rows = numel(x.shape.slice(0, -1));
  const v = noGrad(() => linear(x, weight));
  const y = noGrad(() => (addTo ? scaledAdd(addTo, v, s) : mul(v, s)));
  const keepV = s.requiresGrad;
  if (!keepV) v.dispose();
  const inputs = addTo ? [x, weight, s, addTo] : [x, weight, s];
  const rule = (dy: Tensor, needs: readonly boolean[]): (Tensor | null)[] =>
    scope(() => {
      const [nx, nw, ns] = [needs[0]!, needs[1]!, needs[2]!];
      const op = 'scaledLinear backward';
      const m = (t: Tensor) => ({ ...t.view(op), shape: [rows, out], strides: [out, 1] });
      const dy2 = contiguous(reshape(dy, [rows, out]));
      // bf16 when only the dX GEMM reads dv (a bf16 weight never trains); else the gradients' float dtype.
      const dvType = weight.dtype === 'bf16' && !nw ? 'bf16' : wide(dy);
      const dv = nx || nw ? alloc(x.backend, [rows, out], dvType) : null;
      const ds = ns ? alloc(s.backend, [out], wide(s)) : null;
      if (dv || ds)
        fused(x.backend).scaleBackward(
          dv ? m(dv) : null,
          ds ? ds.view(op) : null,
          m(dy2),
          m(ns ? v : dy2),
          floatView(s, op),
        );
      const dx = nx ? reshape(matmul(dv!, weight), x.shape) : null;
      const dw = nw ? matmul(transpose(dv!), reshape(x, [rows, inF])) : null;
      const grads = [dx, dw, ds ? castTo(ds, s.dtype) : null];
      return addTo ? [...grads, needs[3] ? dy : null] : grads;
    });
  return recordReads(
    'scaledLinear',
    y,
    inputs,
    rule,
    [x.requiresGrad && weight, weight.requiresGrad && x, s],
    keepV ? [v] : [],
  );
}

/**
 * a ⊙ s for a [..., n] and s [n] (a per-feature scale, VeRA's λ): mul(a, s)'s values, with s's
 * gradient Σ_rows dy ⊙ a from one column-sum kernel (backend.scaleGrads) instead of a [rows, n]
 * product and a reduction. s is kept f32 (or f64) and gets a gradient of its dtype.
 */
export function scaleColumns(a: Tensor, s: Tensor): Tensor {
  const n = a.shape[a.rank - 1];
  if (s.rank !== 1 || s.shape[0] !== n)
    throw new ShapeError(
      `[scaleColumns] Scale ${fmtShape(s.shape)} does not fit ${fmtShape(a.shape)} (expected [${n}])`,
    );
  const y = noGrad(() => mul(a, s));
  return recordReads('scaleColumns', y, [a, s], (dy, needs) => scaleBackward(dy, a, s, needs[0]!, needs[1]!), [
    s.requiresGrad && a,
    a.requiresGrad && s,
  ]);
}

/** The gradients of v ⊙ s from dy: [dv = dy ⊙ s, ds = Σ_rows dy ⊙ v (one column-sum kernel)], each when wanted. */
function scaleBackward(dy: Tensor, v: Tensor, s: Tensor, wantV: boolean, wantS: boolean): (Tensor | null)[] {
  return scope(() => {
    const dv = wantV ? mul(dy, s) : null;
    if (!wantS) return [dv, null];
    const n = v.shape[v.rank - 1]!;
    const rows = numel(v.shape.slice(0, -1));
    const op = 'scale backward';
    const m = (t: Tensor) => ({ ...t.view(op), shape: [rows, n], strides: [n, 1] });
    const [d, vc] = [contiguous(dy), contiguous(v)];
    const ds = alloc(s.backend, [n], wide(s));
    fused(s.backend).scaleGrads(null, ds.view(op), m(d), m(vc), null, null);
    return [dv, castTo(ds, s.dtype)];
  });
}

/**
 * a + v ⊙ s for a and v [..., n] of one shape and s [n] (a scaled adapter output added to the base's):
 * add(a, mul(v, s))'s values in one pass (backend.scaleAdd), v's and s's gradients as scaleColumns'.
 */
export function scaledAdd(a: Tensor, v: Tensor, s: Tensor): Tensor {
  const n = v.shape[v.rank - 1]!;
  if (a.rank !== v.rank || a.shape.some((d, i) => d !== v.shape[i]))
    throw new ShapeError(`[scaledAdd] ${fmtShape(a.shape)} and ${fmtShape(v.shape)} differ in shape`);
  if (s.rank !== 1 || s.shape[0] !== n)
    throw new ShapeError(`[scaledAdd] Scale ${fmtShape(s.shape)} does not fit ${fmtShape(v.shape)} (expected [${n}])`);
  const rows = numel(v.shape.slice(0, -1));
  const op = 'scaledAdd';
  const y = noGrad(() =>
    scope(() => {
      const out = alloc(v.backend, v.shape, mixedDType(op, v.shape, a, v, s));
      const [ac, vc] = [contiguous(a), contiguous(v)];
      const m = (t: Tensor) => ({ ...t.view(op), shape: [rows, n], strides: [n, 1] });
      fused(v.backend).scaleAdd(m(out), m(ac), m(vc), floatView(s, op));
      return out;
    }),
  );
  return recordReads(
    op,
    y,
    [a, v, s],
    (dy, needs) => [needs[0] ? dy : null, ...scaleBackward(dy, v, s, needs[1]!, needs[2]!)],
    [s.requiresGrad && v, v.requiresGrad && s],
  );
}

/** The dtype the scale kernels compute t's terms in: f64 for f64 tensors (js gradient checks), else f32. */
const wide = (t: Tensor): DType => (t.dtype === 'f64' ? 'f64' : 'f32');

/** A float vector for a kernel: a view of t, or of a contiguous copy owned by the caller's scope. */
function floatView(t: Tensor, op: string): View {
  return (t.dtype === wide(t) && t.isContiguous ? t : contiguous(cast(t, wide(t)))).view(op);
}

/** s ⊙ W ⊙ inScale in `dtype` (backend.scaleFold), from the f32 master when there is one. */
function fold(w: Tensor, s: Tensor, inScale: Tensor | undefined, dtype: DType): Tensor {
  return noGrad(() =>
    scope(() => {
      const src = contiguous(w);
      const out = alloc(w.backend, w.shape, dtype);
      const op = 'scaledLinear';
      fused(w.backend).scaleFold(out.view(op), src.view(op), floatView(s, op), inScale ? floatView(inScale, op) : null);
      return out;
    }),
  );
}

/** aᵀ·b into a new f32 (f64 on js) [a.cols, b.cols] (bf16 operands keep f32 accumulation without rounding the result). */
function gemmTN(a: Tensor, b: Tensor): Tensor {
  const [k, m] = a.shape as [number, number];
  const n = b.shape[1]!;
  const out = alloc(a.backend, [m, n], a.dtype === 'f64' || b.dtype === 'f64' ? 'f64' : 'f32');
  noGrad(() =>
    scope(() => {
      const [ac, bc] = [contiguous(a), contiguous(b)];
      const [av, bv] = [ac.view('scaledLinear'), bc.view('scaledLinear')];
      a.backend.matmul(
        { ...out.view('scaledLinear'), shape: [1, m, n], strides: [m * n, n, 1] },
        { ...av, shape: [1, m, k], strides: [0, 1, m] },
        { ...bv, shape: [1, k, n], strides: [0, n, 1] },
        false,
      );
    }),
  );
  return out;
}

/**
 * x·(s ⊙ W ⊙ inScale)ᵀ with its own backward. The folded weight W' is made by one kernel (from the
 * master, or the weight itself) in the weight's dtype for the GEMMs, dropped after the forward and
 * made again by the backward (a pass over [out, in], where keeping it would hold one per target for
 * the whole step). Backward: dx = dy·W'; with G = dyᵀ·x (f32): ds[o] = Σ_k G·W·inScale,
 * d inScale[k] = Σ_o G·W·s (backend.scaleGrads), dW = G ⊙ s ⊗ inScale.
 */
function foldedLinear(x: Tensor, weight: Tensor, s: Tensor, master: Tensor | undefined, inScale?: Tensor): Tensor {
  const [out, inF] = weight.shape as [number, number];
  const rows = numel(x.shape.slice(0, -1));
  const src = master ?? weight;
  const y = scope(() => noGrad(() => linear(x, fold(src, s, inScale, weight.dtype))));
  const inputs = inScale ? [x, weight, s, inScale] : [x, weight, s];
  const rule = (dy: Tensor, needs: readonly boolean[]): (Tensor | null)[] =>
    scope(() => {
      const [nx, nw, ns, ni] = [needs[0]!, needs[1]!, needs[2]!, Boolean(inScale && needs[3])];
      const dy2 = reshape(dy, [rows, out]);
      const dx = nx ? reshape(matmul(dy2, fold(src, s, inScale, weight.dtype)), x.shape) : null;
      if (!nw && !ns && !ni) return inScale ? [dx, null, null, null] : [dx, null, null];
      const g = gemmTN(dy2, reshape(x, [rows, inF])); // d/dW' [out, in], f32
      const ds = ns ? alloc(s.backend, [out], wide(s)) : null;
      const di = ni ? alloc(s.backend, [inF], wide(inScale!)) : null;
      if (ds || di) {
        const op = 'scaledLinear backward';
        const w32 = contiguous(src);
        fused(s.backend).scaleGrads(
          ds ? ds.view(op) : null,
          di ? di.view(op) : null,
          g.view(op),
          w32.view(op),
          floatView(s, op),
          inScale ? floatView(inScale, op) : null,
        );
      }
      const dw = nw ? mul(inScale ? mul(g, inScale) : g, reshape(s, [out, 1])) : null;
      const grads = [dx, dw, ds ? castTo(ds, s.dtype) : null];
      return inScale ? [...grads, di ? castTo(di, inScale.dtype) : null] : grads;
    });
  const trainsScale = s.requiresGrad || weight.requiresGrad || Boolean(inScale?.requiresGrad);
  return recordReads('scaledLinear', y, inputs, rule, [trainsScale && x, src, s, inScale]);
}

const castTo = (t: Tensor, dtype: DType): Tensor => (t.dtype === dtype ? t : cast(t, dtype));

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
