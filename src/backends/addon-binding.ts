// The binding both N-API addons share (vera_native for the CPU, vera_cuda for NVIDIA GPUs; their C++
// glue is native/src/napi_glue.h and kernel_exports.h): each kernel call packs its views and scalars
// into the addon's shared descriptor (no JS arrays are built per call) and passes the buffer handles
// as arguments; the addon validates everything and throws "[<backend> <kernel>] ..." Errors.
// AddonBackend implements the whole contract on such an addon; src/backends/native and
// src/backends/cuda add what is particular to each (threads, async reads, device facts).

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
} from './backend.js';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DType, HostArray } from './dtype.js';
import { DTYPE_BYTES, hostArray } from './dtype.js';

/** An opaque handle to an addon buffer (an N-API external). */
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
  /** Optional (vera_cuda): waits for the stream and throws a recorded data-dependent error. */
  sync?(): void;
  copy(out: H, a: H): void;
  fill(out: H): void;
  unary(out: H, a: H): void;
  scalar(out: H, a: H): void;
  binary(out: H, a: H, b: H): void;
  unaryGrad(dx: H, x: H, dy: H): void;
  /** Native only (the cuda addon leaves it out, and CudaBackend hides the method). */
  unaryWithGrad?(out: H, grad: H, x: H): void;
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
  gatedActivation(out: H, gate: H, up: H): void;
  gatedActivationBackward(dgate: H, dup: H, gate: H, up: H, dy: H): void;
  scaleFold(out: H, w: H, rowScale: H, colScale: H): void;
  scaleGrads(rowGrad: H, colGrad: H, g: H, w: H, rowScale: H, colScale: H): void;
  scaleAdd(out: H, a: H, v: H, s: H): void;
  scaleBackward(dv: H, ds: H, dy: H, v: H, s: H): void;
}

/** A block of an addon's memory; `handle` is the addon's external. */
export class AddonBuffer implements BackendBuffer {
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
  return v === null ? null : (v.buf as AddonBuffer).handle;
}

export class AddonBackend implements Backend {
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

  /** `name` tags errors ("[name kernel] ..."); `device` is where the addon's buffers live. */
  constructor(
    addon: Addon,
    readonly name: string,
    readonly device: string,
  ) {
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
      throw new Error(
        `[${this.name}] View of rank ${n} (strides ${strides.length}) is not supported (at most ${this.#maxDims} dims)`,
      );
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
    if (c === undefined) throw new Error(`[${this.name} ${kind}] Unknown op "${op}"`);
    return c;
  }

  // ---- memory -------------------------------------------------------------------------------

  alloc(dtype: DType, numel: number): BackendBuffer {
    if (!Number.isSafeInteger(numel) || numel < 0)
      throw new Error(`[${this.name} alloc] Invalid element count ${numel}`);
    const code = this.#dtype[dtype];
    if (code === undefined) throw new Error(`[${this.name} alloc] Unknown dtype ${String(dtype)}`);
    return new AddonBuffer(this.#a.alloc(code, numel), numel * DTYPE_BYTES[dtype], dtype);
  }

  free(buf: BackendBuffer): void {
    this.#a.free((buf as AddonBuffer).handle);
  }

  upload(buf: BackendBuffer, dtype: DType, offset: number, data: HostArray): void {
    const code = this.#dtype[dtype];
    if (code === undefined) throw new Error(`[${this.name} upload] Unknown dtype ${String(dtype)}`);
    this.#a.upload((buf as AddonBuffer).handle, code, offset, data);
  }

  readFile(buf: BackendBuffer, byteOffset: number, fd: number, position: number, bytes: number): void {
    this.#a.readFile((buf as AddonBuffer).handle, byteOffset, fd, position, bytes);
  }

  download(v: View): HostArray {
    if (v.dtype === 'f64')
      throw new Error(`[${this.name} download] f64 is not supported by the ${this.name} backend (use f32)`);
    let n = 1;
    for (const s of v.shape) n *= s;
    if (!Number.isSafeInteger(n) || n < 0)
      throw new Error(`[${this.name} download] Invalid view shape (${v.shape.join(', ')})`);
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

  sync(): void {
    this.#a.sync?.();
  }

  /** Packs a view into the descriptor for an addon call of a subclass; returns its handle. */
  protected packed(v: View): Handle {
    this.#put(this.#first, v);
    return (v.buf as AddonBuffer).handle;
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

  unaryWithGrad(op: UnaryGradOp, out: View, grad: View, x: View): void {
    this.#d[0] = this.#op(this.#grad, 'unaryWithGrad', op);
    this.#put(this.#put(this.#put(this.#first, out), grad), x);
    this.#a.unaryWithGrad!(h(out), h(grad), h(x));
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
        throw new Error(
          `[${this.name} reduce ${op}] Axis ${ax} is out of range for an input of rank ${a.shape.length}`,
        );
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
    d[8] = o.lowPrecision ? 1 : 0;
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

  crossEntropyBackward(
    dlogits: View,
    dloss: View,
    logits: View,
    lse: View,
    targets: View,
    opts: CrossEntropyOpts,
  ): void {
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

  gatedActivation(out: View, gate: View, up: View, op: UnaryGradOp): void {
    this.#d[0] = this.#op(this.#grad, 'gatedActivation', op);
    this.#put(this.#put(this.#put(this.#first, out), gate), up);
    this.#a.gatedActivation(h(out), h(gate), h(up));
  }

  gatedActivationBackward(dgate: View | null, dup: View | null, gate: View, up: View, dy: View, op: UnaryGradOp): void {
    this.#d[0] = this.#op(this.#grad, 'gatedActivationBackward', op);
    this.#put(this.#put(this.#put(this.#putOpt(this.#putOpt(this.#first, dgate), dup), gate), up), dy);
    this.#a.gatedActivationBackward(h(dgate), h(dup), h(gate), h(up), h(dy));
  }

  scaleFold(out: View, w: View, rowScale: View | null, colScale: View | null): void {
    this.#putOpt(this.#putOpt(this.#put(this.#put(this.#first, out), w), rowScale), colScale);
    this.#a.scaleFold(h(out), h(w), h(rowScale), h(colScale));
  }

  scaleGrads(
    rowGrad: View | null,
    colGrad: View | null,
    g: View,
    w: View,
    rowScale: View | null,
    colScale: View | null,
  ): void {
    const p = this.#put(this.#put(this.#putOpt(this.#putOpt(this.#first, rowGrad), colGrad), g), w);
    this.#putOpt(this.#putOpt(p, rowScale), colScale);
    this.#a.scaleGrads(h(rowGrad), h(colGrad), h(g), h(w), h(rowScale), h(colScale));
  }

  scaleAdd(out: View, a: View, v: View, s: View): void {
    this.#put(this.#put(this.#put(this.#put(this.#first, out), a), v), s);
    this.#a.scaleAdd(h(out), h(a), h(v), h(s));
  }

  scaleBackward(dv: View | null, ds: View | null, dy: View, v: View, s: View): void {
    this.#put(this.#put(this.#put(this.#putOpt(this.#putOpt(this.#first, dv), ds), dy), v), s);
    this.#a.scaleBackward(h(dv), h(ds), h(dy), h(v), h(s));
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
    if (up === dir)
      throw new Error('[backend] Could not find the vera-ts package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}
