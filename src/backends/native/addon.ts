// Locating and loading the vera_native addon (build/Release/vera_native.node under the package root),
// and the raw shape of what it exports. Only src/backends/native talks to the addon.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { type Addon, packageRoot } from '../addon-binding.js';

/** vera_native's exports: the shared kernels plus its thread pool and GEMM facts. */
export interface NativeAddon extends Addon {
  getThreads(): number;
  setThreads(n: number): void;
  lowerPriority(nice: number, idle: boolean): boolean;
  bf16GemmImpl(): string;
}

/** Where the built addon is expected (VERA_NATIVE_ADDON overrides it, e.g. for a sanitizer build). */
export function addonPath(): string {
  const override = process.env['VERA_NATIVE_ADDON'];
  if (override) return override;
  return join(packageRoot(), 'build', 'Release', 'vera_native.node');
}

let cached: NativeAddon | null = null;

/** Loads the addon once; throws an Error saying why it is unavailable. */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  let path: string;
  try {
    path = addonPath();
  } catch (e) {
    throw new Error(`[native] The native backend is unavailable: ${(e as Error).message}`, { cause: e });
  }
  if (!existsSync(path)) {
    throw new Error(`[native] The native backend is unavailable: the addon is not built (${path} does not exist; run \`npx node-gyp rebuild\` in the package root)`);
  }
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw new Error(`[native] The native backend is unavailable: loading ${path} failed: ${(e as Error).message}`, { cause: e });
  }
  return cached;
}
