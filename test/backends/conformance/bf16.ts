// bf16 views (backend.ts, "bf16 activations"): every kernel of BF16_VIEW_KERNELS the models run, given
// bf16 inputs and outputs (and mixes with f32 where the models mix them), against the js reference,
// whose kernels take bf16 views through the widening fallback of src/backends/bf16-views.ts — the
// contract's definition: bf16 inputs widened exactly, the f32 kernel, each bf16 output rounded once
// (an output it accumulates into read widened first). A backend listing a kernel in bf16Kernels (cuda)
// is checked on its own bf16 kernel here; the others (native, the composites) on the fallback.
//
// Tolerances (|subject − ref| ≤ rtol·|ref| + atol·max|ref|, NaN matching NaN, infinities equal):
// - a bf16 output: rtol 2^-7, one bf16 ulp of the element (two f32 results a few f32 ulps apart may
//   round to neighbouring bf16 values), plus, where the f32 results themselves may differ by more than
//   an f32 ulp, the suite's f32 error of that kernel as a fraction of the largest |ref|: 1e-5 for GEMMs
//   (summation order), sums and norms, 1e-4 for norm backwards and attention without lowPrecision;
// - an f32 output computed from bf16 inputs: the suite's f32 tolerance of the kernel (1e-6 relative for
//   elementwise, 1e-5 of the largest |ref| for sums, GEMMs and norm weight gradients);
// - attention with lowPrecision: the suite's lowPrecision tolerance (attention.ts): every output within
//   1.5% of the largest |ref|, lse within 0.02;
// - a fused kernel run as its composite (native/js/cuda composites): fused() widens bf16 views around
//   the composite too, so it is the f32 composite rounded once: an ulp of the element plus the
//   composites' f32 error, 1e-5 of the largest |ref| (1e-4 for attention).

import assert from 'node:assert/strict';
import type { AttentionOpts, Backend, BinaryOp, UnaryGradOp, UnaryOp, View } from '../../../src/backends/backend.js';
import { BF16_VIEW_KERNELS } from '../../../src/backends/bf16-views.js';
import { type DType, bf16ToF32, f32ToBf16 } from '../../../src/backends/dtype.js';
import type { AttnCase } from '../../helpers/attention.js';
import { type Ctx, type Kernel, type Pair, contiguous, size } from './harness.js';

const ULP = 2 ** -7;
const COMPOSITE = 1e-5;

/** The values of a downloaded view (bf16 bits decoded). */
function values(be: Backend, v: View): Float64Array {
  const a = be.download(v);
  if (v.dtype === 'bf16') return Float64Array.from(a as Uint16Array, (b) => bf16ToF32(b));
  return Float64Array.from(a as ArrayLike<number>);
}

/** |got − want| ≤ rtol·|want| + atol·max|want| elementwise, naming the worst element. */
function near(ctx: Ctx, what: string, p: Pair, rtol: number, atol: number): void {
  const want = values(ctx.ref, p.ref);
  const got = values(ctx.subject, p.subject);
  assert.equal(got.length, want.length, `${what}: length`);
  let scale = 0;
  for (const r of want) if (Number.isFinite(r)) scale = Math.max(scale, Math.abs(r));
  let worst = -1;
  let worstExcess = 0;
  let maxDiff = 0;
  for (let i = 0; i < want.length; i++) {
    const r = want[i]!;
    const g = got[i]!;
    if (Number.isNaN(r) || Number.isNaN(g) || !Number.isFinite(r) || !Number.isFinite(g)) {
      if (!(Number.isNaN(r) && Number.isNaN(g)) && r !== g) [worst, worstExcess] = [i, Infinity];
      continue;
    }
    const d = Math.abs(g - r);
    maxDiff = Math.max(maxDiff, d);
    const excess = d - (rtol * Math.abs(r) + atol * scale);
    if (excess > worstExcess) [worst, worstExcess] = [i, excess];
  }
  if (worst >= 0)
    assert.fail(
      `${what}: element ${worst} is ${got[worst]} on ${ctx.name}, reference ${want[worst]} (max |diff| ${maxDiff.toExponential(3)}, tolerance ${rtol}·|ref| + ${atol}·${scale})`,
    );
}

/** Whether the subject runs `kernel` itself (else fused() gives its composite). */
function own(ctx: Ctx, kernel: Kernel): boolean {
  return typeof (ctx.subject as unknown as Record<string, unknown>)[kernel] === 'function';
}

