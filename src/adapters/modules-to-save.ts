// modules_to_save (PEFT's ModulesToSaveWrapper): a module trained in full alongside an adapter, e.g. a
// classification head. The wrapper keeps the original and one trainable copy per adapter; the forward
// uses the active adapter's copy. In-memory names match PEFT's ("classifier.modules_to_save.default.weight").

import { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { type RowAdapters, checkRows, selectRows } from './mixed.js';
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

  /** During PeftModel.withAdapterNames: the adapter of each batch row (null: the original module). */
  rowAdapters: RowAdapters | null = null;

  forward(...args: unknown[]): Tensor {
    if (this.rowAdapters === null || this.disabled) return this.current().forward(...args);
    // Each row through its adapter's copy, or the original: each module on the whole batch, masked.
    const rows = this.rowAdapters;
    checkRows(rows, args[0] as Tensor, 'mixed-adapter batch (modules_to_save)');
    const moduleOf = rows.map((n) => (n === null ? undefined : this.modules_to_save.get(n)) ?? this.original_module);
    let out: Tensor | null = null;
    for (const module of new Set(moduleOf)) {
      const y = module.forward(...args);
      out =
        out === null
          ? y
          : selectRows(
              moduleOf.map((m) => m === module),
              y,
              out,
            );
    }
    return out!;
  }
}
