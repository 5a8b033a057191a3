// The native backend: the Backend contract on the vera_native N-API addon (C++17, oneDNN, OpenMP),
// through the binding both addons share (../addon-binding.ts), plus the CPU's thread pool and the
// facts of its GEMM kernels.

import { AddonBackend } from '../addon-binding.js';
import { activationsFromEnv, withBf16Views } from '../bf16-views.js';
import { type NativeAddon, loadAddon } from './addon.js';

export class NativeBackend extends AddonBackend {
  readonly #n: NativeAddon;
  /** f32 unless VERA_ACTIVATIONS=bf16: a reference mode for the cuda backend's bf16 activations. */
  readonly activationDType?: 'bf16';
  /** Kernels that take bf16 views themselves (the GEMMs and casts aside): scaleBackward writes a bf16 dv. */
  readonly bf16Kernels: ReadonlySet<string> = new Set(['scaleBackward']);

  constructor(addon: NativeAddon = loadAddon()) {
    super(addon, 'native', 'cpu');
    this.#n = addon;
    const acts = activationsFromEnv('native', undefined);
    if (acts) this.activationDType = acts;
    withBf16Views(this);
  }

  info(): Readonly<Record<string, string>> {
    return { bf16Gemm: this.#n.bf16GemmImpl() };
  }

  getThreads(): number {
    return this.#n.getThreads();
  }

  setThreads(n: number): void {
    this.#n.setThreads(n);
  }

  lowerPriority(nice: number, idle = false): boolean {
    return this.#n.lowerPriority(nice, idle);
  }
}

/** The native backend, or an Error explaining why it is unavailable (not built, failed to load). */
export function loadNativeBackend(): NativeBackend {
  return new NativeBackend(loadAddon());
}
