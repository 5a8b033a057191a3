// Elementwise kernels of the js backend: copy/cast, fill, unary, scalar, binary, where, unary grads.
// Each walks its inputs through precomputed strided offsets; arithmetic is float64, rounded on store.

import type { BinaryOp, ScalarOp, UnaryGradOp, UnaryOp, View } from '../backend.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../dtype.js';
import { bools, contiguousStart, dataOf, floats, sizeOf, viewOffsets } from './buffer.js';
import { gelu, geluGrad, geluTanh, geluTanhGrad, sigmoid, silu, siluGrad } from './math.js';

function checkSameShape(op: string, out: View, ...ins: View[]): void {
  for (const v of ins) {
    if (v.shape.length !== out.shape.length || v.shape.some((d, i) => d !== out.shape[i])) {
      throw new Error(
        `[js ${op}] Operand shape (${v.shape.join(', ')}) does not match output (${out.shape.join(', ')})`,
      );
    }
  }
}

function reader(v: View, op: string): (i: number) => number {
  const d = dataOf(v, op);
  switch (v.dtype) {
    case 'bf16':
      return (i) => bf16ToF32((d as Uint16Array)[i]!);
    case 'f16':
      return (i) => f16ToF32((d as Uint16Array)[i]!);
    case 'i64':
      return (i) => Number((d as BigInt64Array)[i]!);
    default:
      return (i) => (d as Float64Array)[i]!;
  }
}

function writer(v: View, op: string): (i: number, x: number) => void {
  const d = dataOf(v, op);
  switch (v.dtype) {
    case 'bf16':
      return (i, x) => ((d as Uint16Array)[i] = f32ToBf16(x));
    case 'f16':
      return (i, x) => ((d as Uint16Array)[i] = f32ToF16(x));
    case 'i64':
      return (i, x) => ((d as BigInt64Array)[i] = Number.isFinite(x) ? BigInt(Math.trunc(x)) : 0n);
    case 'i32':
      return (i, x) => ((d as Int32Array)[i] = Number.isFinite(x) ? Math.trunc(x) : 0);
    case 'bool':
      return (i, x) => ((d as Uint8Array)[i] = x !== 0 ? 1 : 0);
    default:
      return (i, x) => ((d as Float64Array)[i] = x);
  }
}

export function copy(out: View, a: View): void {
  checkSameShape('copy', out, a);
  const oo = viewOffsets(out, 'copy');
  const ao = viewOffsets(a, 'copy');
  if (out.dtype === a.dtype && a.dtype === 'i64') {
    const od = dataOf(out, 'copy') as BigInt64Array;
    const ad = dataOf(a, 'copy') as BigInt64Array;
    for (let i = 0; i < oo.length; i++) od[oo[i]!] = ad[ao[i]!]!;
    return;
  }
  const read = reader(a, 'copy');
  const write = writer(out, 'copy');
  for (let i = 0; i < oo.length; i++) write(oo[i]!, read(ao[i]!));
}

export function fill(out: View, value: number): void {
  const start = contiguousStart(out, 'fill');
  const n = sizeOf(out.shape);
  const write = writer(out, 'fill');
  for (let i = 0; i < n; i++) write(start + i, value);
}

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  abs: Math.abs,
  sign: (x) => (Number.isNaN(x) ? NaN : Math.sign(x)),
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid,
  relu: (x) => (x > 0 ? x : Number.isNaN(x) ? x : 0),
  gelu,
  gelu_tanh: geluTanh,
  silu,
  square: (x) => x * x,
  recip: (x) => 1 / x,
};

export function unary(op: UnaryOp, out: View, a: View): void {
  checkSameShape(op, out, a);
  const f = UNARY[op];
  if (!f) throw new Error(`[js unary] Unknown op "${op}"`);
  const od = floats(out, op);
  const ad = floats(a, op);
  const start = contiguousStart(out, op);
  const ao = viewOffsets(a, op);
  for (let i = 0; i < ao.length; i++) od[start + i] = f(ad[ao[i]!]!);
}

