// matmul with a bf16 `b` (frozen weights stored in bf16): the js and native kernels against a float64
// reference on the widened weights, and native bf16 against native f32 on the same bf16-rounded values
// (identical math up to f32 summation order), over the decoding kernels (m ≤ 4, dense k or n axis),
// the widened-panel path (more rows, strided b, panel edges), transposed views, batch broadcast and
// accumulation; then ops.linear / ops.matmul with bf16 weights, dX through them, and the errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import type { Backend, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { bf16ToF32, f32ToBf16 } from '../../src/tensor/dtype.js';
import { scope } from '../../src/tensor/scope.js';
import { nativeSkip } from '../helpers/backends.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(20261128);
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

function at(op: Operand, p: number, i: number, j: number): number {
  const x = op.data[op.offset + p * op.strides[0] + i * op.strides[1] + j * op.strides[2]]!;
  return op.dtype === 'bf16' ? bf16ToF32(x) : x;
}

/** float64 a·b (+ out0), and Σ|a·b| per element for the error bound. */
function reference(a: Operand, b: Operand, out0: Float32Array | null): { want: Float64Array; mag: Float64Array } {
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
          const v = at(a, p, i, q) * at(b, p, q, j);
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

/** The same values as `b`, widened to f32 in the same layout. */
const widened = (b: Operand): Operand => ({
  ...b,
  dtype: 'f32',
  data: Float32Array.from(b.data as Uint16Array, bf16ToF32),
});

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

describe('matmul with a bf16 b', () => {
  test('js: equals the float64 product of the widened weights (every layout, broadcast, accumulate)', () => {
    for (const [bt, m, k, n] of SHAPES.slice(0, 8)) {
      for (const layout of ['rows', 'cols', 'strided'] as BLayout[]) {
        const a = aOperand(bt, m, k, false);
        const b = bOperand(bt, k, n, layout, bt > 1 && layout !== 'strided');
        const out0 = randf(bt * m * n);
        for (const acc of [false, true]) {
          const { want, mag } = reference(a, b, acc ? out0 : null);
          check(`js ${bt}x${m}x${k}x${n} ${layout} acc=${acc}`, run(js, a, b, acc ? out0 : null), want, mag, 1e-6);
        }
      }
    }
  });

  test('native: equals the reference and native f32 on the same values', { skip }, () => {
    const nb = native!;
    for (const [bt, m, k, n] of SHAPES) {
      for (const layout of ['rows', 'cols', 'strided'] as BLayout[]) {
        for (const broadcast of bt > 1 ? [false, true] : [false]) {
          for (const ta of [false, true]) {
            const a = aOperand(bt, m, k, ta);
            const b = bOperand(bt, k, n, layout, broadcast);
            const out0 = randf(bt * m * n);
            for (const acc of [false, true]) {
              const what = `native ${bt}x${m}x${k}x${n} b=${layout} bcast=${broadcast} ta=${ta} acc=${acc}`;
              const got = run(nb, a, b, acc ? out0 : null);
              const { want, mag } = reference(a, b, acc ? out0 : null);
              check(what, got, want, mag, 4 * k * 2 ** -24 + 1e-7);
              // The f32 GEMM on the widened values: the same products, another summation order.
              check(
                `${what} vs f32`,
                got,
                Float64Array.from(run(nb, a, widened(b), acc ? out0 : null)),
                mag,
                8 * k * 2 ** -24 + 1e-7,
              );
            }
          }
        }
      }
    }
  });

  test('native: a GPT-2-sized decode row and a prefill block agree with f32', { skip }, () => {
    const nb = native!;
    for (const [m, k, n] of [
      [1, 768, 2304],
      [128, 768, 3072],
    ] as const) {
      for (const layout of ['rows', 'cols'] as BLayout[]) {
        const a = aOperand(1, m, k, false);
        const b = bOperand(1, k, n, layout, false);
        const got = run(nb, a, b, null);
        const f32 = run(nb, a, widened(b), null);
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

  test('native: a bf16 a or output, or another b dtype, is a [native matmul] error', { skip }, () => {
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
    const aBf16: Operand = { ...a, dtype: 'bf16', data: Uint16Array.from(a.data as Float32Array, f32ToBf16) };
    assert.throws(
      () => nb.matmul(put(nb, out), put(nb, aBf16), put(nb, b), false),
      /\[native matmul\] a must be f32, got bf16/,
    );
    const outBf16: Operand = { ...out, dtype: 'bf16', data: new Uint16Array(8) };
    assert.throws(
      () => nb.matmul(put(nb, outBf16), put(nb, a), put(nb, b), false),
      /\[native matmul\] output must be f32, got bf16/,
    );
    const bI32 = { buf: nb.alloc('i32', 12), dtype: 'i32' as const, offset: 0, shape: [1, 3, 4], strides: [12, 4, 1] };
    assert.throws(
      () => nb.matmul(put(nb, out), put(nb, a), bI32, false),
      /\[native matmul\] b must be f32 or bf16, got i32/,
    );
    const bShort: Operand = { ...b, shape: [1, 2, 4] };
    assert.throws(() => nb.matmul(put(nb, out), put(nb, a), put(nb, bShort), false), /\[native matmul\] shapes/);
  });
});

describe('ops.linear / ops.matmul with a bf16 weight', () => {
  for (const be of [js, ...(native ? [native] : [])]) {
    test(`${be.name}: forward and dX equal the f32 weight's; a bf16 weight that requires grad is refused`, () => {
      scope(() => {
        const [rows, nIn, nOut] = [5, 24, 10];
        const wBits = randBf16(nOut * nIn);
        const w16 = tensor(wBits, { dtype: 'bf16', shape: [nOut, nIn], backend: be });
        const w32 = tensor(Float32Array.from(wBits, bf16ToF32), { shape: [nOut, nIn], backend: be });
        const bias = tensor(randf(nOut), { backend: be });
        const xData = randf(2 * rows * nIn);
        const grads: Float32Array[] = [];
        const outs: Float32Array[] = [];
        for (const w of [w16, w32]) {
          const x = tensor(xData, { shape: [2, rows, nIn], backend: be, requiresGrad: true });
          const y = ops.linear(x, w, bias);
          assert.equal(y.dtype, 'f32');
          backward(ops.sum(ops.square(y)));
          outs.push(y.toArray() as Float32Array);
          grads.push(x.grad!.toArray() as Float32Array);
        }
        for (const [got, want, what] of [
          [outs[0]!, outs[1]!, 'y'],
          [grads[0]!, grads[1]!, 'dX'],
        ] as const)
          for (let i = 0; i < want.length; i++)
            assert.ok(
              Math.abs(got[i]! - want[i]!) <= 1e-5 * (1 + Math.abs(want[i]!)),
              `${what}[${i}]: ${got[i]} vs ${want[i]}`,
            );

        // matmul(x, Wᵀ) reads the transposed bf16 view in place; 1-D operands work as in torch.
        const x = tensor(xData.subarray(0, rows * nIn), { shape: [rows, nIn], backend: be });
        const mm = ops.matmul(x, ops.transpose(w16)).toArray() as Float32Array;
        const ref = ops.matmul(x, ops.transpose(w32)).toArray() as Float32Array;
        for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(mm[i]! - ref[i]!) <= 1e-5 * (1 + Math.abs(ref[i]!)));
        const v = tensor(xData.subarray(0, nOut), { backend: be });
        assert.deepEqual(ops.matmul(v, w16).shape, [nIn]);

        // Errors name the op: a bf16 operand that requires grad, or a bf16 first operand.
        w16.requiresGrad = true;
        assert.throws(() => ops.linear(x, w16), /\[linear\] weight \(10, 24\) is bf16 and requires grad/);
        assert.throws(() => ops.matmul(x, ops.transpose(w16)), /\[matmul\] .*bf16 and requires grad/);
        w16.requiresGrad = false;
        assert.throws(() => ops.matmul(w16, ops.transpose(x)), /\[matmul\] The first operand \(10, 24\) is bf16/);
        assert.throws(() => ops.linear(ops.cast(x, 'bf16'), w16), /\[linear\] Both operands are bf16/);
        assert.throws(() => ops.linear(x, w16, ops.cast(bias, 'bf16')), /\[linear\]/);
      });
    });
  }
});
