// The machinery of the conformance suite: paired tensors (the same seeded data on the backend under
// test and on the js reference), a comparison that names the worst element, per-kernel tolerances
// that a backend's thin test file may restate, skips by kernel with a reason, and buffers freed after
// every test. Fused kernels are always called through fused(), so a backend without one runs its
// composite.

import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import type {
  Backend,
  BackendBuffer,
  FusedKernelName,
  FusedKernels,
  PrimitiveKernelName,
  View,
} from '../../../src/backends/backend.js';
import { fused } from '../../../src/ops/kernels.js';
import { mulberry32 } from '../../../src/pretrain/data.js';
import { contiguousStrides, numel } from '../../../src/tensor/shape.js';
import { type DType, type HostArray, hostArray } from '../../../src/backends/dtype.js';

/** What a test exercises: a kernel, or 'memory' (alloc/free/upload/download). */
export type Kernel = PrimitiveKernelName | FusedKernelName | 'memory';

export interface Tol {
  rtol: number;
  atol: number;
}

export interface ConformanceOptions {
  /** The float dtype data is made in: 'f32', or 'f64' for a backend that computes in f64 (js). */
  float?: 'f32' | 'f64';
  /**
   * Tolerances replacing the suite's own (those of the f32 native backend against the js reference)
   * for every check of a kernel; `default` applies to kernels not named.
   */
  tolerances?: Partial<Record<Kernel | 'default', Tol>>;
  /** Kernels not run, with the reason shown on the skipped tests. */
  skip?: { kernels: readonly Kernel[]; reason: string }[];
  /** The reference backend (default: a fresh js backend). */
  reference?: () => Backend;
}

/** Paired views of one buffer per backend. */
export interface Pair {
  subject: View;
  ref: View;
}

export class Ctx {
  readonly float: DType;
  readonly #bufs: [Backend, BackendBuffer][] = [];
  #rand: () => number;

  constructor(
    readonly name: string,
    readonly subject: Backend,
    readonly ref: Backend,
    readonly opts: ConformanceOptions,
  ) {
    this.float = opts.float ?? 'f32';
    this.#rand = rng(1234);
  }

