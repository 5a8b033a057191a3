// Elementwise ops with broadcasting and their gradients: arithmetic, activations, comparisons,
// where/maskedFill and dtype casts. Activations with fused derivative kernels (GELU, SiLU, tanh, …)
// use them; the rest differentiate through other elementwise ops.

import type { BinaryOp, ScalarOp, UnaryGradOp, UnaryOp, View } from '../backends/backend.js';
import { isGradEnabled, record, recordReads } from '../autograd/graph.js';
import { type DType, isFloat } from '../backends/dtype.js';
import { DTypeError, ShapeError, fmtShape } from '../tensor/errors.js';
import { scope } from '../tensor/scope.js';
import { broadcastShapes, broadcastStrides } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { fused, hasFused } from './kernels.js';
import { contiguous } from './movement.js';
import { alloc, allocLike, floatDType, mixedDType, sameBackend, sumToShape } from './util.js';

/** The view of `t` broadcast to `shape`. */
function bview(t: Tensor, shape: readonly number[], op: string): View {
  const v = t.view(op);
  return { ...v, shape, strides: broadcastStrides(op, t.shape, t.strides, shape) };
}

// ---- unary -----------------------------------------------------------------------------------

function unaryRaw(op: UnaryOp, a: Tensor): Tensor {
  floatDType(op, a);
  const out = allocLike(a);
  a.backend.unary(op, out.view(op), a.view(op));
  return out;
}

function unaryGradRaw(op: UnaryGradOp, x: Tensor, dy: Tensor): Tensor {
  const dx = allocLike(x);
  x.backend.unaryGrad(op, dx.view(`${op} grad`), x.view(`${op} grad`), dy.view(`${op} grad`));
  return dx;
}

/** Activations whose derivative costs about what their value does, so one pass computing both pays. */
const SAVES_DERIVATIVE: ReadonlySet<string> = new Set(['gelu', 'gelu_tanh']);

/**
 * An activation whose derivative has a fused kernel: dx = dy · f'(x). For the GELUs on a backend with
 * its own unaryWithGrad (one pass for f and f'), a forward that records the graph saves f'(x) instead
 * of x, so the backward is a product (the same values where f'(x) is formed in f32, as native forms
 * it for unaryGrad too; js, which forms it in float64, within one rounding); without that
 * kernel, f and f' would be two passes over x, and the backward recomputes f'(x) in its one pass.
 * (f32 only: a bf16 f'(x) would be rounded before the product, where unaryGrad rounds only dx.)
 */
function activation(op: UnaryOp & UnaryGradOp, a: Tensor): Tensor {
  const saves = SAVES_DERIVATIVE.has(op) && a.dtype === 'f32' && a.requiresGrad && isGradEnabled();
  if (saves && hasFused(a.backend, 'unaryWithGrad')) {
    const x = contiguous(a);
    const out = allocLike(x);
    const grad = allocLike(x);
    fused(a.backend).unaryWithGrad(op, out.view(op), grad.view(op), x.view(op));
    if (x !== a) x.dispose();
    return recordReads(op, out, [a], (dy) => [mul(dy, grad)], [grad], [grad]);
  }
  const out = unaryRaw(op, a);
  return recordReads(op, out, [a], (dy) => [unaryGradRaw(op, a, dy)], [a]);
}

/**
 * act(gate) ⊙ up (SwiGLU and the other gated MLPs), the same values as mul(act(gate), up) but saving
 * only gate and up: the backward recomputes act(gate) for up's gradient, where the two-op form keeps
 * act(gate) too — one [tokens, intermediate] tensor per layer less (Llama-2-7B at 4×512: 2.7 GiB).
 * One fused kernel each way (backend.gatedActivation and its backward), act(gate) and dy · up formed
 * as f32 values in registers: the two-op form's values where activations are f32, one rounding fewer
 * where they are bf16. gate and up have one shape.
 */
