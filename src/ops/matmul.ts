// Matrix products: matmul with torch's broadcasting rules and linear (y = x·Wᵀ + b, W stored
// [out, in] as in torch and HF checkpoints). Operands reach the GEMM kernel as strided 3-D views, so
// transposes are flags, not copies; a frozen weight never gets its dW GEMM in the backward. Either
// operand may be bf16 when it does not require grad (frozen weights stored in bf16): the GEMM then
// computes in bf16 with f32 accumulation (the other operand rounded to bf16, as torch.autocast does) and
// returns f32, and the backward's dX = dY·W runs the same way.

import { noGrad, recordReads } from '../autograd/graph.js';
import type { View } from '../backends/backend.js';
import type { DType } from '../backends/dtype.js';
import { DTypeError, ShapeError, fmtShape } from '../tensor/errors.js';
import { scope } from '../tensor/scope.js';
import { broadcastShapes, broadcastStrides, numel } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { contiguous, expand, reshape, transpose } from './movement.js';
import { alloc, floatDType, sameBackend, sumToShape } from './util.js';

/** True when the last two strides give a row- or column-major matrix the GEMM can read. */
function gemmReadable(strides: readonly number[], rows: number, cols: number): boolean {
  const [sr, sc] = [strides[strides.length - 2]!, strides[strides.length - 1]!];
  return sc === 1 || cols === 1 || sr === 1 || rows === 1;
}

/**
 * Views t (already broadcast to batch + [R, C]) as [Bt, R, C] with one batch stride, or null when the
 * batch axes cannot share a single stride.
 */
function as3d(t: Tensor, batch: readonly number[], op: string): View | null {
  const rows = t.shape[t.rank - 2]!;
  const cols = t.shape[t.rank - 1]!;
  const strides = broadcastStrides(op, t.shape.slice(0, -2), t.strides.slice(0, -2), batch);
  let bstride = 0;
  let expectNext: number | null = null;
  for (let i = batch.length - 1; i >= 0; i--) {
    if (batch[i] === 1) continue;
    const s = strides[i]!;
    if (expectNext !== null && s !== expectNext) return null;
    if (expectNext === null) bstride = s;
    expectNext = s * batch[i]!;
  }
  const v = t.view(op);
  return {
    ...v,
    shape: [numel(batch), rows, cols],
    strides: [bstride, t.strides[t.rank - 2]!, t.strides[t.rank - 1]!],
  };
}

/**
 * The dtype of a GEMM's result. The operands share a float dtype, or one (or both) is bf16: a frozen
 * weight (a bf16 leaf may not require grad: its update would be bf16, which training never does) or a
 * bf16 activation. A bf16 product returns the backend's activation dtype when it declares one (bf16
 * activations, as torch.autocast on a GPU), else the other operand's dtype (f32 when both are bf16).
 */
function gemmDType(op: string, a: Tensor, b: Tensor, names: [string, string]): DType {
  for (const [t, name] of [
    [a, names[0]],
    [b, names[1]],
  ] as const) {
    if (t.dtype === 'bf16' && t.requiresGrad && !t.gradFn)
      throw new DTypeError(
        `[${op}] ${name} ${fmtShape(t.shape)} is bf16 and requires grad; bf16 operands are frozen weights (cast it to f32 to train it)`,
      );
  }
  if (a.dtype !== 'bf16' && b.dtype !== 'bf16') return floatDType(op, a, b);
  floatDType(op, a);
  floatDType(op, b);
  if (a.backend.activationDType) return a.backend.activationDType;
  if (a.dtype === 'bf16' && b.dtype === 'bf16') return 'f32';
  return a.dtype === 'bf16' ? b.dtype : a.dtype;
}

