// modules_to_save (PEFT's ModulesToSaveWrapper): a module trained in full alongside an adapter, e.g. a
// classification head. The wrapper keeps the original and one trainable copy per adapter; the forward
// uses the active adapter's copy. In-memory names match PEFT's ("classifier.modules_to_save.default.weight").

import { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { cloneModule } from './tree.js';

interface Forwardable extends Module {
  forward(...args: unknown[]): Tensor;
}

export class ModulesToSaveWrapper extends Module {
  original_module: Forwardable;
  modules_to_save = new Map<string, Forwardable>();
  activeAdapter: string | null = null;
  disabled = false;

  constructor(original: Module) {
    super();
    this.original_module = original as Forwardable;
  }

  /** Adds a trainable copy of the original for an adapter. */
  addAdapter(name: string): void {
    const copy = cloneModule(this.original_module);
    for (const p of copy.parameters()) p.setRequiresGrad(true);
    this.modules_to_save.set(name, copy);
    this.activeAdapter ??= name;
  }

  deleteAdapter(name: string): void {
    this.modules_to_save.get(name)?.dispose();
    this.modules_to_save.delete(name);
    if (this.activeAdapter === name) this.activeAdapter = this.modules_to_save.keys().next().value ?? null;
  }

  /** The module the forward uses now. */
  current(): Forwardable {
    if (this.disabled || this.activeAdapter === null) return this.original_module;
    return this.modules_to_save.get(this.activeAdapter) ?? this.original_module;
  }

  forward(...args: unknown[]): Tensor {
    return this.current().forward(...args);
  }
}
