// The native GEMM paths against float64 references: f32 products through oneDNN's matmul primitive
// (one product of ≥ 16 rows and ≥ 2^18 multiply-adds with a k-dense b) and through dnnl_sgemm
// (VERA_F32_GEMM=sgemm, and every other layout),
// on every operand layout, batch broadcast and accumulation. And matmul with a bf16 operand, which
// computes in bf16 (the contract's rule, torch.autocast's arithmetic): the
// f32 operand is rounded to bf16, products accumulate in f32. The js and native kernels against a float64
// reference on the bf16-rounded values, native against native f32 on those values (identical products up
// to summation order), over the decoding kernels (m ≤ 4, dense k or n axis), oneDNN's bf16 matmul, the
// widened-panel fallback (VERA_BF16_GEMM=panels), transposed and strided views, batch broadcast, a bf16 a,
// and accumulation; then ops.linear / ops.matmul with bf16 weights, dX through them, and the errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import type { Backend, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { bf16ToF32, f32ToBf16 } from '../../src/backends/dtype.js';
import { mulberry32 } from '../../src/pretrain/data.js';
import { scope } from '../../src/tensor/scope.js';
import { nativeSkip } from '../helpers/backends.js';

const rand = mulberry32(20261128);
const randf = (n: number): Float32Array => Float32Array.from({ length: n }, () => 2 * rand() - 1);
const randBf16 = (n: number): Uint16Array => Uint16Array.from(randf(n), f32ToBf16);

interface Operand {
  data: Float32Array | Uint16Array;
  dtype: 'f32' | 'bf16';
  shape: [number, number, number];
  strides: [number, number, number];
  offset: number;
}

/** A view of `op` on a backend (a fresh buffer holding its data). */
function put(be: Backend, op: Operand): View {
  const buf = be.alloc(op.dtype, op.data.length);
  be.upload(buf, op.dtype, 0, op.data);
  return { buf, dtype: op.dtype, offset: op.offset, shape: op.shape, strides: op.strides };
}

/**
 * Element (p, i, j) of an operand as the GEMM sees it: bf16 widened; f32 rounded to bf16 in a bf16 GEMM
 * (`round`), else as stored.
 */
function at(op: Operand, p: number, i: number, j: number, round = true): number {
  const x = op.data[op.offset + p * op.strides[0] + i * op.strides[1] + j * op.strides[2]]!;
  return op.dtype === 'bf16' ? bf16ToF32(x) : round ? bf16ToF32(f32ToBf16(x)) : x;
}

/** float64 a·b (+ out0) of the values a bf16 GEMM multiplies (an f32 one's with round = false), and Σ|a·b| per element. */
function reference(
  a: Operand,
  b: Operand,
  out0: Float32Array | null,
  round = true,
): { want: Float64Array; mag: Float64Array } {
  const [bt, m, k] = a.shape;
  const n = b.shape[2];
  const want = new Float64Array(bt * m * n);
  const mag = new Float64Array(bt * m * n);
  for (let p = 0; p < bt; p++)
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = out0 ? out0[(p * m + i) * n + j]! : 0;
        let g = Math.abs(s);
        for (let q = 0; q < k; q++) {
          const v = at(a, p, i, q, round) * at(b, p, q, j, round);
          s += v;
          g += Math.abs(v);
        }
        want[(p * m + i) * n + j] = s;
        mag[(p * m + i) * n + j] = g;
      }
  return { want, mag };
}

function run(be: Backend, a: Operand, b: Operand, out0: Float32Array | null): Float32Array {
  const [bt, m] = a.shape;
  const n = b.shape[2];
  const out = put(be, {
    data: out0 ?? new Float32Array(bt * m * n),
    dtype: 'f32',
    shape: [bt, m, n],
    strides: [m * n, n, 1],
    offset: 0,
  });
  be.matmul(out, put(be, a), put(be, b), out0 !== null);
  return be.download(out) as Float32Array;
}

/** |got − want| ≤ tol·Σ|a·b| + 1e-30 per element (f32 summation of k terms), naming the worst one. */
function check(what: string, got: Float32Array, want: Float64Array, mag: Float64Array, tol: number): void {
  for (let i = 0; i < want.length; i++) {
    const err = Math.abs(got[i]! - want[i]!);
    if (!(err <= tol * mag[i]! + 1e-30))
      assert.fail(
        `${what}: element ${i} is ${got[i]}, reference ${want[i]} (|error| ${err.toExponential(3)}, Σ|a·b| ${mag[i]!.toExponential(3)})`,
      );
  }
}

