// The native backend: the Backend contract on the vera_native N-API addon (C++17, oneDNN sgemm,
// OpenMP). Each kernel call packs its views and scalars into the addon's shared descriptor (no JS
// arrays are built per call) and passes the buffer handles as arguments; the addon validates
// everything and throws "[native <kernel>] ..." Errors.

import type {
  AdamWParams,
  AttentionOpts,
  Backend,
  BackendBuffer,
  BinaryOp,
  CrossEntropyOpts,
  MemoryStats,
  ReduceOp,
  ScalarOp,
  UnaryGradOp,
  UnaryOp,
  View,
} from '../backend.js';
import type { DType, HostArray } from '../dtype.js';
import { DTYPE_BYTES, hostArray } from '../dtype.js';
import { type Addon, type Handle, loadAddon } from './addon.js';

/** A block of native memory; `handle` is the addon's external. */
export class NativeBuffer implements BackendBuffer {
  constructor(
    readonly handle: Handle,
    readonly byteLength: number,
    readonly dtype: DType,
  ) {}
}

type Codes = Record<string, number>;

function codeTable(names: readonly string[]): Codes {
  const t = Object.create(null) as Codes;
  names.forEach((n, i) => (t[n] = i));
  return t;
}

function h(v: View | null): Handle | null {
  return v === null ? null : (v.buf as NativeBuffer).handle;
}

export class NativeBackend implements Backend {
  readonly name = 'native';
  readonly device = 'cpu';
  readonly dtypes: readonly DType[] = ['f32', 'f16', 'bf16', 'i32', 'i64', 'bool'];

  readonly #a: Addon;
  readonly #d: Float64Array;
  readonly #first: number;
  readonly #maxDims: number;
  readonly #dtype: Codes;
  readonly #unary: Codes;
  readonly #scalar: Codes;
  readonly #binary: Codes;
  readonly #grad: Codes;
  readonly #reduce: Codes;

  constructor(addon: Addon = loadAddon()) {
    this.#a = addon;
    this.#d = addon.descriptor;
    this.#first = addon.constants.scalarSlots;
    this.#maxDims = addon.constants.maxDims;
    this.#dtype = codeTable(addon.names.dtype);
    this.#unary = codeTable(addon.names.unary);
    this.#scalar = codeTable(addon.names.scalar);
    this.#binary = codeTable(addon.names.binary);
    this.#grad = codeTable(addon.names.unaryGrad);
    this.#reduce = codeTable(addon.names.reduce);
  }

  // ---- descriptor packing ---------------------------------------------------------------------