/**
 * The check of an output of `kernel`: bf16 within an ulp plus `atol` of the largest |ref|, f32 within
 * `f32rtol` plus `atol`; a composite with at least COMPOSITE of the largest |ref|.
 */
function check(ctx: Ctx, kernel: Kernel, what: string, p: Pair, atol = 0, f32rtol = 1e-6): void {
  const rtol = p.ref.dtype === 'bf16' ? ULP : f32rtol;
  if (!own(ctx, kernel)) return near(ctx, `${what} (composite)`, p, rtol, Math.max(atol, COMPOSITE));
  near(ctx, what, p, rtol, atol);
}

export function bf16Tests(ctx: Ctx): void {
  // Random data of `dtype` (bf16 stores the rounded values) over a buffer of `n` elements (default: the shape's).
  const data = (dtype: DType, n: number, lo: number, hi: number): Float32Array | Uint16Array => {
    const f = ctx.randf(n, lo, hi);
    return dtype === 'bf16' ? Uint16Array.from(f, (x) => f32ToBf16(x)) : f;
  };
  const rt = (
    dtype: DType,
    shape: readonly number[],
    lo = -1,
    hi = 1,
    strides: readonly number[] = contiguous(shape),
    offset = 0,
    n = size(shape),
  ): Pair => ctx.tensor(dtype, data(dtype, n, lo, hi), shape, strides, offset);
  const zeros = (dtype: DType, shape: readonly number[]): Pair => ctx.zeros(dtype, shape);
  const tag = (...d: DType[]) => d.join(',');
  const has = (k: string) => BF16_VIEW_KERNELS.includes(k);

  ctx.test(['matmul'], 'bf16: matmul into bf16 out, with and without accumulate, bf16 and f32 operands', () => {
    assert.ok(has('matmul'));
    const cases: [number, number, number, number][] = [
      [2, 17, 33, 9],
      [1, 64, 128, 48],
      [3, 5, 1, 7],
      [1, 129, 65, 31],
    ];
    const pairs: [DType, DType][] = [
      ['bf16', 'bf16'],
      ['f32', 'bf16'],
      ['bf16', 'f32'],
      ['f32', 'f32'],
    ];
    for (const [bt, m, k, n] of cases) {
      for (const [da, db] of pairs) {
        for (const tb of [false, true]) {
          // a [bt, m, k] row-major; b [bt, k, n] row-major or read transposed from [bt, n, k] (a linear's weight).
          const a = rt(da, [bt, m, k]);
          const b = rt(db, [bt, k, n], -1, 1, tb ? [k * n, 1, k] : [k * n, n, 1]);
          for (const acc of [false, true]) {
            const out = rt('bf16', [bt, m, n]);
            ctx.both((be, v) => be.matmul(v(out), v(a), v(b), acc));
            check(ctx, 'matmul', `matmul ${bt}x${m}x${k}x${n} ${tag(da, db)} -> bf16 tb=${tb} acc=${acc}`, out, 1e-5);
          }
        }
      }
    }
    // A broadcast bf16 weight (batch stride 0) into an f32 out: the bf16 product as before.
    const a = rt('bf16', [3, 9, 40]);
    const w = rt('bf16', [3, 40, 11], -1, 1, [0, 11, 1]);
    const out = zeros('f32', [3, 9, 11]);
    ctx.both((be, v) => be.matmul(v(out), v(a), v(w), false));
    check(ctx, 'matmul', 'matmul bf16 x bf16 (broadcast) -> f32', out, 1e-5, 1e-5);
  });

  ctx.test(['unary'], 'bf16: unary on bf16 views (bf16 -> bf16, mixed with f32, transposed)', () => {
    assert.ok(has('unary'));
    const ops: UnaryOp[] = ['gelu', 'gelu_tanh', 'silu', 'exp', 'tanh', 'sigmoid', 'relu', 'neg', 'square', 'rsqrt'];
    for (const op of ops) {
      const lo = op === 'rsqrt' ? 0.01 : -5;
      for (const [dout, din] of [
        ['bf16', 'bf16'],
        ['f32', 'bf16'],
        ['bf16', 'f32'],
      ] as [DType, DType][]) {
        const a = rt(din, [37, 129], lo, 5);
        const out = zeros(dout, [37, 129]);
        ctx.both((be, v) => be.unary(op, v(out), v(a)));
        check(ctx, 'unary', `unary ${op} ${tag(dout, din)}`, out, 0, 2e-6);
      }
      // A transposed bf16 input, and in place on a bf16 view.
      const t = rt('bf16', [13, 17], lo, 5, [1, 13]);
      const to = zeros('bf16', [13, 17]);
      ctx.both((be, v) => be.unary(op, v(to), v(t)));
      check(ctx, 'unary', `unary ${op} bf16 transposed`, to);
      const ip = rt('bf16', [5, 33], lo, 5);
      ctx.both((be, v) => be.unary(op, v(ip), v(ip)));
      check(ctx, 'unary', `unary ${op} bf16 in place`, ip);
    }
  });

  ctx.test(['scalar'], 'bf16: scalar ops on bf16 views', () => {
    assert.ok(has('scalar'));
    for (const [op, s] of [
      ['mul_s', 0.125],
      ['mul_s', 1 / 3],
      ['add_s', 1e-5],
      ['add_s', -0.7],
      ['rsub_s', 1],
      ['pow_s', 2],
    ] as const) {
      for (const [dout, din] of [
        ['bf16', 'bf16'],
        ['f32', 'bf16'],
        ['bf16', 'f32'],
      ] as [DType, DType][]) {
        const a = rt(din, [9, 257], -3, 3);
        const out = zeros(dout, [9, 257]);
        ctx.both((be, v) => be.scalar(op, v(out), v(a), s));
        check(ctx, 'scalar', `scalar ${op} ${s} ${tag(dout, din)}`, out);
      }
      const ip = rt('bf16', [4, 31], -3, 3);
      ctx.both((be, v) => be.scalar(op, v(ip), v(ip), s));
      check(ctx, 'scalar', `scalar ${op} bf16 in place`, ip);
    }
    // Comparisons of a bf16 view write bool.
    const a = rt('bf16', [7, 9], -1, 1);
    const out = zeros('bool', [7, 9]);
    ctx.both((be, v) => be.scalar('gt_s', v(out), v(a), 0.25));
    ctx.exact('scalar', 'scalar gt_s bf16 -> bool', out);
  });

  ctx.test(['binary'], 'bf16: binary ops, [R, C] x [C] broadcast, every f32/bf16 mix of inputs and output', () => {
    assert.ok(has('binary'));
    const ops: BinaryOp[] = ['add', 'mul', 'sub', 'div', 'max'];
    const dts: DType[] = ['bf16', 'f32'];
    const [r, c] = [33, 130];
    for (const op of ops) {
      for (const dout of dts)
        for (const da of dts)
          for (const db of dts) {
            if (dout === 'f32' && da === 'f32' && db === 'f32') continue;
            const a = rt(da, [r, c], -2, 2);
            // b [C] broadcast over the rows (stride 0), away from 0 for div.
            const b = op === 'div' ? rt(db, [r, c], 0.5, 2, [0, 1], 0, c) : rt(db, [r, c], -2, 2, [0, 1], 0, c);
            const out = zeros(dout, [r, c]);
            ctx.both((be, v) => be.binary(op, v(out), v(a), v(b)));
            check(ctx, 'binary', `binary ${op} ${tag(dout, da, db)} broadcast [${r}, ${c}] x [${c}]`, out);
            // Same shapes, a transposed.
            const at = rt(da, [r, c], -2, 2, [1, r]);
            const full = op === 'div' ? rt(db, [r, c], 0.5, 2) : rt(db, [r, c], -2, 2);
            const o2 = zeros(dout, [r, c]);
            ctx.both((be, v) => be.binary(op, v(o2), v(at), v(full)));
            check(ctx, 'binary', `binary ${op} ${tag(dout, da, db)} transposed a`, o2);
          }
      // In place into a bf16 view (a residual add: x += f32 or bf16 branch).
      for (const db of dts) {
        const x = rt('bf16', [r, c], -2, 2);
        const b = op === 'div' ? rt(db, [r, c], 0.5, 2) : rt(db, [r, c], -2, 2);
        ctx.both((be, v) => be.binary(op, v(x), v(x), v(b)));
        check(ctx, 'binary', `binary ${op} bf16 += ${db} in place`, x);
      }
    }
    const a = rt('bf16', [5, 6]);
    const b = rt('f32', [5, 6]);
    const out = zeros('bool', [5, 6]);
    ctx.both((be, v) => be.binary('lt', v(out), v(a), v(b)));
    ctx.exact('binary', 'binary lt bf16, f32 -> bool', out);
  });

  ctx.test(['unaryGrad'], 'bf16: unaryGrad with bf16 x, dy, dx in any mix', () => {
    assert.ok(has('unaryGrad'));
    const ops: UnaryGradOp[] = ['gelu', 'gelu_tanh', 'silu', 'tanh', 'sigmoid', 'relu'];
    const mixes: [DType, DType, DType][] = [
      ['bf16', 'bf16', 'bf16'],
      ['f32', 'bf16', 'bf16'],
      ['bf16', 'bf16', 'f32'],
      ['bf16', 'f32', 'bf16'],
      ['f32', 'bf16', 'f32'],
    ];
    for (const op of ops)
      for (const [ddx, dx_, ddy] of mixes) {
        const x = rt(dx_, [19, 131], -5, 5);
        const dy = rt(ddy, [19, 131], -1, 1);
        const dx = zeros(ddx, [19, 131]);
        ctx.both((be, v) => be.unaryGrad(op, v(dx), v(x), v(dy)));
        check(ctx, 'unaryGrad', `unaryGrad ${op} dx,x,dy = ${tag(ddx, dx_, ddy)}`, dx, 1e-7, 1e-5);
      }
  });

  ctx.test(['where'], 'bf16: where with bf16 and f32 operands (broadcast)', () => {
    assert.ok(has('where'));
    const [r, c] = [17, 65];
    for (const [dout, da, db] of [
      ['bf16', 'bf16', 'bf16'],
      ['bf16', 'bf16', 'f32'],
      ['f32', 'bf16', 'f32'],
    ] as [DType, DType, DType][]) {
      const cond = ctx.tensor('bool', ctx.randb(r * c), [r, c]);
      const a = rt(da, [r, c], -3, 3);
      const b = rt(db, [r, c], -3, 3, [0, 1], 0, c);
      const out = zeros(dout, [r, c]);
      ctx.both((be, v) => be.where(v(out), v(cond), v(a), v(b)));
      ctx.exact('where', `where ${tag(dout, da, db)}`, out);
    }
  });

  ctx.test(['reduce'], 'bf16: reduce sum/max over rows and columns, bf16 in -> f32 or bf16 out', () => {
    assert.ok(has('reduce'));
    for (const [r, c] of [
      [17, 129],
      [300, 64],
      [3, 5000],
    ]) {
      for (const op of ['sum', 'max', 'min'] as const) {
        for (const dout of ['f32', 'bf16'] as DType[]) {
          for (const axis of [0, 1]) {
            const a = rt('bf16', [r!, c!], -2, 2);
            const shape = axis === 0 ? [1, c!] : [r!, 1];
            const out = zeros(dout, shape);
            ctx.both((be, v) => be.reduce(op, v(out), v(a), [axis]));
            check(ctx, 'reduce', `reduce ${op} [${r}, ${c}] axis ${axis} bf16 -> ${dout}`, out, 1e-6, 1e-6);
          }
        }
      }
    }
    // A transposed bf16 input, every axis.
    const t = rt('bf16', [33, 7], -2, 2, [1, 33]);
    const out = zeros('bf16', [1, 1]);
    ctx.both((be, v) => be.reduce('sum', v(out), v(t), [0, 1]));
    check(ctx, 'reduce', 'reduce sum all of a transposed bf16 view', out, 1e-6);
  });

  ctx.test(['argmax', 'topk', 'gather'], 'bf16: argmax, topk and gather of bf16 views', () => {
    assert.ok(has('argmax') && has('topk') && has('gather'));
    // bf16 rows with many ties (values on a coarse grid): the first index wins on every backend.
    const [r, n, k] = [13, 300, 5];
    const grid = Uint16Array.from(ctx.randf(r * n, -4, 4), (x) => f32ToBf16(Math.round(x * 8) / 8));
    const a = ctx.tensor('bf16', grid, [r, n]);
    const am = zeros('i32', [r]);
    ctx.both((be, v) => be.argmax(v(am), v(a)));
    ctx.exact('argmax', 'argmax of bf16 rows', am);
    for (const dv of ['bf16', 'f32'] as DType[]) {
      const vals = zeros(dv, [r, k]);
      const idx = zeros('i32', [r, k]);
      ctx.both((be, v) => be.topk(v(vals), v(idx), v(a), k));
      ctx.exact('topk', `topk of bf16 rows -> ${dv} values`, vals);
      ctx.exact('topk', `topk of bf16 rows -> ${dv} indices`, idx);
    }
    const index = ctx.tensor('i32', ctx.randi(r * 7, 0, n), [r, 7]);
    for (const [dout, din] of [
      ['bf16', 'bf16'],
      ['f32', 'bf16'],
      ['bf16', 'f32'],
    ] as [DType, DType][]) {
      const src = rt(din, [r, n], -3, 3);
      const out = zeros(dout, [r, 7]);
      ctx.both((be, v) => be.gather(v(out), v(src), v(index), 1));
      ctx.exact('gather', `gather ${tag(dout, din)} along axis 1`, out);
    }
  });

  ctx.test(['embedding', 'embeddingBackward'], 'bf16: embedding into bf16 out, backward from bf16 dy', () => {
    assert.ok(has('embedding') && has('embeddingBackward'));
    const [V, C, N] = [50, 96, 37];
    const ids = ctx.tensor('i32', ctx.randi(N, 0, V), [N]);
    for (const dt of ['bf16', 'f32'] as DType[]) {
      const table = rt(dt, [V, C], -2, 2);
      const out = zeros('bf16', [N, C]);
      ctx.both((be, v) => be.embedding(v(out), v(table), v(ids)));
      ctx.exact('embedding', `embedding ${dt} table -> bf16 out`, out);
    }
    const dy = rt('bf16', [N, C], -1, 1);
    const dw = rt('f32', [V, C], -1, 1);
    ctx.both((be, v) => be.embeddingBackward(v(dw), v(dy), v(ids)));
    check(ctx, 'embeddingBackward', 'embeddingBackward bf16 dy -> f32 dweight', dw, 1e-6, 1e-6);
  });

  ctx.test(
    ['layerNorm', 'layerNormBackward', 'rmsNorm', 'rmsNormBackward'],
    'bf16: layerNorm and rmsNorm on bf16 x, out, dy, dx (f32 weights, statistics and weight gradients)',
    () => {
      assert.ok(['layerNorm', 'layerNormBackward', 'rmsNorm', 'rmsNormBackward'].every(has));
      for (const [r, c] of [
        [17, 129],
        [9, 1536],
        [1, 3],
      ]) {
        for (const [dx_, dout] of [
          ['bf16', 'bf16'],
          ['bf16', 'f32'],
          ['f32', 'bf16'],
        ] as [DType, DType][]) {
          const t = `[${r}, ${c}] x,out = ${tag(dx_, dout)}`;
          const x = rt(dx_, [r!, c!], -2, 3);
          const w = rt('f32', [c!], 0.5, 1.5);
          const b = rt('f32', [c!], -0.5, 0.5);
          // LayerNorm.
          const out = zeros(dout, [r!, c!]);
          const mean = zeros('f32', [r!]);
          const rstd = zeros('f32', [r!]);
          ctx.both((be, v) => ctx.k(be).layerNorm(v(out), v(mean), v(rstd), v(x), v(w), v(b), 1e-5));
          check(ctx, 'layerNorm', `layerNorm out ${t}`, out, 1e-5, 1e-5);
          check(ctx, 'layerNorm', `layerNorm rstd ${t}`, rstd, 1e-6, 1e-5);
          const dy = rt(dout, [r!, c!], -1, 1);
          const dx = zeros(dx_, [r!, c!]);
          const dw = rt('f32', [c!]);
          const db = rt('f32', [c!]);
          ctx.both((be, v) => ctx.k(be).layerNormBackward(v(dx), v(dw), v(db), v(dy), v(x), v(w), v(mean), v(rstd)));
          check(ctx, 'layerNormBackward', `layerNormBackward dx ${t}`, dx, 1e-4, 1e-4);
          check(ctx, 'layerNormBackward', `layerNormBackward dw ${t}`, dw, 1e-5, 1e-5);
          check(ctx, 'layerNormBackward', `layerNormBackward db ${t}`, db, 1e-5, 1e-5);
          // RMSNorm, with and without weight.
          for (const wt of [w, null]) {
            const ro = zeros(dout, [r!, c!]);
            const rr = zeros('f32', [r!]);
            ctx.both((be, v) => ctx.k(be).rmsNorm(v(ro), v(rr), v(x), wt ? v(wt) : null, 1e-6));
            check(ctx, 'rmsNorm', `rmsNorm out ${t} w=${!!wt}`, ro, 1e-5, 1e-5);
            const rdx = zeros(dx_, [r!, c!]);
            const rdw = rt('f32', [c!]);
            ctx.both((be, v) =>
              ctx.k(be).rmsNormBackward(v(rdx), wt ? v(rdw) : null, v(dy), v(x), wt ? v(wt) : null, v(rr)),
            );
            check(ctx, 'rmsNormBackward', `rmsNormBackward dx ${t} w=${!!wt}`, rdx, 1e-4, 1e-4);
            if (wt) check(ctx, 'rmsNormBackward', `rmsNormBackward dw ${t}`, rdw, 1e-5, 1e-5);
          }
        }
      }
    },
  );

  ctx.test(['rope'], 'bf16: rope on bf16 x (read in place from a fused projection) into bf16 out', () => {
    assert.ok(has('rope'));
    const [B, T, H, D] = [2, 9, 3, 16];
    const ang = ctx.randf(B * T * (D / 2), -3, 3);
    const cos = ctx.tensor('f32', Float32Array.from(ang, Math.cos), [B, T, D / 2]);
    const sin = ctx.tensor('f32', Float32Array.from(ang, Math.sin), [B, T, D / 2]);
    for (const [dx_, dout] of [
      ['bf16', 'bf16'],
      ['bf16', 'f32'],
      ['f32', 'bf16'],
    ] as [DType, DType][]) {
      for (const inverse of [false, true]) {
        // x [B, T, H, D] inside a [B, T, 2H, D] buffer (q of a fused qk projection).
        const x = rt(dx_, [B, T, H, D], -2, 2, [T * 2 * H * D, 2 * H * D, D, 1], 0, B * T * 2 * H * D);
        const out = zeros(dout, [B, T, H, D]);
        ctx.both((be, v) => ctx.k(be).rope(v(out), v(x), v(cos), v(sin), inverse));
        check(ctx, 'rope', `rope ${tag(dx_, dout)} inverse=${inverse}`, out, 0, 1e-6);
      }
    }
  });

  ctx.test(['gatedActivation', 'gatedActivationBackward'], 'bf16: the gated MLP activation on bf16 views', () => {
    assert.ok(has('gatedActivation') && has('gatedActivationBackward'));
    for (const op of ['silu', 'gelu_tanh'] as UnaryGradOp[]) {
      for (const [dg, du, dout] of [
        ['bf16', 'bf16', 'bf16'],
        ['bf16', 'f32', 'bf16'],
        ['bf16', 'bf16', 'f32'],
      ] as [DType, DType, DType][]) {
        // gate at an offset of 3 elements (a misaligned start), up and dy aligned; 3913 elements (8k + 1).
        for (const at of [0, 3]) {
          const shape = [13, 301];
          const gate = rt(dg, shape, -6, 6, contiguous(shape), at, size(shape) + at);
          const up = rt(du, shape, -2, 2);
          const out = zeros(dout, shape);
          const t = `${op} ${tag(dg, du, dout)} gate at ${at}`;
          ctx.both((be, v) => ctx.k(be).gatedActivation(v(out), v(gate), v(up), op));
          check(ctx, 'gatedActivation', `gatedActivation ${t}`, out, 0, 2e-6);
          const dy = rt(dout, shape);
          const dgate = zeros(dg, shape);
          const dup = zeros(du, shape);
          ctx.both((be, v) => ctx.k(be).gatedActivationBackward(v(dgate), v(dup), v(gate), v(up), v(dy), op));
          check(ctx, 'gatedActivationBackward', `gatedActivationBackward dgate ${t}`, dgate, 1e-7, 1e-5);
          check(ctx, 'gatedActivationBackward', `gatedActivationBackward dup ${t}`, dup, 0, 2e-6);
        }
      }
    }
  });

  ctx.test(
    ['scaleFold', 'scaleGrads'],
    'bf16: scale folds into a bf16 weight and their gradients from bf16 views',
    () => {
      assert.ok(has('scaleFold') && has('scaleGrads'));
      // 1024 columns: a backend's 8-wide path (f32 master into bf16); 1030: its scalar path.
      for (const [o, k, dw, dout] of [
        [41, 1024, 'f32', 'bf16'],
        [41, 1030, 'f32', 'bf16'],
        [41, 1030, 'bf16', 'bf16'],
        [41, 1030, 'bf16', 'f32'],
      ] as [number, number, DType, DType][]) {
        const r = rt('f32', [o], -2, 2);
        const c = rt('f32', [k], -2, 2);
        const w = rt(dw, [o, k]);
        const out = zeros(dout, [o, k]);
        ctx.both((be, v) => ctx.k(be).scaleFold(v(out), v(w), v(r), v(c)));
        check(ctx, 'scaleFold', `scaleFold [${o}, ${k}] ${tag(dw, dout)}`, out);
        const g = rt(dout, [o, k]);
        const rg = zeros('f32', [o]);
        const cg = zeros('f32', [k]);
        ctx.both((be, v) => ctx.k(be).scaleGrads(v(rg), v(cg), v(g), v(w), v(r), v(c)));
        check(ctx, 'scaleGrads', `scaleGrads rowGrad ${tag(dw, dout)}`, rg, 1e-5, 1e-5);
        check(ctx, 'scaleGrads', `scaleGrads colGrad ${tag(dw, dout)}`, cg, 1e-5, 1e-5);
      }
    },
  );

  ctx.test(['scaleAdd'], 'bf16: scaleAdd of bf16 activations (an f32 scale)', () => {
    assert.ok(has('scaleAdd'));
    for (const [da, dv, dout] of [
      ['bf16', 'bf16', 'bf16'],
      ['f32', 'bf16', 'bf16'],
      ['bf16', 'bf16', 'f32'],
    ] as [DType, DType, DType][]) {
      const a = rt(da, [9, 300]);
      const v = rt(dv, [9, 300], -2, 2);
      const sc = rt('f32', [300], -2, 2);
      const out = zeros(dout, [9, 300]);
      ctx.both((be, p) => ctx.k(be).scaleAdd(p(out), p(a), p(v), p(sc)));
      check(ctx, 'scaleAdd', `scaleAdd ${tag(da, dv, dout)}`, out);
    }
  });

  ctx.test(['scaleBackward'], 'bf16: scaleBackward writing a bf16 dv, and reading bf16 dy and v', () => {
    assert.ok(has('scaleBackward'));
    for (const [dy, dv, dd] of [
      ['f32', 'f32', 'bf16'],
      ['bf16', 'bf16', 'f32'],
      ['bf16', 'bf16', 'bf16'],
    ] as [DType, DType, DType][]) {
      const g = rt(dy, [70, 1030]);
      const v = rt(dv, [70, 1030], -2, 2);
      const sc = rt('f32', [1030], -2, 2);
      const out = zeros(dd, [70, 1030]);
      const ds = zeros('f32', [1030]);
      ctx.both((be, p) => ctx.k(be).scaleBackward(p(out), p(ds), p(g), p(v), p(sc)));
      check(ctx, 'scaleBackward', `scaleBackward dv ${tag(dy, dv, dd)}`, out);
      check(ctx, 'scaleBackward', `scaleBackward ds ${tag(dy, dv, dd)}`, ds, 1e-5, 1e-5);
    }
  });

  ctx.test(['dropout'], 'bf16: dropout of bf16 views (the f32 Philox mask)', () => {
    assert.ok(has('dropout'));
    for (const [da, dout] of [
      ['bf16', 'bf16'],
      ['bf16', 'f32'],
      ['f32', 'bf16'],
    ] as [DType, DType][]) {
      for (const [p, offset] of [
        [0.1, 0],
        [0.5, 2 ** 33 + 3],
      ]) {
        const a = rt(da, [13, 77], -2, 2);
        const out = zeros(dout, [13, 77]);
        ctx.both((be, v) => ctx.k(be).dropout(v(out), v(a), p!, 99, offset!));
        check(ctx, 'dropout', `dropout ${tag(da, dout)} p=${p} offset=${offset}`, out, 0, 2.5e-7);
      }
    }
  });

  ctx.test(['attention', 'attentionBackward'], 'bf16: attention on bf16 q, k, v, out and gradients', () => {
    assert.ok(has('attention') && has('attentionBackward'));
    type Case = AttnCase & { low: boolean }; // with lowPrecision or without
    const base: Case = {
      b: 2,
      tq: 70,
      tk: 70,
      hq: 4,
      hkv: 2,
      d: 64,
      causal: true,
      window: 0,
      mask: false,
      fused: false,
      low: true,
      p: 0,
    };
    const cases: Partial<Case>[] = [
      {},
      { d: 32, causal: false, mask: true },
      { d: 128, tq: 130, tk: 130, hkv: 1, fused: true },
      { d: 80, mask: true, hkv: 4 },
      { tq: 9, tk: 140, p: 0.2 },
      // What CUDA hands to cuDNN's fused attention (no mask, no dropout): causal with Tq < Tk (aligned
      // bottom-right), not causal, a sliding window, a window wider than the sequence, groups of 4.
      { tq: 9, tk: 140 },
      { causal: false, tq: 64, tk: 128 },
      { tq: 100, tk: 100, window: 20, fused: true },
      { d: 128, tq: 130, tk: 130, window: 200 },
      { hq: 8, hkv: 2, tq: 256, tk: 256 },
      { low: false, d: 16, tq: 33, tk: 33, mask: true },
      { low: false, d: 64, fused: true },
    ];
    for (const part of cases) {
      const c = { ...base, ...part };
      const label = JSON.stringify(c);
      let q: Pair;
      let k: Pair;
      let v: Pair;
      if (c.fused) {
        const h = c.hq + 2 * c.hkv;
        const st = [c.tq * h * c.d, h * c.d, c.d, 1];
        const qkv = rt('bf16', [c.b * c.tq * h * c.d], -1.5, 1.5);
        q = ctx.view(qkv, [c.b, c.tq, c.hq, c.d], st, 0);
        k = ctx.view(qkv, [c.b, c.tk, c.hkv, c.d], st, c.hq * c.d);
        v = ctx.view(qkv, [c.b, c.tk, c.hkv, c.d], st, (c.hq + c.hkv) * c.d);
      } else {
        q = rt('bf16', [c.b, c.tq, c.hq, c.d], -1.5, 1.5);
        k = rt('bf16', [c.b, c.tk, c.hkv, c.d], -1.5, 1.5);
        v = rt('bf16', [c.b, c.tk, c.hkv, c.d]);
      }
      let keyMask: Pair | null = null;
      if (c.mask) {
        const m = ctx.randb(c.b * c.tk, 0.7);
        for (let j = 0; j < c.tk; j++) m[j] = 0; // batch 0 sees no key: out 0, lse −∞
        keyMask = ctx.tensor('bool', m, [c.b, c.tk]);
      }
      const opts = (p: (x: Pair) => View): AttentionOpts => ({
        scale: 1 / Math.sqrt(c.d),
        causal: c.causal,
        window: c.window,
        keyMask: keyMask ? p(keyMask) : null,
        dropout: c.p > 0 ? { p: c.p, seed: 5, offset: 17 } : null,
        lowPrecision: c.low,
      });
      const out = zeros('bf16', [c.b, c.tq, c.hq, c.d]);
      const lse = zeros('f32', [c.b, c.hq, c.tq]);
      ctx.both((be, p) => ctx.k(be).attention(p(out), p(lse), p(q), p(k), p(v), opts(p)));
      const dout = rt('bf16', [c.b, c.tq, c.hq, c.d]);
      const dq = zeros('bf16', [c.b, c.tq, c.hq, c.d]);
      const dk = zeros('bf16', [c.b, c.tk, c.hkv, c.d]);
      const dv = zeros('bf16', [c.b, c.tk, c.hkv, c.d]);
      ctx.both((be, p) =>
        ctx.k(be).attentionBackward(p(dq), p(dk), p(dv), p(dout), p(q), p(k), p(v), p(out), p(lse), opts(p)),
      );
      const outputs: [string, Pair][] = [
        ['out', out],
        ['dq', dq],
        ['dk', dk],
        ['dv', dv],
      ];
      if (!own(ctx, 'attention')) {
        // The f32 composite on widened views, each output rounded once.
        for (const [what, t] of outputs) near(ctx, `bf16 attention ${what} ${label} (composite)`, t, ULP, 1e-4);
        nearAbs(ctx, `bf16 attention lse ${label} (composite)`, lse, 0.02);
      } else if (c.low) {
        // The suite's lowPrecision tolerance (attention.ts): 1.5% of the largest |ref|, lse within 0.02.
        for (const [what, t] of outputs) near(ctx, `bf16 attention ${what} ${label}`, t, 0, 0.015);
        nearAbs(ctx, `bf16 attention lse ${label}`, lse, 0.02);
      } else {
        check(ctx, 'attention', `bf16 attention out ${label}`, out, 1e-4);
        check(ctx, 'attention', `bf16 attention lse ${label}`, lse, 1e-5, 1e-5);
        for (const [what, t] of [
          ['dq', dq],
          ['dk', dk],
          ['dv', dv],
        ] as [string, Pair][])
          check(ctx, 'attentionBackward', `bf16 attention ${what} ${label}`, t, 1e-4);
      }
    }
  });
}

/** |got − want| ≤ atol elementwise (lse; −∞ must match). */
function nearAbs(ctx: Ctx, what: string, p: Pair, atol: number): void {
  const want = values(ctx.ref, p.ref);
  const got = values(ctx.subject, p.subject);
  for (let i = 0; i < want.length; i++) {
    const r = want[i]!;
    const g = got[i]!;
    const ok = r === g || (Number.isNaN(r) && Number.isNaN(g)) || Math.abs(g - r) <= atol;
    if (!ok) assert.fail(`${what}: element ${i} is ${g} on ${ctx.name}, reference ${r} (tolerance ${atol})`);
  }
}