const SCALAR: Record<ScalarOp, (x: number, s: number) => number> = {
  add_s: (x, s) => x + s,
  mul_s: (x, s) => x * s,
  pow_s: (x, s) => Math.pow(x, s),
  rsub_s: (x, s) => s - x,
  max_s: (x, s) => (Number.isNaN(x) ? x : Math.max(x, s)),
  min_s: (x, s) => (Number.isNaN(x) ? x : Math.min(x, s)),
  eq_s: (x, s) => +(x === s),
  ne_s: (x, s) => +(x !== s),
  lt_s: (x, s) => +(x < s),
  le_s: (x, s) => +(x <= s),
  gt_s: (x, s) => +(x > s),
  ge_s: (x, s) => +(x >= s),
};

const COMPARISONS = new Set<string>([
  'eq',
  'ne',
  'lt',
  'le',
  'gt',
  'ge',
  'eq_s',
  'ne_s',
  'lt_s',
  'le_s',
  'gt_s',
  'ge_s',
]);

export function scalar(op: ScalarOp, out: View, a: View, s: number): void {
  checkSameShape(op, out, a);
  const f = SCALAR[op];
  if (!f) throw new Error(`[js scalar] Unknown op "${op}"`);
  if (COMPARISONS.has(op) !== (out.dtype === 'bool')) throw new Error(`[js ${op}] Wrong output dtype ${out.dtype}`);
  const read = reader(a, op);
  if (a.dtype === 'bool') throw new Error(`[js ${op}] Input must not be bool`);
  const od = dataOf(out, op) as Float64Array;
  const start = contiguousStart(out, op);
  const ao = viewOffsets(a, op);
  for (let i = 0; i < ao.length; i++) od[start + i] = f(read(ao[i]!), s);
}

const BINARY: Record<BinaryOp, (x: number, y: number) => number> = {
  add: (x, y) => x + y,
  sub: (x, y) => x - y,
  mul: (x, y) => x * y,
  div: (x, y) => x / y,
  pow: Math.pow,
  max: Math.max,
  min: Math.min,
  eq: (x, y) => +(x === y),
  ne: (x, y) => +(x !== y),
  lt: (x, y) => +(x < y),
  le: (x, y) => +(x <= y),
  gt: (x, y) => +(x > y),
  ge: (x, y) => +(x >= y),
};

export function binary(op: BinaryOp, out: View, a: View, b: View): void {
  checkSameShape(op, out, a, b);
  const f = BINARY[op];
  if (!f) throw new Error(`[js binary] Unknown op "${op}"`);
  if (COMPARISONS.has(op) !== (out.dtype === 'bool')) throw new Error(`[js ${op}] Wrong output dtype ${out.dtype}`);
  const ra = reader(a, op);
  const rb = reader(b, op);
  const od = dataOf(out, op) as Float64Array;
  const start = contiguousStart(out, op);
  const ao = viewOffsets(a, op);
  const bo = viewOffsets(b, op);
  for (let i = 0; i < ao.length; i++) od[start + i] = f(ra(ao[i]!), rb(bo[i]!));
}

const UNARY_GRAD: Record<UnaryGradOp, (x: number) => number> = {
  gelu: geluGrad,
  gelu_tanh: geluTanhGrad,
  silu: siluGrad,
  tanh: (x) => 1 - Math.tanh(x) ** 2,
  sigmoid: (x) => sigmoid(x) * (1 - sigmoid(x)),
  relu: (x) => (x > 0 ? 1 : 0),
};

