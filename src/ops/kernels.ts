// The one place ops (and optim) reach fused kernels: fused(backend).<kernel>(...) is the backend's own
// method when it has one, else the composite over primitives in ./composite, with the same signature
// and semantics. So model code and ops never branch on the backend, and a new backend runs every
// model as soon as its primitives work. withoutFused() hides a backend's fused kernels (tests run the
// composites on a real backend with it).

import { type Backend, FUSED_KERNELS, type FusedKernelName, type FusedKernels } from '../backends/backend.js';
import { bf16Fallback } from '../backends/bf16-views.js';
import { adamw } from './composite/adamw.js';
import { unaryWithGrad } from './composite/activation.js';
import { dropout } from './composite/dropout.js';
import { gatedActivation, gatedActivationBackward } from './composite/gated.js';
import { scaleAdd, scaleBackward, scaleFold, scaleGrads } from './composite/scale.js';
import { attention, attentionBackward } from './composite/attention.js';
import { crossEntropy, crossEntropyBackward } from './composite/loss.js';
import { layerNorm, layerNormBackward, rmsNorm, rmsNormBackward } from './composite/norm.js';
import { rope } from './composite/rope.js';
import { softmax, softmaxBackward } from './composite/softmax.js';

type Composite<K extends FusedKernelName> = (b: Backend, ...args: Parameters<FusedKernels[K]>) => void;

/** The composite of each fused kernel (every one has one, so a backend may implement none). */
const COMPOSITES: { [K in FusedKernelName]: Composite<K> } = {
  attention,
  attentionBackward,
  softmax,
  softmaxBackward,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  crossEntropy,
  crossEntropyBackward,
  rope,
  dropout,
  adamw,
  gatedActivation,
  gatedActivationBackward,
  scaleFold,
  scaleGrads,
  scaleAdd,
  scaleBackward,
  unaryWithGrad,
};

const cache = new WeakMap<Backend, FusedKernels>();

function resolve<K extends FusedKernelName>(b: Backend, name: K): FusedKernels[K] {
  const own = b[name] as FusedKernels[K] | undefined;
  if (typeof own === 'function') return own.bind(b) as FusedKernels[K];
  const comp = COMPOSITES[name] as Composite<K>;
  // Composites compute on f32 views: bf16 ones are widened around them (the contract's definition).
  return bf16Fallback(b, name, (...args: unknown[]) =>
    comp(b, ...(args as Parameters<FusedKernels[K]>)),
  ) as unknown as FusedKernels[K];
}

/**
 * Every fused kernel for `b`: its own where it has one, else the composite. Resolved once per
 * backend object (a backend's set of methods does not change).
 */
export function fused(b: Backend): FusedKernels {
  let k = cache.get(b);
  if (!k) {
    const table: Partial<Record<FusedKernelName, unknown>> = {};
    for (const name of FUSED_KERNELS) table[name] = resolve(b, name);
    k = table as FusedKernels;
    cache.set(b, k);
  }
  return k;
}

/** Whether `b` runs kernel `name` itself (true) or through its composite (false). */
export function hasFused(b: Backend, name: FusedKernelName): boolean {
  return typeof b[name] === 'function';
}

/**
 * `b` with the named fused kernels hidden (default: all of them), so fused() gives their composites. Everything else, buffers included, is `b`'s own: tensors made on the
 * wrapper are a distinct backend for sameBackend() checks, but share b's memory and statistics.
 */
export function withoutFused(b: Backend, names: readonly FusedKernelName[] = FUSED_KERNELS): Backend {
  const hidden = new Set<PropertyKey>(names);
  const bound = new Map<PropertyKey, unknown>();
  return new Proxy(b, {
    get(target, key) {
      if (hidden.has(key)) return undefined;
      let v = bound.get(key);
      if (v === undefined) {
        v = Reflect.get(target, key, target);
        // Methods run on the real backend (native and js keep private state in #fields).
        if (typeof v === 'function') v = (v as (...a: unknown[]) => unknown).bind(target);
        bound.set(key, v);
      }
      return v;
    },
    has(target, key) {
      return !hidden.has(key) && Reflect.has(target, key);
    },
  });
}
