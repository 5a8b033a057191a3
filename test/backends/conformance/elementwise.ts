// Data movement and elementwise kernels: copy/cast between every pair of storage dtypes (strided,
// transposed, broadcast), fill, unary / scalar / binary / unaryGrad ops on transposed, sliced,
// broadcast and large views, accuracy sweeps of the transcendental functions, and where.

import type { DType, HostArray } from '../../../src/backends/dtype.js';
import { f32ToBf16, f32ToF16 } from '../../../src/backends/dtype.js';
import type { Ctx } from './harness.js';

const STORAGE: DType[] = ['f32', 'f64', 'f16', 'bf16', 'i32', 'i64', 'bool'];

function sample(ctx: Ctx, dtype: DType, n: number): HostArray {
  const f = Float32Array.from(ctx.randf(n, -70000, 70000), (x, i) =>
    i % 5 === 0 ? x / 9999 : i % 7 === 0 ? Math.round(x) : x,
  );
  f[1] = NaN;
  f[2] = Infinity;
  f[3] = -0.5;
  f[4] = 3e9;
  f[6] = 1e-6;
  switch (dtype) {
    case 'f32':
      return f;
    case 'f64':
      return Float64Array.from(f);
    case 'f16':
      return Uint16Array.from(f, (x) => f32ToF16(x));
    case 'bf16':
      return Uint16Array.from(f, (x) => f32ToBf16(x));
    case 'i32':
      return Int32Array.from(f, (x) => (Number.isFinite(x) ? x | 0 : 7));
    case 'i64':
      return BigInt64Array.from(f, (x) => (Number.isFinite(x) ? BigInt(Math.trunc(x)) * 1000003n : 5n));
    default:
      return Uint8Array.from(f, (x) => (x > 0 ? 1 : 0));
  }
}

export const UNARY = [
  'neg',
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'abs',
  'sign',
  'sin',
  'cos',
  'tanh',
  'sigmoid',
  'relu',
  'gelu',
  'gelu_tanh',
  'silu',
  'square',
  'recip',
] as const;

const SCALAR = [
  'add_s',
  'mul_s',
  'pow_s',
  'rsub_s',
  'max_s',
  'min_s',
  'eq_s',
  'ne_s',
  'lt_s',
  'le_s',
  'gt_s',
  'ge_s',
] as const;

const BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;

const GRADS = ['gelu', 'gelu_tanh', 'silu', 'tanh', 'sigmoid', 'relu'] as const;