  /** Registers a test of `kernels`; it is skipped when every one of them is skipped. */
  test(kernels: readonly Kernel[], name: string, fn: (t: TestContext) => void | Promise<void>): void {
    const skips = this.opts.skip ?? [];
    const reason = skips.find((s) => kernels.every((k) => s.kernels.includes(k)))?.reason;
    test(`${this.name}: ${name}`, { skip: reason ?? false }, async (t) => {
      // Every test starts the same seeded stream, so its data does not depend on the tests before it.
      this.#rand = rng(1234);
      try {
        await fn(t);
      } finally {
        for (const [b, buf] of this.#bufs) b.free(buf);
        this.#bufs.length = 0;
      }
    });
  }

  /** The fused kernels of `be`: its own, or the composites. */
  k(be: Backend): FusedKernels {
    return fused(be);
  }

  // ---- seeded data --------------------------------------------------------------------------

  rand(): number {
    return this.#rand();
  }

  /** Uniform floats in [lo, hi), as f32 values whatever the float dtype (so f32 and f64 runs see the same inputs). */
  randf(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * this.#rand();
    return a;
  }

  randi(n: number, lo: number, hi: number): Int32Array {
    const a = new Int32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo + Math.floor((hi - lo) * this.#rand());
    return a;
  }

  randb(n: number, pTrue = 0.5): Uint8Array {
    const a = new Uint8Array(n);
    for (let i = 0; i < n; i++) a[i] = this.#rand() < pTrue ? 1 : 0;
    return a;
  }

  // ---- paired tensors -----------------------------------------------------------------------

  #alloc(be: Backend, dtype: DType, data: HostArray): BackendBuffer {
    const buf = be.alloc(dtype, data.length);
    this.#bufs.push([be, buf]);
    be.upload(buf, dtype, 0, data);
    return buf;
  }

  /** One buffer holding `data` on each backend, viewed as (shape, strides, offset). Float data is stored in `dtype`. */
  tensor(
    dtype: DType,
    data: HostArray,
    shape: readonly number[],
    strides: readonly number[] = contiguous(shape),
    offset = 0,
  ): Pair {
    const host = dtype === 'f64' && data instanceof Float32Array ? Float64Array.from(data) : data;
    return {
      subject: { buf: this.#alloc(this.subject, dtype, host), dtype, offset, shape, strides },
      ref: { buf: this.#alloc(this.ref, dtype, host), dtype, offset, shape, strides },
    };
  }

  /** Random floats of the suite's float dtype in [lo, hi). */
  rf(shape: readonly number[], lo = -1, hi = 1): Pair {
    return this.tensor(this.float, this.randf(size(shape), lo, hi), shape);
  }

  /** `data` in the suite's float dtype. */
  ft(data: Float32Array, shape: readonly number[], strides?: readonly number[], offset?: number): Pair {
    return this.tensor(this.float, data, shape, strides, offset);
  }

  /** A zero-filled dense output. */
  zeros(dtype: DType, shape: readonly number[]): Pair {
    return this.tensor(dtype, hostArray(dtype, size(shape)), shape);
  }

  /** The same pair seen through another (shape, strides, offset). */
  view(p: Pair, shape: readonly number[], strides: readonly number[], offset: number): Pair {
    return {
      subject: { ...p.subject, shape, strides, offset },
      ref: { ...p.ref, shape, strides, offset },
    };
  }

  /** Runs the same call on both backends. */
  both(fn: (be: Backend, v: (p: Pair) => View) => void): void {
    fn(this.ref, (p) => p.ref);
    fn(this.subject, (p) => p.subject);
  }

  // ---- comparison ---------------------------------------------------------------------------

  /** The tolerance of one check: the backend's restatement for `kernel`, else the suite's value. */
  tol(kernel: Kernel, rtol: number, atol: number): Tol {
    const t = this.opts.tolerances;
    return t?.[kernel] ?? t?.default ?? { rtol, atol };
  }

  /**
   * Asserts |subject − ref| ≤ atol + rtol·|ref| elementwise (NaN matches NaN, infinities must be
   * equal), with the tolerance ctx.tol(kernel, rtol, atol); the message names the worst element.
   */
  close(kernel: Kernel, what: string, p: Pair, rtol: number, atol: number): void {
    const { rtol: rt, atol: at } = this.tol(kernel, rtol, atol);
    const want = toNumbers(this.ref.download(p.ref));
    const got = toNumbers(this.subject.download(p.subject));
    assert.equal(got.length, want.length, `${what}: length`);
    let worst = -1;
    let worstExcess = 0;
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) {
      const r = want[i]!;
      const g = got[i]!;
      if (Number.isNaN(r) || Number.isNaN(g)) {
        if (Number.isNaN(r) !== Number.isNaN(g)) {
          worst = i;
          worstExcess = Infinity;
        }
        continue;
      }
      if (!Number.isFinite(r) || !Number.isFinite(g)) {
        if (r !== g) {
          worst = i;
          worstExcess = Infinity;
        }
        continue;
      }
      const d = Math.abs(g - r);
      maxDiff = Math.max(maxDiff, d);
      const excess = d - (at + rt * Math.abs(r));
      if (excess > worstExcess) {
        worstExcess = excess;
        worst = i;
      }
    }
    if (worst >= 0) {
      assert.fail(
        `${what}: element ${worst} is ${got[worst]} on ${this.name}, reference ${want[worst]} (max |diff| ${maxDiff.toExponential(3)}, tolerance ${at} + ${rt}·|ref|)`,
      );
    }
  }

  /** close() with zero tolerance unless the backend restates it. */
  exact(kernel: Kernel, what: string, p: Pair): void {
    this.close(kernel, what, p, 0, 0);
  }
}

/** Seeded uniforms in [0, 1) (mulberry32, as the pretraining data order uses). */
export const rng = mulberry32;
export const contiguous = contiguousStrides;
export const size = numel;

function toNumbers(a: HostArray): number[] {
  return a instanceof BigInt64Array ? Array.from(a, (x) => Number(x)) : Array.from(a as ArrayLike<number>);
}