export function gatedActivation(op: UnaryOp & UnaryGradOp, gate: Tensor, up: Tensor): Tensor {
  if (gate.shape.length !== up.shape.length || gate.shape.some((d, i) => d !== up.shape[i]))
    throw new ShapeError(`[gatedActivation] gate ${fmtShape(gate.shape)} and up ${fmtShape(up.shape)} differ in shape`);
  const dtype = floatDType('mul', gate, up);
  const backend = sameBackend('gatedActivation', gate, up);
  const [g, u] = [contiguous(gate), contiguous(up)];
  const y = alloc(backend, gate.shape, dtype);
  fused(backend).gatedActivation(y.view('gatedActivation'), g.view('gatedActivation'), u.view('gatedActivation'), op);
  const copies = [g !== gate ? g : null, u !== up ? u : null];
  return recordReads(
    `gated ${op}`,
    y,
    [gate, up],
    (dy, needs) => {
      const d = contiguous(dy);
      const dg = needs[0] ? allocLike(gate) : null;
      const du = needs[1] ? allocLike(up) : null;
      const v = (t: Tensor | null) => (t ? t.view('gatedActivation backward') : null);
      fused(backend).gatedActivationBackward(v(dg), v(du), v(g)!, v(u)!, v(d)!, op);
      if (d !== dy) d.dispose();
      return [dg, du];
    },
    [gate.requiresGrad && u, g, up.requiresGrad && g],
    copies.filter((t): t is Tensor => t !== null),
  );
}

export const tanh = (a: Tensor): Tensor => activation('tanh', a);
export const sigmoid = (a: Tensor): Tensor => activation('sigmoid', a);
export const relu = (a: Tensor): Tensor => activation('relu', a);
/** Exact GELU, x·Φ(x) (torch's approximate='none'). */
export const gelu = (a: Tensor): Tensor => activation('gelu', a);
/** GELU with the tanh approximation (GPT-2's gelu_new, torch's approximate='tanh'). */
export const geluTanh = (a: Tensor): Tensor => activation('gelu_tanh', a);
export const silu = (a: Tensor): Tensor => activation('silu', a);

export function neg(a: Tensor): Tensor {
  return record('neg', unaryRaw('neg', a), [a], (dy) => [unaryRaw('neg', dy)]);
}

export function exp(a: Tensor): Tensor {
  const y = unaryRaw('exp', a);
  return record('exp', y, [a], (dy) => [mul(dy, y)]);
}

export function log(a: Tensor): Tensor {
  return record('log', unaryRaw('log', a), [a], (dy) => [div(dy, a)]);
}

export function sqrt(a: Tensor): Tensor {
  const y = unaryRaw('sqrt', a);
  return record('sqrt', y, [a], (dy) => [scope(() => div(dy, mulScalar(y, 2)))]);
}

export function rsqrt(a: Tensor): Tensor {
  const y = unaryRaw('rsqrt', a);
  return record('rsqrt', y, [a], (dy) => [scope(() => mul(dy, mulScalar(powScalar(y, 3), -0.5)))]);
}

export function abs(a: Tensor): Tensor {
  return record('abs', unaryRaw('abs', a), [a], (dy) => [scope(() => mul(dy, unaryRaw('sign', a)))]);
}

export function sin(a: Tensor): Tensor {
  return record('sin', unaryRaw('sin', a), [a], (dy) => [scope(() => mul(dy, unaryRaw('cos', a)))]);
}

export function cos(a: Tensor): Tensor {
  return record('cos', unaryRaw('cos', a), [a], (dy) => [scope(() => mul(dy, neg(unaryRaw('sin', a))))]);
}

export function square(a: Tensor): Tensor {
  return record('square', unaryRaw('square', a), [a], (dy) => [scope(() => mul(dy, mulScalar(a, 2)))]);
}

export function reciprocal(a: Tensor): Tensor {
  const y = unaryRaw('recip', a);
  return record('recip', y, [a], (dy) => [scope(() => mul(dy, neg(unaryRaw('square', y))))]);
}

// ---- with a scalar ---------------------------------------------------------------------------

function scalarRaw(op: ScalarOp, a: Tensor, s: number, dtype: DType): Tensor {
  const out = allocLike(a, a.shape, dtype);
  a.backend.scalar(op, out.view(op), a.view(op), s);
  return out;
}

export function addScalar(a: Tensor, s: number): Tensor {
  floatDType('add', a);
  return recordReads('add', scalarRaw('add_s', a, s, a.dtype), [a], (dy) => [dy], []);
}

export function mulScalar(a: Tensor, s: number): Tensor {
  floatDType('mul', a);
  return recordReads('mul', scalarRaw('mul_s', a, s, a.dtype), [a], (dy) => [scalarRaw('mul_s', dy, s, dy.dtype)], []);
}

