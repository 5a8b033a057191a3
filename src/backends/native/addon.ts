// Locating and loading the vera_native addon (build/Release/vera_native.node under the package root),
// and the raw shape of what it exports. Only src/backends/native talks to the addon.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostArray } from '../dtype.js';

/** An opaque native memory handle (an N-API external). */
export type Handle = object;
type H = Handle | null | undefined;

/** Op-name tables in the addon's code order, so the binding never hard-codes codes. */
export interface AddonNames {
  dtype: string[];
  unary: string[];
  scalar: string[];
  binary: string[];
  unaryGrad: string[];
  reduce: string[];
}

/**
 * The addon's exports. Kernels take their buffers as arguments (in view order) and read everything
 * else from `descriptor`: slots [0, scalarSlots) hold scalars (op code first), then each view as
 * [dtype, offset, rank, ...shape, ...strides], or −1 for an absent optional view.
 */
export interface Addon {
  descriptor: Float64Array;
  names: AddonNames;
  constants: { scalarSlots: number; descriptorLength: number; maxDims: number };
  alloc(dtype: number, numel: number): Handle;
  free(h: H): void;
  upload(h: H, dtype: number, offset: number, data: HostArray): void;
  readFile(h: H, byteOffset: number, fd: number, position: number, bytes: number): void;
  download(h: H, dst: HostArray): void;
  memory(): void;
  emptyCache(): void;
  getThreads(): number;
  setThreads(n: number): void;
  bf16GemmImpl(): string;
  copy(out: H, a: H): void;
  fill(out: H): void;
  unary(out: H, a: H): void;
  scalar(out: H, a: H): void;
  binary(out: H, a: H, b: H): void;
  unaryGrad(dx: H, x: H, dy: H): void;
  where(out: H, cond: H, a: H, b: H): void;
  reduce(out: H, a: H): void;
  argmax(out: H, a: H): void;
  topk(values: H, indices: H, a: H): void;
  matmul(out: H, a: H, b: H): void;
  softmax(out: H, a: H): void;
  softmaxBackward(dx: H, y: H, dy: H): void;
  layerNorm(out: H, mean: H, rstd: H, x: H, w: H, b: H): void;
  layerNormBackward(dx: H, dw: H, db: H, dy: H, x: H, w: H, mean: H, rstd: H): void;
  rmsNorm(out: H, rstd: H, x: H, w: H): void;
  rmsNormBackward(dx: H, dw: H, dy: H, x: H, w: H, rstd: H): void;
  embedding(out: H, weight: H, ids: H): void;
  embeddingBackward(dweight: H, dy: H, ids: H): void;
  gather(out: H, a: H, index: H): void;
  scatterAdd(out: H, index: H, src: H): void;
  attention(out: H, lse: H, q: H, k: H, v: H, keyMask: H): void;
  attentionBackward(dq: H, dk: H, dv: H, dout: H, q: H, k: H, v: H, out: H, lse: H, keyMask: H): void;
  crossEntropy(loss: H, lse: H, logits: H, targets: H): void;
  crossEntropyBackward(dlogits: H, dloss: H, logits: H, lse: H, targets: H): void;
  rope(out: H, x: H, cos: H, sin: H): void;
  dropout(out: H, a: H): void;
  adamw(param: H, grad: H, m: H, v: H): void;
}

/** The directory of the vera-ts package (the nearest ancestor whose package.json names it). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name === 'vera-ts') return dir;
      } catch {
        // an unreadable package.json is not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('[native] Could not find the vera-ts package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Where the built addon is expected (VERA_NATIVE_ADDON overrides it, e.g. for a sanitizer build). */
export function addonPath(): string {
  const override = process.env['VERA_NATIVE_ADDON'];
  if (override) return override;
  return join(packageRoot(), 'build', 'Release', 'vera_native.node');
}

let cached: Addon | null = null;

/** Loads the addon once; throws an Error saying why it is unavailable. */
export function loadAddon(): Addon {
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
    cached = createRequire(import.meta.url)(path) as Addon;
  } catch (e) {
    throw new Error(`[native] The native backend is unavailable: loading ${path} failed: ${(e as Error).message}`, { cause: e });
  }
  return cached;
}