export function unaryGrad(op: UnaryGradOp, dx: View, x: View, dy: View): void {
  checkSameShape(`${op} grad`, dx, x, dy);
  const f = UNARY_GRAD[op];
  if (!f) throw new Error(`[js unaryGrad] Unknown op "${op}"`);
  const od = floats(dx, op);
  const xd = floats(x, op);
  const gd = floats(dy, op);
  const start = contiguousStart(dx, op);
  const xo = viewOffsets(x, op);
  const go = viewOffsets(dy, op);
  for (let i = 0; i < xo.length; i++) od[start + i] = gd[go[i]!]! * f(xd[xo[i]!]!);
}

/** out = f(x) and grad = f'(x): unary's and unaryGrad's values (dy = 1), one loop. */
export function unaryWithGrad(op: UnaryGradOp, out: View, grad: View, x: View): void {
  checkSameShape(`${op} with grad`, out, grad, x);
  const f = UNARY[op];
  const g = UNARY_GRAD[op];
  if (!f || !g) throw new Error(`[js unaryWithGrad] Unknown op "${op}"`);
  const od = floats(out, op);
  const gd = floats(grad, op);
  const xd = floats(x, op);
  const [so, sg] = [contiguousStart(out, op), contiguousStart(grad, op)];
  const xo = viewOffsets(x, op);
  for (let i = 0; i < xo.length; i++) {
    const v = xd[xo[i]!]!;
    od[so + i] = f(v);
    gd[sg + i] = g(v);
  }
}

export function where(out: View, cond: View, a: View, b: View): void {
  checkSameShape('where', out, cond, a, b);
  const cd = bools(cond, 'where');
  const ra = reader(a, 'where');
  const rb = reader(b, 'where');
  const write = writer(out, 'where');
  const start = contiguousStart(out, 'where');
  const co = viewOffsets(cond, 'where');
  const ao = viewOffsets(a, 'where');
  const bo = viewOffsets(b, 'where');
  for (let i = 0; i < co.length; i++) write(start + i, cd[co[i]!] ? ra(ao[i]!) : rb(bo[i]!));
}

/** Rounds an intermediate as the composite's temporary holds it: f64 where the views are, else f32. */
const held = (v: View): ((x: number) => number) => (v.dtype === 'f64' ? (x) => x : Math.fround);

export function gatedActivation(out: View, gate: View, up: View, op: UnaryGradOp): void {
  checkSameShape('gatedActivation', out, gate, up);
  const f = UNARY[op];
  if (!f) throw new Error(`[js gatedActivation] Unknown op "${op}"`);
  const [od, gd, ud] = [floats(out, op), floats(gate, op), floats(up, op)];
  const [os, gs, us] = [out, gate, up].map((v) => contiguousStart(v, 'gatedActivation')) as [number, number, number];
  const r = held(out);
  for (let i = 0; i < sizeOf(out.shape); i++) od[os + i] = r(f(gd[gs + i]!)) * ud[us + i]!;
}

export function gatedActivationBackward(
  dgate: View | null,
  dup: View | null,
  gate: View,
  up: View,
  dy: View,
  op: UnaryGradOp,
): void {
  checkSameShape('gatedActivationBackward', gate, up, dy, ...[dgate, dup].filter((v): v is View => v !== null));
  const [f, df] = [UNARY[op], UNARY_GRAD[op]];
  if (!f || !df) throw new Error(`[js gatedActivationBackward] Unknown op "${op}"`);
  const start = (v: View) => contiguousStart(v, 'gatedActivationBackward');
  const [gd, ud, yd] = [floats(gate, op), floats(up, op), floats(dy, op)];
  const [gs, us, ys] = [start(gate), start(up), start(dy)];
  const r = held(dy);
  const n = sizeOf(gate.shape);
  if (dgate) {
    const [o, os] = [floats(dgate, op), start(dgate)];
    for (let i = 0; i < n; i++) o[os + i] = r(yd[ys + i]! * ud[us + i]!) * df(gd[gs + i]!);
  }
  if (dup) {
    const [o, os] = [floats(dup, op), start(dup)];
    for (let i = 0; i < n; i++) o[os + i] = yd[ys + i]! * r(f(gd[gs + i]!));
  }
}