  /** Writes one view at slot p; returns the next free slot. */
  #put(p: number, v: View): number {
    const d = this.#d;
    const shape = v.shape;
    const strides = v.strides;
    const n = shape.length;
    if (n > this.#maxDims || strides.length !== n) {
      throw new Error(`[native] View of rank ${n} (strides ${strides.length}) is not supported (at most ${this.#maxDims} dims)`);
    }
    const code = this.#dtype[v.dtype];
    d[p] = code === undefined ? NaN : code;
    d[p + 1] = v.offset;
    d[p + 2] = n;
    for (let i = 0; i < n; i++) {
      d[p + 3 + i] = shape[i]!;
      d[p + 3 + n + i] = strides[i]!;
    }
    return p + 3 + 2 * n;
  }

  #putOpt(p: number, v: View | null): number {
    if (v === null) {
      this.#d[p] = -1;
      return p + 1;
    }
    return this.#put(p, v);
  }

  #op(table: Codes, kind: string, op: string): number {
    const c = table[op];
    if (c === undefined) throw new Error(`[native ${kind}] Unknown op "${op}"`);
    return c;
  }

  // ---- memory -------------------------------------------------------------------------------

  alloc(dtype: DType, numel: number): BackendBuffer {
    if (!Number.isSafeInteger(numel) || numel < 0) throw new Error(`[native alloc] Invalid element count ${numel}`);
    const code = this.#dtype[dtype];
    if (code === undefined) throw new Error(`[native alloc] Unknown dtype ${String(dtype)}`);
    return new NativeBuffer(this.#a.alloc(code, numel), numel * DTYPE_BYTES[dtype], dtype);
  }

  free(buf: BackendBuffer): void {
    this.#a.free((buf as NativeBuffer).handle);
  }

  upload(buf: BackendBuffer, dtype: DType, offset: number, data: HostArray): void {
    const code = this.#dtype[dtype];
    if (code === undefined) throw new Error(`[native upload] Unknown dtype ${String(dtype)}`);
    this.#a.upload((buf as NativeBuffer).handle, code, offset, data);
  }

  readFile(buf: BackendBuffer, byteOffset: number, fd: number, position: number, bytes: number): void {
    this.#a.readFile((buf as NativeBuffer).handle, byteOffset, fd, position, bytes);
  }

  download(v: View): HostArray {
    if (v.dtype === 'f64') throw new Error('[native download] f64 is not supported by the native backend (use f32)');
    let n = 1;
    for (const s of v.shape) n *= s;
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`[native download] Invalid view shape (${v.shape.join(', ')})`);
    const out = hostArray(v.dtype, n);
    this.#put(this.#first, v);
    this.#a.download(h(v), out);
    return out;
  }

  memory(): MemoryStats {
    this.#a.memory();
    return { allocated: this.#d[0]!, cached: this.#d[1]! };
  }

  emptyCache(): void {
    this.#a.emptyCache();
  }

  sync(): void {}

  info(): Readonly<Record<string, string>> {
    return { bf16Gemm: this.#a.bf16GemmImpl() };
  }

  getThreads(): number {
    return this.#a.getThreads();
  }

  setThreads(n: number): void {
    this.#a.setThreads(n);
  }

  // ---- data movement ------------------------------------------------------------------------

  copy(out: View, a: View): void {
    this.#put(this.#put(this.#first, out), a);
    this.#a.copy(h(out), h(a));
  }

  fill(out: View, value: number): void {
    this.#d[0] = value;
    this.#put(this.#first, out);
    this.#a.fill(h(out));
  }

  // ---- elementwise --------------------------------------------------------------------------

  unary(op: UnaryOp, out: View, a: View): void {
    this.#d[0] = this.#op(this.#unary, 'unary', op);
    this.#put(this.#put(this.#first, out), a);
    this.#a.unary(h(out), h(a));
  }

  scalar(op: ScalarOp, out: View, a: View, s: number): void {
    const d = this.#d;
    d[0] = this.#op(this.#scalar, 'scalar', op);
    d[1] = s;
    this.#put(this.#put(this.#first, out), a);
    this.#a.scalar(h(out), h(a));
  }

  binary(op: BinaryOp, out: View, a: View, b: View): void {
    this.#d[0] = this.#op(this.#binary, 'binary', op);
    this.#put(this.#put(this.#put(this.#first, out), a), b);
    this.#a.binary(h(out), h(a), h(b));
  }

  unaryGrad(op: UnaryGradOp, dx: View, x: View, dy: View): void {
    this.#d[0] = this.#op(this.#grad, 'unaryGrad', op);
    this.#put(this.#put(this.#put(this.#first, dx), x), dy);
    this.#a.unaryGrad(h(dx), h(x), h(dy));
  }

  where(out: View, cond: View, a: View, b: View): void {
    this.#put(this.#put(this.#put(this.#put(this.#first, out), cond), a), b);
    this.#a.where(h(out), h(cond), h(a), h(b));
  }

  // ---- reductions ---------------------------------------------------------------------------

  reduce(op: ReduceOp, out: View, a: View, axes: readonly number[]): void {
    const d = this.#d;
    d[0] = this.#op(this.#reduce, 'reduce', op);
    let mask = 0;
    for (const ax of axes) {
      if (!Number.isInteger(ax) || ax < 0 || ax >= a.shape.length) {
        throw new Error(`[native reduce ${op}] Axis ${ax} is out of range for an input of rank ${a.shape.length}`);
      }
      mask |= 1 << ax;
    }
    d[1] = mask;
    this.#put(this.#put(this.#first, out), a);
    this.#a.reduce(h(out), h(a));
  }

  argmax(out: View, a: View): void {
    this.#put(this.#put(this.#first, out), a);
    this.#a.argmax(h(out), h(a));
  }

  topk(values: View, indices: View, a: View, k: number): void {
    this.#d[0] = k;
    this.#put(this.#put(this.#put(this.#first, values), indices), a);
    this.#a.topk(h(values), h(indices), h(a));
  }

  // ---- linear algebra -----------------------------------------------------------------------

  matmul(out: View, a: View, b: View, accumulate: boolean): void {
    this.#d[0] = accumulate ? 1 : 0;
    this.#put(this.#put(this.#put(this.#first, out), a), b);
    this.#a.matmul(h(out), h(a), h(b));
  }

  // ---- fused neural-network kernels ---------------------------------------------------------

  softmax(out: View, a: View, log: boolean): void {
    this.#d[0] = log ? 1 : 0;
    this.#put(this.#put(this.#first, out), a);
    this.#a.softmax(h(out), h(a));
  }

  softmaxBackward(dx: View, y: View, dy: View, log: boolean): void {
    this.#d[0] = log ? 1 : 0;
    this.#put(this.#put(this.#put(this.#first, dx), y), dy);
    this.#a.softmaxBackward(h(dx), h(y), h(dy));
  }

  layerNorm(out: View, mean: View, rstd: View, x: View, w: View | null, b: View | null, eps: number): void {
    this.#d[0] = eps;
    let p = this.#put(this.#put(this.#put(this.#put(this.#first, out), mean), rstd), x);
    p = this.#putOpt(p, w);
    this.#putOpt(p, b);
    this.#a.layerNorm(h(out), h(mean), h(rstd), h(x), h(w), h(b));
  }

  layerNormBackward(
    dx: View | null,
    dw: View | null,
    db: View | null,
    dy: View,
    x: View,
    w: View | null,
    mean: View,
    rstd: View,
  ): void {
    let p = this.#putOpt(this.#putOpt(this.#putOpt(this.#first, dx), dw), db);
    p = this.#putOpt(this.#put(this.#put(p, dy), x), w);
    this.#put(this.#put(p, mean), rstd);
    this.#a.layerNormBackward(h(dx), h(dw), h(db), h(dy), h(x), h(w), h(mean), h(rstd));
  }

  rmsNorm(out: View, rstd: View, x: View, w: View | null, eps: number): void {
    this.#d[0] = eps;
    this.#putOpt(this.#put(this.#put(this.#put(this.#first, out), rstd), x), w);
    this.#a.rmsNorm(h(out), h(rstd), h(x), h(w));
  }

  rmsNormBackward(dx: View | null, dw: View | null, dy: View, x: View, w: View | null, rstd: View): void {
    const p = this.#putOpt(this.#put(this.#put(this.#putOpt(this.#putOpt(this.#first, dx), dw), dy), x), w);
    this.#put(p, rstd);
    this.#a.rmsNormBackward(h(dx), h(dw), h(dy), h(x), h(w), h(rstd));
  }

  embedding(out: View, weight: View, ids: View): void {
    this.#put(this.#put(this.#put(this.#first, out), weight), ids);
    this.#a.embedding(h(out), h(weight), h(ids));
  }

  embeddingBackward(dweight: View, dy: View, ids: View): void {
    this.#put(this.#put(this.#put(this.#first, dweight), dy), ids);
    this.#a.embeddingBackward(h(dweight), h(dy), h(ids));
  }

  gather(out: View, a: View, index: View, axis: number): void {
    this.#d[0] = axis;
    this.#put(this.#put(this.#put(this.#first, out), a), index);
    this.#a.gather(h(out), h(a), h(index));
  }

  scatterAdd(out: View, index: View, src: View, axis: number): void {
    this.#d[0] = axis;
    this.#put(this.#put(this.#put(this.#first, out), index), src);
    this.#a.scatterAdd(h(out), h(index), h(src));
  }

  #attnOpts(o: AttentionOpts): void {
    const d = this.#d;
    d[0] = o.scale;
    d[1] = o.causal ? 1 : 0;
    d[2] = o.window;
    const drop = o.dropout;
    d[3] = drop ? 1 : 0;
    if (drop) {
      d[4] = drop.p;
      // The key words exactly as philox.ts derives them from the seed (as dropout() does).
      d[5] = drop.seed >>> 0;
      d[6] = Math.floor(drop.seed / 4294967296) >>> 0;
      d[7] = drop.offset;
    }
  }

  attention(out: View, lse: View, q: View, k: View, v: View, opts: AttentionOpts): void {
    this.#attnOpts(opts);
    const p = this.#put(this.#put(this.#put(this.#put(this.#put(this.#first, out), lse), q), k), v);
    this.#putOpt(p, opts.keyMask);
    this.#a.attention(h(out), h(lse), h(q), h(k), h(v), h(opts.keyMask));
  }

  attentionBackward(
    dq: View,
    dk: View,
    dv: View,
    dout: View,
    q: View,
    k: View,
    v: View,
    out: View,
    lse: View,
    opts: AttentionOpts,
  ): void {
    this.#attnOpts(opts);
    let p = this.#put(this.#put(this.#put(this.#put(this.#first, dq), dk), dv), dout);
    p = this.#put(this.#put(this.#put(this.#put(this.#put(p, q), k), v), out), lse);
    this.#putOpt(p, opts.keyMask);
    this.#a.attentionBackward(h(dq), h(dk), h(dv), h(dout), h(q), h(k), h(v), h(out), h(lse), h(opts.keyMask));
  }

  crossEntropy(loss: View, lse: View, logits: View, targets: View, opts: CrossEntropyOpts): void {
    const d = this.#d;
    d[0] = opts.ignoreIndex;
    d[1] = opts.labelSmoothing;
    this.#put(this.#put(this.#put(this.#put(this.#first, loss), lse), logits), targets);
    this.#a.crossEntropy(h(loss), h(lse), h(logits), h(targets));
  }

  crossEntropyBackward(dlogits: View, dloss: View, logits: View, lse: View, targets: View, opts: CrossEntropyOpts): void {
    const d = this.#d;
    d[0] = opts.ignoreIndex;
    d[1] = opts.labelSmoothing;
    this.#put(this.#put(this.#put(this.#put(this.#put(this.#first, dlogits), dloss), logits), lse), targets);
    this.#a.crossEntropyBackward(h(dlogits), h(dloss), h(logits), h(lse), h(targets));
  }

  rope(out: View, x: View, cos: View, sin: View, inverse: boolean): void {
    this.#d[0] = inverse ? 1 : 0;
    this.#put(this.#put(this.#put(this.#put(this.#first, out), x), cos), sin);
    this.#a.rope(h(out), h(x), h(cos), h(sin));
  }

  dropout(out: View, a: View, p: number, seed: number, offset: number): void {
    const d = this.#d;
    d[0] = p;
    // The key words exactly as philox.ts derives them from the seed.
    d[1] = seed >>> 0;
    d[2] = Math.floor(seed / 4294967296) >>> 0;
    d[3] = offset;
    this.#put(this.#put(this.#first, out), a);
    this.#a.dropout(h(out), h(a));
  }

  adamw(param: View, grad: View, m: View, v: View, hp: AdamWParams): void {
    const d = this.#d;
    d[0] = hp.lr;
    d[1] = hp.beta1;
    d[2] = hp.beta2;
    d[3] = hp.eps;
    d[4] = hp.weightDecay;
    d[5] = hp.step;
    this.#put(this.#put(this.#put(this.#put(this.#first, param), grad), m), v);
    this.#a.adamw(h(param), h(grad), h(m), h(v));
  }
}

/** The native backend, or an Error explaining why it is unavailable (not built, failed to load). */
export function loadNativeBackend(): NativeBackend {
  return new NativeBackend(loadAddon());
}