type BLayout = 'rows' | 'cols' | 'strided';

/** b [bt, k, n] in bf16: 'rows' is n-dense ([k, n] row-major), 'cols' k-dense (a linear's [n, k] weight transposed), 'strided' neither. */
function bOperand(bt: number, k: number, n: number, layout: BLayout, broadcast: boolean): Operand {
  const batches = broadcast ? 1 : bt;
  const offset = 3;
  if (layout === 'rows')
    return {
      data: randBf16(offset + batches * k * n),
      dtype: 'bf16',
      shape: [bt, k, n],
      strides: [broadcast ? 0 : k * n, n, 1],
      offset,
    };
  if (layout === 'cols')
    return {
      data: randBf16(offset + batches * k * n),
      dtype: 'bf16',
      shape: [bt, k, n],
      strides: [broadcast ? 0 : k * n, 1, k],
      offset,
    };
  // Every other column of a [k, 2n] matrix: neither axis is dense.
  return {
    data: randBf16(offset + batches * k * 2 * n),
    dtype: 'bf16',
    shape: [bt, k, n],
    strides: [broadcast ? 0 : 2 * k * n, 2 * n, 2],
    offset,
  };
}

/** The values the bf16 GEMM multiplies, as an f32 operand in the same layout (bf16 widened, f32 rounded). */
const rounded = (x: Operand): Operand => ({
  ...x,
  dtype: 'f32',
  data:
    x.dtype === 'bf16'
      ? Float32Array.from(x.data as Uint16Array, bf16ToF32)
      : Float32Array.from(x.data as Float32Array, (v) => bf16ToF32(f32ToBf16(v))),
});

/** The same values as an operand stored in bf16 (f32 values rounded). */
const asBf16 = (x: Operand): Operand =>
  x.dtype === 'bf16' ? x : { ...x, dtype: 'bf16', data: Uint16Array.from(x.data as Float32Array, f32ToBf16) };

function aOperand(bt: number, m: number, k: number, transposed: boolean): Operand {
  return transposed
    ? { data: randf(1 + bt * m * k), dtype: 'f32', shape: [bt, m, k], strides: [m * k, 1, m], offset: 1 }
    : { data: randf(1 + bt * m * k), dtype: 'f32', shape: [bt, m, k], strides: [m * k, k, 1], offset: 1 };
}

const js = new JsBackend();
const native = nativeAvailable() ? getBackend('native') : null;
const skip = nativeSkip();

// [bt, m, k, n]: decoding rows (m ≤ 4) with k and n around the 16-lane edges, and the panel path
// (m > 4, or a strided b) across its 512-deep and 256-wide panel edges.
const SHAPES: [number, number, number, number][] = [
  [1, 1, 1, 1],
  [1, 1, 17, 33],
  [1, 2, 16, 7],
  [1, 3, 33, 17],
  [1, 4, 64, 70],
  [2, 1, 40, 5],
  [1, 5, 19, 23],
  [3, 37, 23, 29],
  [1, 9, 600, 300],
];

/** Runs fn with the environment variable `name` set to `value` (undefined: unset), restoring it after. */
function withEnv<T>(name: string, value: string | undefined, fn: () => T): T {
  const prev = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return fn();
  } finally {
    if (prev === undefined) delete process.env[name];
    else process.env[name] = prev;
  }
}

/** Runs fn with VERA_BF16_GEMM set for `mode` ('panels' forces the native fallback path). */
function withMode<T>(mode: 'auto' | 'panels', fn: () => T): T {
  return withEnv('VERA_BF16_GEMM', mode === 'panels' ? 'panels' : undefined, fn);
}

