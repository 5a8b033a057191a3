// The training loop's per-step numbers, kept on the backend until a read point: each micro-batch's
// summed loss and each step's gradient norm are copied into preallocated slots of one buffer (one
// small copy each, no host read), and read() downloads all of them at once. The trainer reads at
// logging steps and before evaluations and checkpoints, so a step in between never waits for the
// device; the host then computes each step's loss exactly as a per-micro-batch read did.

import type { Backend, View } from '../backends/backend.js';
import { keep } from '../tensor/scope.js';
import { Storage } from '../tensor/storage.js';
import { Tensor } from '../tensor/tensor.js';

/** One step as read back: its mean loss per item and its gradient norm (null when none was computed). */
export interface StepRecord {
  step: number;
  loss: number;
  gradNorm: number | null;
}

interface PendingStep {
  step: number;
  micro: number;
  items: number;
  hasNorm: boolean;
}

export class StepLog {
  /** Steps the buffer holds; when full, the trainer must read before the next step. */
  readonly capacity: number;
  readonly #perStep: number;
  readonly #buf: Tensor;
  #pending: PendingStep[] = [];
  #micro = 0;
  #hasNorm = false;

  /** Room for `capacity` steps of at most `microBatches` micro-batches each. */
  constructor(backend: Backend, capacity: number, microBatches: number) {
    if (!(capacity >= 1 && microBatches >= 1))
      throw new RangeError(`[StepLog] capacity and microBatches must be >= 1, got ${capacity}, ${microBatches}`);
    this.capacity = capacity;
    this.#perStep = microBatches + 1; // the losses, then the norm
    const n = capacity * this.#perStep;
    this.#buf = keep(new Tensor(Storage.alloc(backend, 'f32', n), [n]));
  }

  get full(): boolean {
    return this.#pending.length >= this.capacity;
  }

  /** Steps recorded since the last read. */
  get pending(): number {
    return this.#pending.length;
  }

  /** The summed loss (one element) of the current step's next micro-batch. */
  putLoss(loss: Tensor): void {
    if (this.#micro + 1 >= this.#perStep)
      throw new RangeError(`[StepLog] more than ${this.#perStep - 1} micro-batches in one step`);
    this.#put(this.#micro++, loss);
  }

  /** A micro-batch of which this process computed nothing (a data-parallel rank's empty shard): loss 0. */
  putZeroLoss(): void {
    if (this.#micro + 1 >= this.#perStep)
      throw new RangeError(`[StepLog] more than ${this.#perStep - 1} micro-batches in one step`);
    if (this.full) throw new RangeError(`[StepLog] full (${this.capacity} steps): read() first`);
    const offset = this.#pending.length * this.#perStep + this.#micro++;
    this.#buf.backend.fill({ ...this.#buf.view('StepLog'), offset, shape: [1], strides: [1] }, 0);
  }

  /** The current step's gradient norm (one element). */
  putNorm(norm: Tensor): void {
    this.#put(this.#perStep - 1, norm);
    this.#hasNorm = true;
  }

  /** Closes the current step: `items` is what its losses are divided by (examples or target tokens). */
  endStep(step: number, items: number): void {
    if (this.full) throw new RangeError(`[StepLog] full (${this.capacity} steps): read() before step ${step}`);
    this.#pending.push({ step, micro: this.#micro, items, hasNorm: this.#hasNorm });
    this.#micro = 0;
    this.#hasNorm = false;
  }

  /**
   * Every step recorded since the last read, oldest first, in one download. A step's loss is the sum
   * of its micro-batch losses in order (in float64) over its items, as the trainer computed it when it
   * read each micro-batch. `reduceLosses` (data-parallel ranks: a sum over the ranks) may change the
   * micro-batch losses, step after step, before they are summed; every process must call it alike.
   */
  read(reduceLosses?: (losses: Float64Array) => void): StepRecord[] {
    const steps = this.#pending;
    if (steps.length === 0) return [];
    this.#pending = [];
    const n = steps.length * this.#perStep;
    const host = this.#buf.backend.download({ ...this.#buf.view('StepLog.read'), shape: [n] });
    const per = this.#perStep - 1;
    const losses = new Float64Array(steps.length * per);
    steps.forEach((s, k) => {
      for (let i = 0; i < s.micro; i++) losses[k * per + i] = Number(host[k * this.#perStep + i]);
    });
    reduceLosses?.(losses);
    return steps.map((s, k) => {
      const base = k * this.#perStep;
      let sum = 0;
      for (let i = 0; i < s.micro; i++) sum += losses[k * per + i]!;
      return {
        step: s.step,
        loss: sum / s.items,
        gradNorm: s.hasNorm ? Number(host[base + this.#perStep - 1]) : null,
      };
    });
  }

  dispose(): void {
    this.#buf.dispose();
  }

  #put(slot: number, t: Tensor): void {
    if (t.numel !== 1) throw new RangeError(`[StepLog] expects a one-element tensor, got ${t.numel} elements`);
    if (this.full) throw new RangeError(`[StepLog] full (${this.capacity} steps): read() first`);
    const offset = this.#pending.length * this.#perStep + slot;
    const out: View = { ...this.#buf.view('StepLog'), offset, shape: t.shape, strides: t.shape.map(() => 1) };
    this.#buf.backend.copy(out, t.view('StepLog'));
  }
}