export function elementwiseTests(ctx: Ctx): void {
  const F = ctx.float;
  const storage = STORAGE.filter((d) => ctx.subject.dtypes.includes(d));

  ctx.test(['copy'], 'copy: every pair of storage dtypes, strided source and destination', () => {
    for (const src of storage) {
      for (const dst of storage) {
        // a: a transposed [13, 9] view of a [9, 13] buffer at offset 0; out: a strided window.
        const a = ctx.tensor(src, sample(ctx, src, 117), [13, 9], [1, 13]);
        const out = ctx.zeros(dst, [2, 13, 9]);
        const o = ctx.view(out, [13, 9], [18, 2], 1);
        ctx.both((be, v) => be.copy(v(o), v(a)));
        ctx.exact('copy', `copy ${src} -> ${dst}`, out);
      }
    }
    // Transposes into dense outputs (the tiled path): 2-D, and a 3-D permutation with an offset.
    for (const dtype of ['f32', 'bf16', 'i64', 'bool'] as DType[]) {
      const t2 = ctx.tensor(dtype, sample(ctx, dtype, 37 * 129), [129, 37], [1, 129]);
      const o2 = ctx.zeros(dtype, [129, 37]);
      ctx.both((be, v) => be.copy(v(o2), v(t2)));
      ctx.exact('copy', `copy transpose ${dtype}`, o2);
      const t3 = ctx.tensor(dtype, sample(ctx, dtype, 3 * 17 * 33 + 5), [33, 3, 17], [1, 17 * 33, 33], 5);
      const o3 = ctx.zeros(dtype, [33, 3, 17]);
      ctx.both((be, v) => be.copy(v(o3), v(t3)));
      ctx.exact('copy', `copy permute ${dtype}`, o3);
    }
    // Broadcast source (stride 0) and a big contiguous copy (parallel path).
    const a = ctx.tensor('f32', ctx.randf(7), [5, 7], [0, 1]);
    const out = ctx.zeros('bf16', [5, 7]);
    ctx.both((be, v) => be.copy(v(out), v(a)));
    ctx.exact('copy', 'copy broadcast', out);
    const big = ctx.tensor('f32', ctx.randf(300 * 517), [300, 517]);
    const bo = ctx.zeros('bf16', [300, 517]);
    ctx.both((be, v) => be.copy(v(bo), v(big)));
    ctx.exact('copy', 'copy big f32 -> bf16', bo);
  });

  ctx.test(['fill'], 'fill: every storage dtype', () => {
    for (const dtype of storage) {
      for (const value of [3.7, -2.5, 1e10, 0, -0.1]) {
        const out = ctx.zeros(dtype, [3, 17]);
        ctx.both((be, v) => be.fill(v(out), value));
        ctx.exact('fill', `fill ${dtype} ${value}`, out);
      }
    }
  });

  ctx.test(['unary'], 'unary: every op on transposed, sliced and large inputs', () => {
    for (const op of UNARY) {
      const positive = op === 'log' || op === 'sqrt' || op === 'rsqrt';
      const data = ctx.randf(17 * 13, positive ? 0.01 : -9, 9);
      data[5] = 0;
      data[6] = -0;
      if (!positive) data[7] = -30;
      // [13, 17] viewed transposed as [17, 13]; then a sliced window with an offset.
      const a = ctx.ft(data, [17, 13], [1, 17]);
      const out = ctx.zeros(F, [17, 13]);
      ctx.both((be, v) => be.unary(op, v(out), v(a)));
      ctx.close('unary', `unary ${op} (transposed)`, out, 2e-6, 1e-12);
      const s = ctx.ft(data, [5, 4], [26, 3], 9);
      const so = ctx.zeros(F, [5, 4]);
      ctx.both((be, v) => be.unary(op, v(so), v(s)));
      ctx.close('unary', `unary ${op} (sliced)`, so, 2e-6, 1e-12);
      const big = ctx.rf([129, 1031], positive ? 0.01 : -12, 12);
      const bo = ctx.zeros(F, [129, 1031]);
      ctx.both((be, v) => be.unary(op, v(bo), v(big)));
      ctx.close('unary', `unary ${op} (large)`, bo, 2e-6, 1e-12);
    }
  });

  ctx.test(['scalar'], 'scalar: every op, float and i32 inputs', () => {
    for (const op of SCALAR) {
      const cmp = op.length === 4 && op !== 'rsub_s' && op !== 'pow_s';
      for (const s of [0.3, 2, -1.5, 0.5]) {
        const data = ctx.randf(3 * 17, op === 'pow_s' ? 0 : -3, 3);
        data[0] = s;
        data[1] = Math.fround(s);
        data[2] = NaN;
        const a = ctx.ft(data, [17, 3], [1, 17]);
        const out = ctx.zeros(cmp ? 'bool' : F, [17, 3]);
        ctx.both((be, v) => be.scalar(op, v(out), v(a), s));
        ctx.close('scalar', `scalar ${op} ${s}`, out, 1e-7, 0);
      }
      const ai = ctx.tensor('i32', ctx.randi(29, -5, 5), [29]);
      const oi = ctx.zeros(cmp ? 'bool' : F, [29]);
      ctx.both((be, v) => be.scalar(op, v(oi), v(ai), 2));
      ctx.exact('scalar', `scalar ${op} i32`, oi);
    }
  });

  ctx.test(['binary'], 'binary: every op with broadcasting (stride 0), transposes and offsets', () => {
    for (const op of BINARY) {
      const cmp = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'].includes(op);
      const lo = op === 'pow' ? 0 : -3;
      const shape = [3, 17, 5];
      // a: dense with an offset; b: broadcast over axis 1 (stride 0) and transposed inner axes.
      const ad = ctx.randf(3 * 17 * 5 + 4, lo, 3);
      const a = ctx.ft(ad, shape, [85, 5, 1], 4);
      const bd = ctx.randf(15, -3, 3);
      bd[0] = ad[4]!; // an exact tie for the comparisons
      const b = ctx.ft(bd, shape, [1, 0, 3]);
      const out = ctx.zeros(cmp ? 'bool' : F, shape);
      ctx.both((be, v) => be.binary(op, v(out), v(a), v(b)));
      ctx.close('binary', `binary ${op}`, out, 1e-7, 0);
      // scalar-broadcast on either side and a large dense case.
      const sa = ctx.ft(ctx.randf(1, 0.5, 2), [129, 33], [0, 0]);
      const sb = ctx.rf([129, 33], 0.1, 3);
      const so = ctx.zeros(cmp ? 'bool' : F, [129, 33]);
      ctx.both((be, v) => be.binary(op, v(so), v(sa), v(sb)));
      ctx.close('binary', `binary ${op} (scalar a)`, so, 1e-7, 0);
      ctx.both((be, v) => be.binary(op, v(so), v(sb), v(sa)));
      ctx.close('binary', `binary ${op} (scalar b)`, so, 1e-7, 0);
      const big1 = ctx.rf([257, 513], 0.1, 3);
      const big2 = ctx.rf([257, 513], 0.1, 3);
      const bo = ctx.zeros(cmp ? 'bool' : F, [257, 513]);
      ctx.both((be, v) => be.binary(op, v(bo), v(big1), v(big2)));
      ctx.close('binary', `binary ${op} (large)`, bo, 1e-7, 0);
    }
    // Mixed dtypes go through the generic path: i32 + float, bool * float.
    const ai = ctx.tensor('i32', ctx.randi(17, -9, 9), [17]);
    const bf = ctx.rf([17]);
    const o = ctx.zeros(F, [17]);
    ctx.both((be, v) => be.binary('add', v(o), v(ai), v(bf)));
    ctx.exact('binary', 'binary add i32 + float', o);
    const bm = ctx.tensor('bool', ctx.randb(17), [17]);
    ctx.both((be, v) => be.binary('mul', v(o), v(bm), v(bf)));
    ctx.exact('binary', 'binary mul bool * float', o);
    // In place (out is the first or the second input), as grad += g and the composites use it.
    const x = ctx.rf([7, 9]);
    const y = ctx.rf([7, 9]);
    ctx.both((be, v) => be.binary('sub', v(x), v(x), v(y)));
    ctx.exact('binary', 'binary in place (out = a)', x);
    ctx.both((be, v) => be.binary('div', v(y), v(x), v(y)));
    ctx.close('binary', 'binary in place (out = b)', y, 1e-7, 0);
  });

  ctx.test(['unaryWithGrad'], 'unaryWithGrad: every op, value and derivative of one pass, odd and large sizes', () => {
    for (const op of GRADS) {
      for (const shape of [
        [7, 13],
        [33, 1025],
      ] as [number, number][]) {
        const x = ctx.rf(shape, -8, 8);
        const out = ctx.zeros(F, shape);
        const grad = ctx.zeros(F, shape);
        ctx.both((be, v) => ctx.k(be).unaryWithGrad(op, v(out), v(grad), v(x)));
        // unary's and unaryGrad's tolerances: the same values, formed once.
        ctx.close('unaryWithGrad', `unaryWithGrad ${op} ${shape.join('x')} value`, out, 2e-6, 1e-14);
        ctx.close('unaryWithGrad', `unaryWithGrad ${op} ${shape.join('x')} derivative`, grad, 1e-5, 1e-7);
      }
    }
  });

  ctx.test(['unaryGrad'], 'unaryGrad: every op, strided x and dy', () => {
    for (const op of GRADS) {
      const x = ctx.ft(ctx.randf(13 * 7, -8, 8), [7, 13], [1, 7]);
      const dy = ctx.ft(ctx.randf(13 * 7 + 2, -2, 2), [7, 13], [13, 1], 2);
      const dx = ctx.zeros(F, [7, 13]);
      ctx.both((be, v) => be.unaryGrad(op, v(dx), v(x), v(dy)));
      ctx.close('unaryGrad', `unaryGrad ${op}`, dx, 1e-5, 1e-7);
      const bx = ctx.rf([33, 1025], -8, 8);
      const bdy = ctx.rf([33, 1025]);
      const bdx = ctx.zeros(F, [33, 1025]);
      ctx.both((be, v) => be.unaryGrad(op, v(bdx), v(bx), v(bdy)));
      ctx.close('unaryGrad', `unaryGrad ${op} (large)`, bdx, 1e-5, 1e-7);
    }
  });

  ctx.test(['unary', 'unaryGrad'], 'unary / unaryGrad: accuracy sweeps over wide ranges (exp, log, tanh, erf)', () => {
    const n = 20001;
    const grid = (lo: number, hi: number) => Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
    const sweeps: [(typeof UNARY)[number], Float32Array][] = [
      ['exp', grid(-105, 90)],
      ['log', Float32Array.from({ length: n }, (_, i) => Math.exp(-100 + (190 * i) / (n - 1)))],
      ['log', grid(0.5, 2)],
      ['tanh', grid(-40, 40)],
      ['sigmoid', grid(-40, 40)],
      ['silu', grid(-40, 40)],
      ['gelu', grid(-12, 12)],
      ['gelu_tanh', grid(-12, 12)],
    ];
    for (const [op, data] of sweeps) {
      const a = ctx.ft(data, [n]);
      const out = ctx.zeros(F, [n]);
      ctx.both((be, v) => be.unary(op, v(out), v(a)));
      // 2e-6 relative; the absolute floor covers tails where the js backend's own float64 formula
      // cancels (1 + erf(x) for x < −6) and is less accurate than the native one.
      ctx.close('unary', `unary ${op} sweep`, out, 2e-6, 1e-14);
    }
    for (const op of GRADS) {
      const x = ctx.ft(grid(-40, 40), [n]);
      const dy = ctx.ft(new Float32Array(n).fill(1), [n]);
      const dx = ctx.zeros(F, [n]);
      ctx.both((be, v) => be.unaryGrad(op, v(dx), v(x), v(dy)));
      // Derivatives cross zero (silu near x = −1.28): there the error is the float rounding of O(1) terms.
      ctx.close('unaryGrad', `unaryGrad ${op} sweep`, dx, 2e-6, 1e-7);
    }
  });

  ctx.test(['where'], 'where: broadcast condition, float, i32 and mixed dtypes', () => {
    const cond = ctx.tensor('bool', ctx.randb(17), [5, 17], [0, 1]);
    const a = ctx.rf([5, 17]);
    const b = ctx.ft(ctx.randf(5), [5, 17], [1, 0]);
    const out = ctx.zeros(F, [5, 17]);
    ctx.both((be, v) => be.where(v(out), v(cond), v(a), v(b)));
    ctx.exact('where', 'where float', out);
    const ai = ctx.tensor('i32', ctx.randi(85, -100, 100), [5, 17]);
    const bi = ctx.tensor('i32', ctx.randi(1, -100, 100), [5, 17], [0, 0]);
    const oi = ctx.zeros('i32', [5, 17]);
    ctx.both((be, v) => be.where(v(oi), v(cond), v(ai), v(bi)));
    ctx.exact('where', 'where i32', oi);
    ctx.both((be, v) => be.where(v(out), v(cond), v(ai), v(b)));
    ctx.exact('where', 'where i32/float -> float', out);
  });
}
