// modules_to_save (PEFT's ModulesToSaveWrapper): a module trained in full alongside an adapter, e.g. a
// classification head. The wrapper keeps the original and one trainable copy per adapter; the forward
// uses the active adapter's copy. In-memory names match PEFT's ("classifier.modules_to_save.default.weight").
//
// In a mixed-adapter batch (PeftModel.withAdapterNames) each row goes through its own adapter's copy, at
// the cost of about one pass of the module whatever the mix: Linear heads (GPT-2's and Llama's score,
// BERT's and ViT's classifier) run as one batched GEMM over per-row weights (rowStack: the rows' weights
// stacked, built once per call); other modules run once per adapter on that adapter's rows only
// (gathered), and the outputs are put back in row order.

import { Linear } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import * as ops from '../ops/index.js';
import { tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { type RowAdapters, checkRows, rowStack, selectRows } from './mixed.js';
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
    const rows = this.rowAdapters;
    const x = args[0] as Tensor;
    checkRows(rows, x, 'mixed-adapter batch (modules_to_save)');
    const moduleOf = rows.map((n) => (n === null ? undefined : this.modules_to_save.get(n)) ?? this.original_module);
    const modules = [...new Set(moduleOf)];
    if (modules.length === 1) return modules[0]!.forward(...args);
    if (args.length === 1 && x.rank >= 2) {
      const linears = modules.filter((m): m is Forwardable & Linear => m instanceof Linear);
      if (linears.length === modules.length && sameLinears(linears, x)) return rowLinear(moduleOf as Linear[], x);
      return byRows(moduleOf, modules, x);
    }
    // Other inputs that may be batch-shaped too: each module on the whole batch, masked.
    let out: Tensor | null = null;
    for (const module of modules) {
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

/** Linears of one shape, dtype and bias presence, fitting x: one batched GEMM can run them all. */
function sameLinears(ms: readonly Linear[], x: Tensor): boolean {
  const [a] = ms;
  return (
    a !== undefined &&
    x.shape[x.rank - 1] === a.inFeatures &&
    ms.every(
      (m) =>
        m.inFeatures === a.inFeatures &&
        m.outFeatures === a.outFeatures &&
        m.weight.dtype === a.weight.dtype &&
        (m.bias === null) === (a.bias === null) &&
        (m.bias === null || m.bias.dtype === a.bias!.dtype),
    )
  );
}

/** Row i through linear ms[i]: x [B, …, in] as [B, M, in] times the rows' stacked weights [B, in, out]. */
function rowLinear(ms: readonly Linear[], x: Tensor): Tensor {
  const [b, inF, outF] = [x.shape[0]!, ms[0]!.inFeatures, ms[0]!.outFeatures];
  const first = ms[0]!;
  // Stacked as stored ([out, in], or [in, out] fan-in-fan-out), so the stack is one copy of each weight.
  const stored = rowStack(
    ms.map((m) => m.weight),
    first.weight.shape,
  );
  const bias =
    first.bias === null
      ? null
      : rowStack(
          ms.map((m) => m.bias!),
          [1, outF],
        );
  return scope(() => {
    const x3 = ops.reshape(x, [b, -1, inF]);
    const y = ops.matmul(x3, first.fanInFanOut ? stored : ops.transpose(stored)); // [B, in, out]
    const yb = bias === null ? y : ops.add(y, bias);
    return ops.reshape(yb, [...x.shape.slice(0, -1), outF]);
  });
}

/** Each module on its rows only (gathered), the outputs put back in row order. */
function byRows(moduleOf: readonly Forwardable[], modules: readonly Forwardable[], x: Tensor): Tensor {
  return scope(() => {
    const order: number[] = [];
    const parts = modules.map((m) => {
      const idx = moduleOf.flatMap((n, i) => (n === m ? [i] : []));
      order.push(...idx);
      return m.forward(takeRows(x, idx));
    });
    const stacked = ops.concat(parts, 0);
    const back = new Array<number>(order.length);
    order.forEach((row, k) => (back[row] = k));
    return takeRows(stacked, back);
  });
}

/** Rows `idx` of x (along axis 0), in that order. */
function takeRows(x: Tensor, idx: readonly number[]): Tensor {
  const rest = x.shape.slice(1);
  const per = rest.reduce((a, d) => a * d, 1);
  const index = tensor(
    Int32Array.from({ length: idx.length * per }, (_, k) => idx[Math.floor(k / per)]!),
    { dtype: 'i32', shape: [idx.length, ...rest], backend: x.backend },
  );
  return ops.gather(ops.contiguous(x), 0, index);
}
