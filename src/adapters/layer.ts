// What every adapter layer shares (PEFT's BaseTunerLayer): the wrapped base Linear, which adapters are
// active, merged or disabled, and in-place merging of a delta into the base weight. A method (VeRA,
// LoRA) supplies its parameters, its forward contribution and its delta weight.

import { noGrad } from '../autograd/graph.js';
import { Linear, type LinearLike } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import * as ops from '../ops/index.js';
import { full } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdapterError } from './errors.js';
import { type RowAdapters, checkRows, selectRows } from './mixed.js';

export abstract class AdapterLayer extends Module implements LinearLike {
  /** The wrapped layer; PEFT's name, so merged checkpoints and bias keys read "<path>.base_layer.*". */
  base_layer: Linear;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** Adapters whose contribution the forward adds, in order. */
  activeAdapters: string[] = [];
  /** Adapters currently merged into base_layer.weight (unmerged in reverse order). */
  mergedAdapters: string[] = [];
  /** When true the layer computes the base layer alone (adapters unmerged first). */
  disabled = false;

  constructor(base: LinearLike, path: string) {
    super();
    if (!(base instanceof Linear)) {
      throw new AdapterError(
        `[adapters] Target module "${path}" (${base.constructor.name}) is not supported: only Linear layers (and GPT-2's Conv1D) can be adapted`,
      );
    }
    this.base_layer = base;
    // In the wrapped layer's mode: adapting a model in eval mode must not switch dropout on.
    this.training = base.training;
    this.inFeatures = base.inFeatures;
    this.outFeatures = base.outFeatures;
  }

  /** Names of the adapters this layer holds. */
  abstract adapterNames(): string[];
  /** This adapter's additive output for input x (before it is added to the base output). */
  protected abstract contribution(name: string, x: Tensor): Tensor;
  /** ΔW of one adapter in the layout of base_layer.weight ([out, in], or [in, out] for fan-in-fan-out). */
  abstract deltaWeight(name: string): Tensor;
  /** Removes one adapter's parameters from the layer. */
  abstract deleteAdapter(name: string): void;
  /** Tensors of an adapter that its file holds but training leaves alone (VeRA ablations' fixed λ). */
  fixedTensors(_name: string): Tensor[] {
    return [];
  }

  /** During PeftModel.withAdapterNames: the adapter of each batch row (null: none); else null. */
  rowAdapters: RowAdapters | null = null;

  forward(x: Tensor): Tensor {
    if (this.disabled && this.mergedAdapters.length > 0) this.unmerge();
    let y = this.base_layer.forward(x);
    if (this.disabled || this.mergedAdapters.length > 0) return y;
    if (this.rowAdapters !== null) {
      checkRows(this.rowAdapters, x, 'mixed-adapter batch');
      const mixed = this.mixedContribution(this.rowAdapters, x);
      return mixed === null ? y : ops.add(y, mixed);
    }
    for (const name of this.activeAdapters) {
      if (!this.adapterNames().includes(name)) continue;
      y = this.addContribution(name, x, y);
    }
    return y;
  }

  /** y + this adapter's contribution; a method may add it in a fused pass. */
  protected addContribution(name: string, x: Tensor, y: Tensor): Tensor {
    return ops.add(y, this.contribution(name, x));
  }

  /**
   * The additive output when each batch row runs its own adapter (null when no row's adapter is in this
   * layer). Here: each adapter on the whole batch, masked to its rows; VeRA does it in one pass.
   */
  protected mixedContribution(rows: RowAdapters, x: Tensor): Tensor | null {
    let sum: Tensor | null = null;
    for (const name of new Set(rows)) {
      if (name === null || !this.adapterNames().includes(name)) continue;
      const c = this.contribution(name, x);
      const mine = rows.map((r) => r === name);
      sum = selectRows(mine, sum === null ? c : ops.add(sum, c), sum ?? full(c.shape, 0, { backend: c.backend }));
    }
    return sum;
  }

  /** Adds the deltas of the given adapters (default: the active ones) to the base weight, in place. */
  merge(names: readonly string[] = this.activeAdapters, opts: { safe?: boolean } = {}): void {
    for (const name of names) {
      if (!this.adapterNames().includes(name) || this.mergedAdapters.includes(name)) continue;
      this.#applyDelta(name, 'add', opts.safe ?? false);
      this.mergedAdapters.push(name);
    }
  }

  /** Subtracts merged deltas again (last merged first). */
  unmerge(): void {
    while (this.mergedAdapters.length > 0) this.#applyDelta(this.mergedAdapters.pop()!, 'sub', false);
  }

  /**
   * w ← w ± ΔW in place, as PEFT does it (`weight.data += delta`, a float32 ΔW since PEFT keeps adapter
   * weights in float32): for a bf16 weight the float32 sum is rounded to bf16 — so merging into bf16 is
   * lossy, and unmerging does not give every original weight back.
   */
  #applyDelta(name: string, op: 'add' | 'sub', safe: boolean): void {
    noGrad(() =>
      scope(() => {
        const w = this.base_layer.weight;
        const delta = this.deltaWeight(name);
        if (w.dtype === 'f32' && !safe) {
          w.backend.binary(op, w.view('merge'), w.view('merge'), delta.view('merge'));
          return;
        }
        const result = (op === 'add' ? ops.add : ops.sub)(ops.cast(w, 'f32'), delta);
        // PEFT's safe_merge: checked before the weight changes, so a broken adapter leaves it as it was.
        if (safe && ops.sum(ops.cast(ops.ne(result, result), 'f32')).item() > 0)
          throw new AdapterError(
            `[adapters] NaNs detected in the merged weights. The adapter "${name}" seems to be broken`,
          );
        w.backend.copy(w.view('merge'), result.view('merge'));
      }),
    );
  }
}
