// Backends the numeric tests run on: js always (in f64 for gradient checks), native when its addon
// is built. Each entry states the dtype and the tolerances that fit its precision. A backend that
// does not load is never dropped silently: it shows up as a skipped test whose reason is the load
// error, and with VERA_REQUIRE_NATIVE=1 (set by .ci/run) as a failure.

import type { Backend, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { getBackend, nativeAvailable, nativeUnavailableReason } from '../../src/backends/registry.js';
import type { DType } from '../../src/backends/dtype.js';
import { test } from 'node:test';
import { withoutFused } from '../../src/ops/kernels.js';

export interface TestBackend {
  name: string;
  backend: Backend;
  dtype: DType;
  /** Central-difference step and tolerances for gradient checks in this precision. */
  eps: number;
  atol: number;
  rtol: number;
}

/** Whether a missing native backend is an error (CI) rather than a skip. */
export function nativeRequired(): boolean {
  return process.env['VERA_REQUIRE_NATIVE'] === '1';
}

let reported = false;

/**
 * The available test backends. On the first call of a test file, a native backend that does not load
 * registers one test: skipped with the load error as reason, or failing under VERA_REQUIRE_NATIVE=1.
 * Call it at the top level of the file (not inside a test).
 */
export function testBackends(): TestBackend[] {
  const list: TestBackend[] = [
    { name: 'js f64', backend: getBackend('js'), dtype: 'f64', eps: 1e-6, atol: 1e-7, rtol: 1e-6 },
  ];
  if (nativeAvailable()) {
    list.push({ name: 'native f32', backend: getBackend('native'), dtype: 'f32', eps: 1e-2, atol: 2e-3, rtol: 2e-2 });
  } else if (!reported) {
    reported = true;
    missingBackendTest('native f32');
  }
  return list;
}

/**
 * testBackends() and, for each, the same backend with every fused kernel that has a composite hidden
 * ("js f64 composites", …): the ops then run on the composites over that backend's primitives.
 */
export function withCompositeBackends(): TestBackend[] {
  return testBackends().flatMap((tb) => [
    tb,
    { ...tb, name: `${tb.name} composites`, backend: withoutFused(tb.backend) },
  ]);
}

/** Registers the test that reports a native backend that does not load: a skip, or a failure in CI. */
export function missingBackendTest(name: string): void {
  const why = `native backend unavailable: ${nativeUnavailableReason()}`;
  if (nativeRequired()) {
    test(`${name} (VERA_REQUIRE_NATIVE=1)`, () => {
      throw new Error(why);
    });
  } else {
    test(name, { skip: why }, () => {});
  }
}

/**
 * Why native tests are skipped, or false when they run. Under VERA_REQUIRE_NATIVE=1 a missing native
 * backend throws instead, so the test file fails to load and the run fails.
 */
export function nativeSkip(): string | false {
  if (nativeAvailable()) return false;
  const why = `native backend unavailable: ${nativeUnavailableReason()}`;
  if (nativeRequired()) throw new Error(`${why} (VERA_REQUIRE_NATIVE=1)`);
  return why;
}

/**
 * A fresh js backend that counts kernel calls (matmul and LayerNorm) and records each GEMM's operand
 * shapes and FLOPs (2·M·N·K per batch entry).
 */
export function countingBackend(): {
  backend: Backend;
  calls: Map<string, number>;
  gemmShapes: string[];
  gemmFlops: number[];
} {
  const backend = new JsBackend();
  const calls = new Map<string, number>();
  const gemmShapes: string[] = [];
  const gemmFlops: number[] = [];
  for (const name of ['matmul', 'layerNorm', 'layerNormBackward'] as const) {
    const orig = backend[name].bind(backend) as (...args: unknown[]) => void;
    (backend as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      calls.set(name, (calls.get(name) ?? 0) + 1);
      if (name === 'matmul') {
        const [out, a, b] = args as [View, View, View];
        gemmShapes.push(`${a.shape.join('x')}·${b.shape.join('x')}`);
        gemmFlops.push(2 * out.shape.reduce((n, d) => n * d, 1) * a.shape[a.shape.length - 1]!);
      }
      orig(...args);
    };
  }
  return { backend, calls, gemmShapes, gemmFlops };
}
