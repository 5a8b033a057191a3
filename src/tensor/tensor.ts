// Tensor: a strided view (shape, strides, offset) of a reference-counted Storage on one backend, plus
// the autograd fields. Tensors are immutable views; operations live in src/ops. Host access is
// explicit (toArray/item, or data() as a Promise) and is the only place data crosses back from a device.

import type { Backend, View } from '../backends/backend.js';
import { type DType, type HostArray, bf16ToF32, f16ToF32, isComputeFloat } from '../backends/dtype.js';
import { DTypeError, DisposedError, fmtShape } from './errors.js';
import type { GradNode } from './grad-node.js';
import { TENSOR_BRAND, track } from './scope.js';
import { contiguousStrides, isContiguous, numel } from './shape.js';
import type { Storage } from './storage.js';

export class Tensor {
  declare readonly [TENSOR_BRAND]: true;
  readonly shape: readonly number[];
  // Fixed for the tensor's life except by relocate() (an optimizer's flat arena), hence getters.
  #strides: readonly number[];
  #offset: number;
  #storage: Storage;
  /** True when gradients flow to (leaf) or through (op output) this tensor. */
  requiresGrad = false;
  /** Accumulated gradient of a leaf, set by backward(). */
  grad: Tensor | null = null;
  /** The op that produced this tensor, when recorded for autograd. */
  gradFn: GradNode | null = null;
  /** Which of gradFn's outputs this tensor is (ops like split have several). */
  gradOutput = 0;
  /** Optional label (parameters carry their module path), used in error messages. */
  name = '';
  #disposed = false;
  /** References held by graph nodes that will read this tensor in backward. */
  #graphRefs = 0;

  /** A view of `storage`; retains it and registers with the innermost scope. */
  constructor(storage: Storage, shape: readonly number[], strides?: readonly number[], offset = 0) {
    this.#storage = storage;
    this.shape = Object.freeze([...shape]);
    this.#strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.#offset = offset;
    storage.retain();
    track(this);
  }

  get storage(): Storage {
    return this.#storage;
  }
  get strides(): readonly number[] {
    return this.#strides;
  }
  get offset(): number {
    return this.#offset;
  }

  get dtype(): DType {
    return this.storage.dtype;
  }
  get backend(): Backend {
    return this.storage.backend;
  }
  get rank(): number {
    return this.shape.length;
  }
  get numel(): number {
    return numel(this.shape);
  }
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }
  get disposed(): boolean {
    return this.#disposed || this.storage.freed;
  }

  /**
   * The kernel-facing view; throws DisposedError naming `op` if this tensor was disposed. Backward
   * rules may still read a disposed tensor that a live graph node holds.
   */
  view(op: string): View {
    if (this.storage.freed || (this.#disposed && !(backwardDepth > 0 && this.#graphRefs > 0))) {
      throw new DisposedError(
        `[${op}] Tensor${this.name ? ` "${this.name}"` : ''} of shape ${fmtShape(this.shape)} was used after dispose()`,
      );
    }
    return {
      buf: this.storage.buffer(op),
      dtype: this.dtype,
      offset: this.offset,
      shape: this.shape,
      strides: this.strides,
    };
  }

  /** Releases this handle (idempotent); the storage goes once no graph node holds it either. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#graphRefs === 0) this.storage.release();
  }

  /** `using t = ...` disposes t at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Called by a graph node that will read this tensor in backward. */
  holdForGraph(): void {
    this.#graphRefs++;
  }

  releaseFromGraph(): void {
    if (--this.#graphRefs === 0 && this.#disposed) this.storage.release();
  }

  /**
   * Moves this tensor's elements into `storage` (same backend and dtype) as a contiguous block from
   * element `offset`, and releases its own storage: how an optimizer gathers its parameters into one
   * flat buffer (src/optim/arena.ts) while every holder of this tensor keeps a valid handle. Views
   * taken of the tensor before the move keep the old storage and no longer alias it.
   */
  relocate(storage: Storage, offset: number): void {
    if (this.disposed) throw new DisposedError(`[relocate] Tensor${this.name ? ` "${this.name}"` : ''} was disposed`);
    if (storage.backend !== this.backend || storage.dtype !== this.dtype)
      throw new DTypeError(
        `[relocate] Tensor is ${this.dtype} on ${this.backend.name}, the target storage ${storage.dtype} on ${storage.backend.name}`,
      );
    if (!Number.isInteger(offset) || offset < 0 || offset + this.numel > storage.numel)
      throw new RangeError(
        `[relocate] ${this.numel} elements from offset ${offset} do not fit a storage of ${storage.numel}`,
      );
    const strides = contiguousStrides(this.shape);
    const dst: View = { buf: storage.buffer('relocate'), dtype: this.dtype, offset, shape: this.shape, strides };
    this.backend.copy(dst, this.view('relocate'));
    storage.retain();
    this.#storage.release();
    this.#storage = storage;
    this.#strides = Object.freeze(strides);
    this.#offset = offset;
  }

  /** Marks a floating-point leaf as trainable (or not); returns this. */
  setRequiresGrad(flag = true): this {
    if (flag && !isComputeFloat(this.dtype)) {
      throw new DTypeError(`[requiresGrad] Only float tensors can require grad, got ${this.dtype}`);
    }
    if (this.gradFn)
      throw new Error(
        `[requiresGrad] Only leaf tensors can change requiresGrad (this one comes from "${this.gradFn.op}")`,
      );
    this.requiresGrad = flag;
    return this;
  }

  /** Copies the elements to a new contiguous host array of this dtype (waits for the device). */
  toArray(): HostArray {
    return this.backend.download(this.view('toArray'));
  }

  /**
   * toArray() as a Promise (Backend.downloadAsync where the backend has it), so the caller's event loop
   * runs while a device finishes. The read is ordered when data() is called: the tensor may be disposed
   * right after. scope() rejects Promises, so read outside scopes: take the tensor a scope returned (or
   * a kept one), call data(), dispose it, then await (see src/tensor/scope.ts).
   */
  data(): Promise<HostArray> {
    try {
      const v = this.view('data');
      const b = this.backend;
      return b.downloadAsync ? b.downloadAsync(v) : Promise.resolve(b.download(v));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /** The data as float64 numbers in a plain array (bool/int/half converted). */
  toNumbers(): number[] {
    const a = this.toArray();
    if (this.dtype === 'bf16') return Array.from(a as Uint16Array, bf16ToF32);
    if (this.dtype === 'f16') return Array.from(a as Uint16Array, f16ToF32);
    return Array.from(a as ArrayLike<number | bigint>, (v) => Number(v));
  }

  /** The single element of a one-element tensor, as a number. */
  item(): number {
    if (this.numel !== 1)
      throw new Error(`[item] Tensor of shape ${fmtShape(this.shape)} has ${this.numel} elements, expected 1`);
    return this.toNumbers()[0]!;
  }

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}, ${this.backend.name}${this.requiresGrad ? ', requiresGrad' : ''}${this.disposed ? ', disposed' : ''})`;
  }
}

Object.defineProperty(Tensor.prototype, TENSOR_BRAND, { value: true });

let backwardDepth = 0;

/** Runs fn as part of a backward pass, where graph-held tensors stay readable after dispose. */
export function inBackward<T>(fn: () => T): T {
  backwardDepth++;
  try {
    return fn();
  } finally {
    backwardDepth--;
  }
}