/** a · b for a [..., M, K] and b [..., K, N] (1-D operands as in torch.matmul); either may be frozen bf16. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 0 || b.rank === 0)
    throw new ShapeError(`[matmul] Operands must have rank ≥ 1, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`);
  if (a.rank === 1 || b.rank === 1) {
    return scope(() => {
      const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]!]) : a;
      const b2 = b.rank === 1 ? reshape(b, [b.shape[0]!, 1]) : b;
      const y = matmul(a2, b2);
      const shape = y.shape.filter(
        (_, i) => !((a.rank === 1 && i === y.rank - 2) || (b.rank === 1 && i === y.rank - 1)),
      );
      return reshape(y, shape);
    });
  }
  const dtype = gemmDType('matmul', a, b, ['first operand', 'second operand']);
  const backend = sameBackend('matmul', a, b);
  const [m, k] = a.shape.slice(-2) as [number, number];
  const [k2, n] = b.shape.slice(-2) as [number, number];
  if (k !== k2)
    throw new ShapeError(`[matmul] Inner dimensions differ: a is ${fmtShape(a.shape)}, b is ${fmtShape(b.shape)}`);
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = alloc(backend, [...batch, m, n], dtype);
  noGrad(() =>
    scope(() => {
      const av = operand(a, batch, m, k);
      const bv = operand(b, batch, k, n);
      backend.matmul({ ...out.view('matmul'), shape: [numel(batch), m, n], strides: [m * n, n, 1] }, av, bv, false);
    }),
  );
  return recordReads(
    'matmul',
    out,
    [a, b],
    (dy, needs) => [
      needs[0] ? scope(() => sumToShape(matmul(dy, transpose(b)), a.shape)) : null,
      needs[1] ? scope(() => sumToShape(matmul(transpose(a), dy), b.shape)) : null,
    ],
    [a.requiresGrad && b, b.requiresGrad && a],
  );
}

// The 3-D view the kernel reads for an operand, copying only when its layout cannot be expressed.
function operand(t: Tensor, batch: readonly number[], rows: number, cols: number): View {
  let x = t;
  if (!gemmReadable(t.strides, rows, cols)) x = contiguous(t);
  const v = as3d(x, batch, 'matmul');
  if (v) return v;
  return as3d(contiguous(expand(x, [...batch, rows, cols])), batch, 'matmul')!;
}

/**
 * y = x·Wᵀ (+ bias) over the last axis of x: x [..., in], weight [out, in], bias [out]. The weight (or x)
 * may be bf16 when it does not require grad (bf16 storage of frozen weights): the product is then
 * computed in bf16 and y is f32 (x's dtype when x is f32/f64), or bf16 on a backend with bf16
 * activations; bias shares y's dtype, or is f32 for a bf16 y.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const dtype = gemmDType('linear', x, weight, ['input', 'weight']);
  // A bf16 product takes an f32 bias rounded into its bf16 output, the product accumulated on top (as
  // autocast's bf16 addmm adds a bf16 bias).
  if (bias && bias.dtype !== dtype && !(dtype === 'bf16' && bias.dtype === 'f32'))
    throw new DTypeError(`[linear] Bias is ${bias.dtype} but the product is ${dtype}; cast the bias to ${dtype}`);
  if (weight.rank !== 2 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new ShapeError(
      `[linear] Input ${fmtShape(x.shape)} does not fit weight ${fmtShape(weight.shape)} (expected [..., ${weight.shape[1]}])`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== weight.shape[0])) {
    throw new ShapeError(`[linear] Bias ${fmtShape(bias.shape)} does not fit weight ${fmtShape(weight.shape)}`);
  }
  const [nOut, nIn] = weight.shape as [number, number];
  const lead = x.shape.slice(0, -1);
  const rows = numel(lead);
  const backend = sameBackend('linear', x, weight, ...(bias ? [bias] : []));
  const y = alloc(backend, [...lead, nOut], dtype);
  noGrad(() =>
    scope(() => {
      const xv = operand(reshape(x, [rows, nIn]), [1], rows, nIn);
      // Wᵀ as a [1, in, out] view of the [out, in] weight: a transposed operand, not a copy.
      const w = gemmReadable(weight.strides, nOut, nIn) ? weight : contiguous(weight);
      const wv: View = { ...w.view('linear'), shape: [1, nIn, nOut], strides: [0, w.strides[1]!, w.strides[0]!] };
      const yv: View = { ...y.view('linear'), shape: [1, rows, nOut], strides: [0, nOut, 1] };
      if (bias) {
        // Broadcast the bias into y, then accumulate the product on top (one pass, no temporary).
        const bv = bias.view('linear');
        backend.copy(
          { ...yv, shape: [rows, nOut], strides: [nOut, 1] },
          { ...bv, shape: [rows, nOut], strides: [0, bv.strides[0]!] },
        );
      }
      backend.matmul(yv, xv, wv, Boolean(bias));
    }),
  );
  const inputs = bias ? [x, weight, bias] : [x, weight];
  // dX reads W, dW reads x: a frozen weight's layer keeps its weight alone for the backward.
  return recordReads(
    'linear',
    y,
    inputs,
    (dy, needs) =>
      scope(() => {
        const dy2 = reshape(dy, [rows, nOut]);
        const dx = needs[0] ? reshape(matmul(dy2, weight), x.shape) : null; // [rows, out]·[out, in]
        const dw = needs[1] ? matmul(transpose(dy2), reshape(x, [rows, nIn])) : null; // [out, rows]·[rows, in]
        const db = needs[2] ? sumToShape(dy2, [nOut], bias!.dtype) : null;
        return bias ? [dx, dw, db] : [dx, dw];
      }),
    [x.requiresGrad && weight, weight.requiresGrad && x],
  );
}