describe('f32 matmul on the native paths', () => {
  // [bt, m, k, n], each ≥ 16 rows and ≥ 2^18 multiply-adds (the primitive's), batched ones with b shared.
  const BIG: [number, number, number, number][] = [
    [1, 64, 96, 80],
    [1, 33, 129, 70],
    [3, 20, 70, 200],
  ];
  for (const path of ['oneDNN matmul primitive', 'dnnl_sgemm'] as const) {
    test(
      `${path}: equals the float64 product on every layout, with b shared over the batch, accumulating`,
      { skip },
      () => {
        const nb = native!;
        withEnv('VERA_F32_GEMM', path === 'dnnl_sgemm' ? 'sgemm' : undefined, () => {
          for (const [bt, m, k, n] of BIG) {
            for (const layout of ['rows', 'cols', 'strided'] as BLayout[]) {
              const b = rounded(bOperand(bt, k, n, layout, bt > 1 && layout !== 'strided'));
              for (const ta of [false, true]) {
                const a = aOperand(bt, m, k, ta);
                const out0 = randf(bt * m * n);
                for (const acc of [false, true]) {
                  const { want, mag } = reference(a, b, acc ? out0 : null, false);
                  check(
                    `${path} ${bt}x${m}x${k}x${n} b=${layout} ta=${ta} acc=${acc}`,
                    run(nb, a, b, acc ? out0 : null),
                    want,
                    mag,
                    4 * k * 2 ** -24 + 1e-7,
                  );
                }
              }
            }
          }
        });
      },
    );
  }
});

/** a with its batch axis broadcast (stride 0), for bt > 1. */
const broadcastA = (a: Operand): Operand => ({ ...a, strides: [0, a.strides[1], a.strides[2]] });

/** The (a, b) operand pairs of one shape: f32 or bf16 a (plain, transposed, batch-broadcast) × bf16 b layouts, and f32 b with a bf16 a. */
function pairs(bt: number, m: number, k: number, n: number): { what: string; a: Operand; b: Operand }[] {
  const out: { what: string; a: Operand; b: Operand }[] = [];
  for (const layout of ['rows', 'cols', 'strided'] as BLayout[]) {
    for (const bcast of bt > 1 ? [false, true] : [false]) {
      const b = bOperand(bt, k, n, layout, bcast && layout !== 'strided');
      for (const ta of [false, true]) {
        const a = aOperand(bt, m, k, ta);
        out.push({ what: `a f32 ta=${ta}, b ${layout} bcast=${bcast}`, a, b });
        out.push({ what: `a bf16 ta=${ta}, b ${layout} bcast=${bcast}`, a: asBf16(a), b });
      }
      if (bt > 1)
        out.push({
          what: `a f32 batch-broadcast, b ${layout} bcast=${bcast}`,
          a: broadcastA(aOperand(bt, m, k, false)),
          b,
        });
    }
  }
  out.push({
    what: 'a bf16, b f32',
    a: asBf16(aOperand(bt, m, k, false)),
    b: rounded(bOperand(bt, k, n, 'rows', false)),
  });
  const bF32 = bOperand(bt, k, n, 'cols', false);
  out.push({
    what: 'a bf16, b f32 unrounded',
    a: asBf16(aOperand(bt, m, k, true)),
    b: { ...bF32, dtype: 'f32', data: randf(bF32.data.length) },
  });
  return out;
}