/** s − a. */
export function rsubScalar(a: Tensor, s: number): Tensor {
  floatDType('sub', a);
  return recordReads('sub', scalarRaw('rsub_s', a, s, a.dtype), [a], (dy) => [unaryRaw('neg', dy)], []);
}

export function powScalar(a: Tensor, s: number): Tensor {
  floatDType('pow', a);
  const y = scalarRaw('pow_s', a, s, a.dtype);
  return record('pow', y, [a], (dy) => [scope(() => mul(dy, mulScalar(powScalar(a, s - 1), s)))]);
}

/** Clamps to [lo, hi] (either bound may be omitted); the gradient passes where x was inside. */
export function clamp(a: Tensor, lo = -Infinity, hi = Infinity): Tensor {
  floatDType('clamp', a);
  const lower = scalarRaw('max_s', a, lo, a.dtype);
  const out = scalarRaw('min_s', lower, hi, a.dtype);
  lower.dispose();
  return record('clamp', out, [a], (dy) => [
    scope(() => {
      const inside = mul(
        cast(scalarRaw('ge_s', a, lo, 'bool'), a.dtype),
        cast(scalarRaw('le_s', a, hi, 'bool'), a.dtype),
      );
      return mul(dy, inside);
    }),
  ]);
}

// ---- binary with broadcasting ----------------------------------------------------------------

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, dtype: DType): Tensor {
  const backend = sameBackend(op, a, b);
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = alloc(backend, shape, dtype);
  backend.binary(op, out.view(op), bview(a, shape, op), bview(b, shape, op));
  return out;
}

type GradPair = [Tensor | null, Tensor | null];

/** `reads`: what the rule reads (given the output); omitted, the node holds a, b and the output. */
function arith(
  op: BinaryOp,
  a: Tensor,
  b: Tensor,
  grads: (dy: Tensor, y: Tensor, needs: readonly boolean[]) => GradPair,
  reads?: (y: Tensor) => (Tensor | false)[],
): Tensor {
  const dtype = mixedDType(op, broadcastShapes(op, a.shape, b.shape), a, b);
  const y = binaryRaw(op, a, b, dtype);
  const rule = (dy: Tensor, needs: readonly boolean[]): GradPair => {
    const [ga, gb] = grads(dy, y, needs);
    return [ga ? sumToShape(ga, a.shape, a.dtype) : null, gb ? sumToShape(gb, b.shape, b.dtype) : null];
  };
  return reads ? recordReads(op, y, [a, b], rule, reads(y)) : record(op, y, [a, b], rule);
}

export function add(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(a, b);
  return arith(
    'add',
    a,
    b,
    (dy, _, needs) => [needs[0] ? dy : null, needs[1] ? dy : null],
    () => [],
  );
}

export function sub(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return addScalar(a, -b);
  return arith(
    'sub',
    a,
    b,
    (dy, _, needs) => [needs[0] ? dy : null, needs[1] ? unaryRaw('neg', dy) : null],
    () => [],
  );
}

export function mul(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return mulScalar(a, b);
  return arith(
    'mul',
    a,
    b,
    (dy, _, needs) => [
      needs[0] ? binaryRaw('mul', dy, b, dy.dtype) : null,
      needs[1] ? binaryRaw('mul', dy, a, dy.dtype) : null,
    ],
    () => [a.requiresGrad && b, b.requiresGrad && a],
  );
}

export function div(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return mulScalar(a, 1 / b);
  return arith('div', a, b, (dy, y, needs) => [
    needs[0] ? binaryRaw('div', dy, b, dy.dtype) : null,
    needs[1] ? scope(() => neg(div(mul(dy, y), b))) : null,
  ]);
}

export function pow(a: Tensor, b: Tensor | number): Tensor {
  if (typeof b === 'number') return powScalar(a, b);
  return arith('pow', a, b, (dy, y, needs) => [
    needs[0] ? scope(() => mul(dy, mul(b, pow(a, addScalar(b, -1))))) : null,
    needs[1] ? scope(() => mul(dy, mul(y, log(a)))) : null,
  ]);
}

