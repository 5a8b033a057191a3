// Storage: one backend buffer shared by a tensor and all its views, freed when the last of them is
// disposed (reference count). This is the only place tensor memory is returned to a backend.

import type { Backend, BackendBuffer } from '../backends/backend.js';
import type { DType } from '../backends/dtype.js';
import { DisposedError } from './errors.js';

export class Storage {
  #refs = 0;
  #buf: BackendBuffer | null;

  constructor(
    readonly backend: Backend,
    buf: BackendBuffer,
    readonly dtype: DType,
    readonly numel: number,
  ) {
    this.#buf = buf;
  }

  /** Allocates uninitialised storage on a backend. */
  static alloc(backend: Backend, dtype: DType, numel: number): Storage {
    return new Storage(backend, backend.alloc(dtype, numel), dtype, numel);
  }

  get freed(): boolean {
    return this.#buf === null;
  }

  /** The live buffer; throws when the storage was already released. */
  buffer(op: string): BackendBuffer {
    if (this.#buf === null) throw new DisposedError(`[${op}] Tensor storage was already freed (used after dispose)`);
    return this.#buf;
  }

  retain(): void {
    this.#refs++;
  }

  release(): void {
    if (--this.#refs > 0 || this.#buf === null) return;
    this.backend.free(this.#buf);
    this.#buf = null;
  }
}