describe('matmul with a bf16 operand', () => {
  test('js: equals the float64 product of the bf16-rounded operands (layouts, broadcast, accumulate)', () => {
    for (const [bt, m, k, n] of SHAPES.slice(0, 8)) {
      for (const { what, a, b } of pairs(bt, m, k, n)) {
        const out0 = randf(bt * m * n);
        for (const acc of [false, true]) {
          const { want, mag } = reference(a, b, acc ? out0 : null);
          check(`js ${bt}x${m}x${k}x${n} ${what} acc=${acc}`, run(js, a, b, acc ? out0 : null), want, mag, 1e-6);
        }
      }
    }
  });

  test('js and native: the f32 operand really is rounded (the unrounded product differs)', () => {
    const [m, k, n] = [8, 64, 16];
    const a = aOperand(1, m, k, false);
    const b = bOperand(1, k, n, 'cols', false);
    const ref = reference(a, b, null); // of the rounded values
    let exact = 0;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let q = 0; q < k; q++) s += (a.data[a.offset + i * k + q] as number) * at(b, 0, q, j);
        exact = Math.max(exact, Math.abs(s - ref.want[i * n + j]!));
      }
    // Rounding a to bf16 moves each product by up to 2^-9 relative: far above f32 summation error.
    assert.ok(exact > 1e-4, `the bf16 rounding of a changed the product by only ${exact}`);
    for (const be of [js, ...(native ? [native] : [])]) {
      const got = run(be, a, b, null);
      check(`${be.name} rounded`, got, ref.want, ref.mag, 4 * k * 2 ** -24 + 1e-7);
    }
  });

  for (const mode of ['auto', 'panels'] as const) {
    test(`native (${mode}): equals the reference and native f32 on the rounded values`, { skip }, () => {
      const nb = native!;
      withMode(mode, () => {
        for (const [bt, m, k, n] of SHAPES) {
          for (const { what, a, b } of pairs(bt, m, k, n)) {
            const out0 = randf(bt * m * n);
            for (const acc of [false, true]) {
              const name = `native ${mode} ${bt}x${m}x${k}x${n} ${what} acc=${acc}`;
              const got = run(nb, a, b, acc ? out0 : null);
              const { want, mag } = reference(a, b, acc ? out0 : null);
              check(name, got, want, mag, 4 * k * 2 ** -24 + 1e-7);
              // The f32 GEMM on the rounded values: the same products, another summation order.
              const f32 = Float64Array.from(run(nb, rounded(a), rounded(b), acc ? out0 : null));
              check(`${name} vs f32`, got, f32, mag, 8 * k * 2 ** -24 + 1e-7);
            }
          }
        }
      });
    });
  }

  test('native: a GPT-2-sized decode row and a prefill block agree with f32 on the rounded values', { skip }, () => {
    const nb = native!;
    for (const [m, k, n] of [
      [1, 768, 2304],
      [128, 768, 3072],
    ] as const) {
      for (const layout of ['rows', 'cols'] as BLayout[]) {
        const a = aOperand(1, m, k, false);
        const b = bOperand(1, k, n, layout, false);
        const got = run(nb, a, b, null);
        const f32 = run(nb, rounded(a), rounded(b), null);
        // Relative to the largest output: single elements near 0 carry the whole sum's rounding.
        let [worst, scale] = [0, 0];
        for (let i = 0; i < got.length; i++) {
          worst = Math.max(worst, Math.abs(got[i]! - f32[i]!));
          scale = Math.max(scale, Math.abs(f32[i]!));
        }
        assert.ok(
          worst < 1e-5 * scale,
          `${m}x${k}x${n} ${layout}: bf16 vs f32 differ by ${worst} (largest output ${scale})`,
        );
      }
    }
  });

  test('native: says which bf16 GEMM it uses', { skip }, () => {
    const info = native!.info?.();
    assert.match(info?.['bf16Gemm'] ?? '', /^(oneDNN \w+|widened panels \+ sgemm)/);
    withMode('panels', () => assert.match(native!.info!()['bf16Gemm']!, /VERA_BF16_GEMM=panels/));
  });

  test(
    'native: a bf16 output is the rounded f32 product; a non-float operand or disagreeing shapes are [native matmul] errors',
    { skip },
    () => {
      const nb = native!;
      const a = aOperand(1, 2, 3, false);
      const b = bOperand(1, 3, 4, 'rows', false);
      const out = {
        data: new Float32Array(8),
        dtype: 'f32' as const,
        shape: [1, 2, 4] as [number, number, number],
        strides: [8, 4, 1] as [number, number, number],
        offset: 0,
      };
      // A bf16 out (bf16 activations) reaches the f32 kernel through the widening fallback: the f32
      // product rounded once per element, and with accumulate the widened out added before rounding.
      const outBf16: Operand = { ...out, dtype: 'bf16', data: new Uint16Array(8) };
      const o16 = put(nb, outBf16);
      const o32 = put(nb, out);
      nb.matmul(o32, put(nb, a), put(nb, b), false);
      nb.matmul(o16, put(nb, a), put(nb, b), false);
      const f = nb.download(o32) as Float32Array;
      assert.deepEqual(
        Array.from(nb.download(o16) as Uint16Array),
        Array.from(f, (x) => f32ToBf16(x)),
      );
      nb.matmul(o16, put(nb, a), put(nb, b), true);
      const twice = Array.from(f, (x) => f32ToBf16(Math.fround(bf16ToF32(f32ToBf16(x)) + x)));
      assert.deepEqual(Array.from(nb.download(o16) as Uint16Array), twice);
      const bI32 = {
        buf: nb.alloc('i32', 12),
        dtype: 'i32' as const,
        offset: 0,
        shape: [1, 3, 4],
        strides: [12, 4, 1],
      };
      assert.throws(
        () => nb.matmul(put(nb, out), put(nb, a), bI32, false),
        /\[native matmul\] b must be f32 or bf16, got i32/,
      );
      const bShort: Operand = { ...b, shape: [1, 2, 4] };
      assert.throws(() => nb.matmul(put(nb, out), put(nb, a), put(nb, bShort), false), /\[native matmul\] shapes/);
    },
  );
});

