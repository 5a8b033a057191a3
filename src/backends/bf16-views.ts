// The bf16-view fallback of the Backend contract ("bf16 activations" in backend.ts): a kernel handed a
// bf16 view it does not run itself gets each such input widened into f32 scratch, runs on f32 views,
// and has each bf16 output rounded back (an output it accumulates into is widened first). That is the
// contract's definition of a kernel on bf16 views, so it is correct on every backend, and the
// reference a backend's own bf16 kernels (Backend.bf16Kernels) are checked against. It costs a copy
// per bf16 view, so a device backend lists its hot kernels in bf16Kernels instead.

import type { Backend, View } from './backend.js';

/** How a kernel uses each argument: read, written, read then written, or not a data view. */
type Role = 'in' | 'out' | 'acc' | '-';

/** Argument roles per kernel (a function where they depend on a flag); adamw is f32 only. */
const ROLES: Record<string, readonly Role[] | ((args: readonly unknown[]) => readonly Role[])> = {
  unary: ['-', 'out', 'in'],
  scalar: ['-', 'out', 'in', '-'],
  binary: ['-', 'out', 'in', 'in'],
  unaryGrad: ['-', 'out', 'in', 'in'],
  unaryWithGrad: ['-', 'out', 'out', 'in'],
  where: ['out', '-', 'in', 'in'],
  reduce: ['-', 'out', 'in', '-'],
  argmax: ['-', 'in'],
  topk: ['out', '-', 'in', '-'],
  // bf16 operands are matmul's own rule (a bf16 product); only a bf16 out falls back here.
  matmul: (args) => [args[3] ? 'acc' : 'out', '-', '-', '-'],
  // A bf16 table is the embedding's own rule (rows widened); only a bf16 out falls back here.
  embedding: ['out', '-', '-'],
  embeddingBackward: ['acc', 'in', '-'],
  gather: ['out', 'in', '-', '-'],
  scatterAdd: ['acc', '-', 'in', '-'],
  softmax: ['out', 'in', '-'],
  softmaxBackward: ['out', 'in', 'in', '-'],
  layerNorm: ['out', 'out', 'out', 'in', 'in', 'in', '-'],
  layerNormBackward: ['out', 'acc', 'acc', 'in', 'in', 'in', 'in', 'in'],
  rmsNorm: ['out', 'out', 'in', 'in', '-'],
  rmsNormBackward: ['out', 'acc', 'in', 'in', 'in', 'in'],
  crossEntropy: ['out', 'out', 'in', '-', '-'],
  crossEntropyBackward: ['out', 'in', 'in', 'in', '-', '-'],
  rope: ['out', 'in', 'in', 'in', '-'],
  dropout: ['out', 'in', '-', '-', '-'],
  attention: ['out', 'out', 'in', 'in', 'in', '-'],
  attentionBackward: ['out', 'out', 'out', 'in', 'in', 'in', 'in', 'in', 'in', '-'],
  gatedActivation: ['out', 'in', 'in', '-'],
  gatedActivationBackward: ['out', 'out', 'in', 'in', 'in', '-'],
  scaleFold: ['out', 'in', 'in', 'in'],
  scaleGrads: ['out', 'out', 'in', 'in', 'in', 'in'],
  scaleAdd: ['out', 'in', 'in', 'in'],
  scaleBackward: ['out', 'out', 'in', 'in', 'in'],
};

/** The kernels withBf16Views knows: every kernel with float views except adamw. */
export const BF16_VIEW_KERNELS: readonly string[] = Object.keys(ROLES);

type Kernel = (...args: unknown[]) => void;

function isBf16View(x: unknown): x is View {
  return typeof x === 'object' && x !== null && (x as View).dtype === 'bf16' && 'buf' in x;
}

function rolesOf(name: string, args: readonly unknown[]): readonly Role[] {
  const r = ROLES[name]!;
  return typeof r === 'function' ? r(args) : r;
}

/**
 * An f32 copy of v in fresh scratch: dense over v's shape, except that broadcast (stride 0) axes stay
 * broadcast, so a widened [C] weight read as [R, C] stays C elements.
 */
function widened(b: Backend, v: View, read: boolean): View {
  const compact = v.shape.map((d, i) => (v.strides[i] === 0 ? 1 : d));
  const strides = new Array<number>(v.shape.length);
  let n = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    strides[i] = v.strides[i] === 0 && v.shape[i] !== 1 ? 0 : n;
    n *= compact[i]!;
  }
  const buf = b.alloc('f32', n);
  const dense: View = { buf, dtype: 'f32', offset: 0, shape: v.shape, strides };
  // Over the compact shape, a broadcast axis has size 1 and its stride is never stepped.
  if (read) b.copy({ ...dense, shape: compact }, { ...v, shape: compact });
  return dense;
}

/** `fn` (kernel `name` of backend `b`) taking bf16 views through f32 scratch as the contract defines. */
export function bf16Fallback<F extends Kernel>(b: Backend, name: string, fn: F): F {
  if (!(name in ROLES)) return fn;
  return ((...args: unknown[]) => {
    const roles = rolesOf(name, args);
    let any = false;
    for (let i = 0; i < args.length && !any; i++) any = roles[i] !== '-' && isBf16View(args[i]);
    if (!any) return fn(...args);
    const scratch: View[] = [];
    const writeBack: [View, View][] = [];
    try {
      const call = args.map((x, i) => {
        const role = roles[i] ?? '-';
        if (role === '-' || !isBf16View(x)) return x;
        const t = widened(b, x, role !== 'out');
        scratch.push(t);
        if (role !== 'in') writeBack.push([x, t]);
        return t;
      });
      fn(...call);
      for (const [x, t] of writeBack) b.copy(x, t);
    } finally {
      for (const t of scratch) b.free(t.buf);
    }
  }) as F;
}

/**
 * The activation dtype VERA_ACTIVATIONS asks a backend for: 'bf16', or undefined for 'f32'; unset, the
 * backend's default (bf16 on cuda, f32 on the CPU backends, where it is a slow reference mode: every
 * kernel but the GEMM widens its bf16 views).
 */
export function activationsFromEnv(backend: string, fallback: 'bf16' | undefined): 'bf16' | undefined {
  const v = process.env['VERA_ACTIVATIONS'];
  if (v === undefined || v === '') return fallback;
  if (v === 'bf16') return 'bf16';
  if (v === 'f32') return undefined;
  throw new Error(`[${backend}] VERA_ACTIVATIONS must be "bf16" or "f32", got ${JSON.stringify(v)}`);
}

/**
 * Gives `b`'s kernels the bf16-view fallback in place (own properties over its methods), except those
 * it lists in bf16Kernels. Backend constructors call it last.
 */
export function withBf16Views<B extends Backend>(b: B): B {
  const own = b.bf16Kernels;
  for (const name of BF16_VIEW_KERNELS) {
    const fn = (b as unknown as Record<string, unknown>)[name];
    if (typeof fn !== 'function' || own?.has(name)) continue;
    Object.defineProperty(b, name, {
      value: bf16Fallback(b, name, (fn as Kernel).bind(b)),
      writable: true,
      configurable: true,
      enumerable: Object.getOwnPropertyDescriptor(b, name)?.enumerable ?? false,
    });
  }
  return b;
}