/** Elementwise maximum; ties split the gradient equally (torch's rule). */
export function maximum(a: Tensor, b: Tensor): Tensor {
  return minmax('max', a, b);
}

export function minimum(a: Tensor, b: Tensor): Tensor {
  return minmax('min', a, b);
}

function minmax(op: 'max' | 'min', a: Tensor, b: Tensor): Tensor {
  const win: BinaryOp = op === 'max' ? 'gt' : 'lt';
  return arith(op, a, b, (dy, _, needs) =>
    scope(() => {
      const wa = cast(binaryRaw(win, a, b, 'bool'), dy.dtype);
      const tie = mulScalar(cast(binaryRaw('eq', a, b, 'bool'), dy.dtype), 0.5);
      const ga = add(wa, tie);
      return [needs[0] ? mul(dy, ga) : null, needs[1] ? mul(dy, rsubScalar(ga, 1)) : null] as GradPair;
    }),
  );
}

// ---- comparisons (no gradient) ----------------------------------------------------------------

type Cmp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';

function compare(op: Cmp, a: Tensor, b: Tensor | number): Tensor {
  if (a.dtype === 'bool' || (typeof b !== 'number' && b.dtype === 'bool'))
    throw new DTypeError(`[${op}] Compare numbers, not bool tensors`);
  if (typeof b === 'number') return scalarRaw(`${op}_s`, a, b, 'bool');
  return binaryRaw(op, a, b, 'bool');
}

export const eq = (a: Tensor, b: Tensor | number): Tensor => compare('eq', a, b);
export const ne = (a: Tensor, b: Tensor | number): Tensor => compare('ne', a, b);
export const lt = (a: Tensor, b: Tensor | number): Tensor => compare('lt', a, b);
export const le = (a: Tensor, b: Tensor | number): Tensor => compare('le', a, b);
export const gt = (a: Tensor, b: Tensor | number): Tensor => compare('gt', a, b);
export const ge = (a: Tensor, b: Tensor | number): Tensor => compare('ge', a, b);

// ---- selection -------------------------------------------------------------------------------

/** cond ? a : b with broadcasting; cond is a bool tensor. */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  if (cond.dtype !== 'bool') throw new DTypeError(`[where] Condition must be bool, got ${cond.dtype}`);
  const backend = sameBackend('where', cond, a, b);
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, a.shape), b.shape);
  const dtype = mixedDType('where', shape, a, b);
  const out = alloc(backend, shape, dtype);
  backend.where(out.view('where'), bview(cond, shape, 'where'), bview(a, shape, 'where'), bview(b, shape, 'where'));
  return record('where', out, [a, b], (dy, needs) =>
    scope(() => {
      const zero = alloc(backend, [], dy.dtype);
      backend.fill(zero.view('where'), 0);
      const pick = (t: Tensor, first: boolean) => {
        const g = alloc(backend, shape, dy.dtype);
        const z = bview(zero, shape, 'where');
        backend.where(
          g.view('where'),
          bview(cond, shape, 'where'),
          first ? dy.view('where') : z,
          first ? z : dy.view('where'),
        );
        return sumToShape(g, t.shape, t.dtype);
      };
      return [needs[0] ? pick(a, true) : null, needs[1] ? pick(b, false) : null];
    }),
  );
}

/** a with `value` wherever mask (bool, broadcast to a) is true (torch.masked_fill). */
export function maskedFill(a: Tensor, mask: Tensor, value: number): Tensor {
  const v = alloc(a.backend, [], a.dtype);
  a.backend.fill(v.view('maskedFill'), value);
  const out = where(mask, v, a);
  v.dispose();
  return out;
}

// ---- casts -----------------------------------------------------------------------------------

/** Converts to another dtype (a copy; casts between float dtypes, bf16 included, pass gradients back). */
export function cast(a: Tensor, dtype: DType): Tensor {
  if (a.dtype === dtype) return a;
  if (!a.backend.dtypes.includes(dtype))
    throw new DTypeError(`[cast] Backend "${a.backend.name}" does not support ${dtype}`);
  const out = allocLike(a, a.shape, dtype);
  a.backend.copy(out.view('cast'), a.view('cast'));
  if (!isFloat(dtype) || !isFloat(a.dtype)) return out;
  return recordReads('cast', out, [a], (dy) => [cast(dy, a.dtype)], []);
}