/** float64 x·Wᵀ of host rows (x [rows, nIn], w [nOut, nIn] as bf16 bits), x rounded to bf16. */
function linearRef(x: Float32Array, wBits: Uint16Array, rows: number, nIn: number, nOut: number): Float64Array {
  const y = new Float64Array(rows * nOut);
  for (let i = 0; i < rows; i++)
    for (let o = 0; o < nOut; o++) {
      let s = 0;
      for (let q = 0; q < nIn; q++) s += bf16ToF32(f32ToBf16(x[i * nIn + q]!)) * bf16ToF32(wBits[o * nIn + q]!);
      y[i * nOut + o] = s;
    }
  return y;
}

function close(what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++)
    assert.ok(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

describe('ops.linear / ops.matmul with a bf16 weight', () => {
  for (const be of [js, ...(native ? [native] : [])]) {
    test(`${be.name}: forward and dX are bf16 GEMMs of the rounded operands; a bf16 tensor that requires grad is refused`, () => {
      scope(() => {
        const [rows, nIn, nOut] = [5, 24, 10];
        const wBits = randBf16(nOut * nIn);
        const w16 = tensor(wBits, { dtype: 'bf16', shape: [nOut, nIn], backend: be });
        const bias = tensor(randf(nOut), { backend: be });
        const xData = randf(rows * nIn);
        const x = tensor(xData, { shape: [rows, nIn], backend: be, requiresGrad: true });
        const y = ops.linear(x, w16, bias);
        assert.equal(y.dtype, 'f32');
        const yHost = y.toArray() as Float32Array;
        const want = linearRef(xData, wBits, rows, nIn, nOut);
        const biasHost = bias.toArray() as Float32Array;
        close(
          'y',
          yHost,
          Array.from(want, (v, i) => v + biasHost[i % nOut]!),
          1e-5,
        );
        // dX = dY·W with dY = 2y rounded to bf16 (the backward GEMM computes in bf16 too).
        backward(ops.sum(ops.square(y)));
        const wT = new Uint16Array(nIn * nOut); // Wᵀ as [nIn, nOut] rows for linearRef's layout
        for (let o = 0; o < nOut; o++) for (let q = 0; q < nIn; q++) wT[q * nOut + o] = wBits[o * nIn + q]!;
        close(
          'dX',
          x.grad!.toArray() as Float32Array,
          linearRef(
            yHost.map((v) => 2 * v),
            wT,
            rows,
            nOut,
            nIn,
          ),
          1e-5,
        );

        // matmul(x, Wᵀ) reads the transposed bf16 view in place, a bf16 first operand works, and 1-D
        // operands work as in torch.
        const mm = ops.matmul(x, ops.transpose(w16)).toArray() as Float32Array;
        close('matmul', mm, want, 1e-5);
        const xT = ops.matmul(w16, ops.transpose(x)).toArray() as Float32Array; // (nOut, rows)
        close(
          'matmul bf16 first',
          xT,
          Array.from(want, (_, i) => want[(i % rows) * nOut + Math.floor(i / rows)]!),
          1e-5,
        );
        const both = ops.linear(ops.cast(x, 'bf16'), w16);
        assert.equal(both.dtype, 'f32');
        close('linear bf16·bf16', both.toArray() as Float32Array, want, 1e-5);
        const v = tensor(xData.subarray(0, nOut), { backend: be });
        assert.deepEqual(ops.matmul(v, w16).shape, [nIn]);

        // Errors name the op: a bf16 leaf that requires grad, a bias of another dtype.
        w16.requiresGrad = true;
        assert.throws(() => ops.linear(x, w16), /\[linear\] weight \(10, 24\) is bf16 and requires grad/);
        assert.throws(() => ops.matmul(w16, ops.transpose(x)), /\[matmul\] first operand .*bf16 and requires grad/);
        // A bf16 tensor computed from it (a view, an activation) is not a weight: its gradient flows.
        assert.equal(ops.matmul(x, ops.transpose(w16)).requiresGrad, true);
        w16.requiresGrad = false;
        assert.throws(
          () => ops.linear(x, w16, ops.cast(bias, 'bf16')),
          /\[linear\] Bias is bf16 but the product is f32/,
        );
      });
    });
  }
});
