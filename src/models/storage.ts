// How loadModel stores parameters: the module tree is built on a skeleton backend that holds no memory
// (every parameter is read from the checkpoint anyway), each parameter's storage dtype is chosen, and
// the checkpoint tensors, read straight into that dtype on the real backend, replace the placeholders.
// With dtype 'bf16' the weights of Linear and Embedding layers stay bf16 (frozen: the GEMM widens them
// on the fly); norms, biases, classification heads and everything else stay f32.

import type { Backend, BackendBuffer } from '../backends/backend.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { Embedding, Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import { empty } from '../tensor/creation.js';
import { ALL_DTYPES, DTYPE_BYTES, type DType } from '../backends/dtype.js';
import { DTypeError } from '../tensor/errors.js';
import { keep } from '../tensor/scope.js';
import { Storage } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';

/** Storage dtypes loadModel can keep parameters in. */
export type ParameterDType = 'f32' | 'bf16';

class SkeletonBuffer implements BackendBuffer {
  constructor(readonly byteLength: number) {}
}

/** Skeleton backend → the backend its parameters are loaded onto. */
const targets = new WeakMap<Backend, Backend>();

/**
 * A backend whose buffers hold nothing: creating a model on it costs no memory and no time. alloc,
 * upload and fill do nothing; any kernel throws, naming it (a parameter used before it was loaded).
 */
export function skeletonBackend(target: Backend): Backend {
  const base: Partial<Backend> = {
    name: `skeleton(${target.name})`,
    device: target.device,
    dtypes: ALL_DTYPES,
    alloc: (dtype: DType, numel: number) => new SkeletonBuffer(numel * DTYPE_BYTES[dtype]),
    free: () => {},
    upload: () => {},
    fill: () => {},
    memory: () => ({ allocated: 0, cached: 0 }),
    emptyCache: () => {},
    sync: () => {},
    // Optional members the target lacks stay absent (undefined), not kernels that throw.
    getThreads: target.getThreads ? () => target.getThreads!() : undefined,
    setThreads: target.setThreads ? () => {} : undefined,
  };
  const backend = new Proxy(base, {
    get(obj, key) {
      if (key in obj) return obj[key as keyof Backend];
      return () => {
        throw new Error(
          `[loadModel] Kernel "${String(key)}" called on a parameter skeleton: the parameter was never loaded from the checkpoint`,
        );
      };
    },
  }) as Backend;
  targets.set(backend, target);
  return backend;
}

/** The backend a skeleton parameter is to be loaded onto, or null for a parameter that holds data. */
export function loadTarget(p: Tensor): Backend | null {
  return targets.get(p.backend) ?? null;
}

/**
 * Replaces, everywhere in the tree below `root`, each key of `map` (a tensor or module held in a field,
 * an array or a Map) by its value. Tied parameters are one object under several names, so all of
 * their places change together.
 */
export function replaceInTree(root: Module, map: ReadonlyMap<Tensor | Module, Tensor | Module>): void {
  const seen = new Set<Module>();
  const visit = (m: Module): void => {
    if (seen.has(m)) return;
    seen.add(m);
    const fields = m as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(m)) {
      if (value instanceof Tensor || value instanceof Module) {
        const next = map.get(value);
        if (next !== undefined) fields[key] = next;
        if (fields[key] instanceof Module) visit(fields[key]);
      } else if (Array.isArray(value)) {
        value.forEach((v: unknown, i) => {
          if (!(v instanceof Tensor || v instanceof Module)) return;
          const next = map.get(v);
          if (next !== undefined) value[i] = next;
          if (value[i] instanceof Module) visit(value[i] as Module);
        });
      } else if (value instanceof Map) {
        for (const [k, v] of value as Map<unknown, unknown>) {
          if (!(v instanceof Tensor || v instanceof Module)) continue;
          const next = map.get(v);
          if (next !== undefined) value.set(k, next);
          const now = value.get(k);
          if (now instanceof Module) visit(now);
        }
      }
    }
  };
  visit(root);
}

/** Puts the loaded tensor `t` in place of the skeleton parameter `p` (t is kept out of scopes). */
export function adoptParameter(root: Module, p: Tensor, t: Tensor): void {
  keep(t);
  t.name = p.name;
  t.requiresGrad = p.requiresGrad;
  replaceInTree(root, new Map([[p, t]]));
  p.dispose();
}

/**
 * Checkpoint tensor `key` as a new `dtype` tensor on `backend`. A BF16/F16 tensor wanted as f32 is read
 * as stored and widened by the backend's copy kernel (exact, vectorised) rather than on the host.
 */
export function readParameter(ckpt: Checkpoint, key: string, backend: Backend, dtype: DType): Tensor {
  const stored = HALF_FILE_DTYPES[ckpt.info(key).dtype];
  if (dtype !== 'f32' || stored === undefined || !backend.dtypes.includes(stored))
    return ckpt.tensor(key, { backend, dtype });
  const half = ckpt.tensor(key, { backend, dtype: stored });
  try {
    const out = empty(half.shape, { backend, dtype: 'f32' });
    backend.copy(out.view('loadModel'), half.view('loadModel'));
    return out;
  } finally {
    half.dispose();
  }
}

const HALF_FILE_DTYPES: Partial<Record<string, DType>> = { BF16: 'bf16', F16: 'f16' };

/** Classification heads stay f32: they are tiny, and they are what gets trained (modules_to_save, newHead). */
const CLASSIFIER_HEADS: readonly string[] = ['score', 'classifier'];

/**
 * Switches the skeleton's Linear and Embedding weights to bf16 placeholders, so the checkpoint loads them
 * as bf16 (the GEMM and the embedding kernel widen them on the fly); classification heads keep f32. Call
 * before loading, on a skeleton model.
 */
export function keepWeightsInBf16(model: Module): void {
  const swap = new Map<Tensor | Module, Tensor | Module>();
  const retype = (w: Tensor): void => {
    if (swap.has(w)) return;
    const target = loadTarget(w);
    if (!target) throw new Error('[loadModel] keepWeightsInBf16 works on a model skeleton only');
    if (!target.dtypes.includes('bf16'))
      throw new DTypeError(`[loadModel] Backend "${target.name}" cannot hold bf16 parameters`);
    const t = keep(new Tensor(Storage.alloc(w.backend, 'bf16', w.numel), w.shape, w.strides, w.offset));
    t.name = w.name;
    swap.set(w, t);
  };
  for (const [path, m] of model.namedModules()) {
    if (CLASSIFIER_HEADS.includes(path.split('.')[0]!)) continue;
    if (m instanceof Linear || m instanceof Embedding) retype(m.weight);
  }
  replaceInTree(model, swap);
}

/**
 * Whether a module holds bf16 weights: the mixed-precision policy of a model loaded with dtype 'bf16'
 * (keepWeightsInBf16), under which its attention may run in bf16 as torch.autocast's does
 * (ops.attention's lowPrecision).
 */
export function hasBf16Weights(m: Module): boolean {
  return m.namedParameters().some(([, p]) => p.dtype === 'bf16');
}

/** Bytes held by a model's parameters (each tensor once), e.g. to compare f32 and bf16 storage. */
export function parameterBytes(model: Module): number {
  return model.parameters().reduce((n, p) => n + p.numel * DTYPE_BYTES[p.dtype], 0);
}
