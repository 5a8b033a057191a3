// Backends the numeric tests run on: js always (in f64 for gradient checks), native when its addon
// is built. Each entry states the dtype and the tolerances that fit its precision.

import type { Backend } from '../../src/backends/backend.js';
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
