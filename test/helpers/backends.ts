// Backends the numeric tests run on: js always (in f64 for gradient checks), native when its addon
// is built. Each entry states the dtype and the tolerances that fit its precision.

import type { Backend, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { getBackend, nativeAvailable, nativeUnavailableReason } from '../../src/backends/registry.js';
import type { DType } from '../../src/tensor/dtype.js';

export interface TestBackend {
  name: string;
  backend: Backend;
  dtype: DType;
  /** Central-difference step and tolerances for gradient checks in this precision. */
  eps: number;
  atol: number;
  rtol: number;
}

export function testBackends(): TestBackend[] {
  const list: TestBackend[] = [
    { name: 'js f64', backend: getBackend('js'), dtype: 'f64', eps: 1e-6, atol: 1e-7, rtol: 1e-6 },
  ];
  if (nativeAvailable()) {
    list.push({ name: 'native f32', backend: getBackend('native'), dtype: 'f32', eps: 1e-2, atol: 2e-3, rtol: 2e-2 });
  }
  return list;
}

/** Why native tests are skipped, or false when they run. */
export function nativeSkip(): string | false {
  return nativeAvailable() ? false : `native backend unavailable: ${nativeUnavailableReason()}`;
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
