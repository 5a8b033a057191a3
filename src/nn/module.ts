// Module: a node of the model tree with explicit typed fields. Tensor fields are parameters, Module
// fields (and arrays or Maps of modules/tensors) are children; namedParameters() walks them in declaration order and
// yields HF-style dotted names ("h.0.attn.c_attn.weight"), so checkpoint keys and adapter targets
// match without a mapping table. Non-parameter tensors belong in #private fields.

import { keep } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';

export abstract class Module {
  /** Training mode: enables dropout. */
  training = true;

  /** [name, tensor] for every parameter below this module. */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [name, child] of this.children()) {
      const path = prefix ? `${prefix}.${name}` : name;
      if (child instanceof Tensor) out.push([path, child]);
      else out.push(...child.namedParameters(path));
    }
    return out;
  }

  /** Each parameter once, even when tied under several names (as torch's parameters() does). */
  parameters(): Tensor[] {
    return [...new Set(this.namedParameters().map(([, t]) => t))];
  }

  /** Parameters that require grad (what an optimizer updates). */
  trainableParameters(): [string, Tensor][] {
    const seen = new Set<Tensor>();
    return this.namedParameters().filter(([, t]) => t.requiresGrad && !seen.has(t) && Boolean(seen.add(t)));
  }

  /** [path, module] for this module ('') and every module below it. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, child] of this.children()) {
      if (child instanceof Module) out.push(...child.namedModules(prefix ? `${prefix}.${name}` : name));
    }
    return out;
  }

  /** Direct parameters and submodules, named by field (array elements by index). */
  children(): [string, Tensor | Module][] {
    const out: [string, Tensor | Module][] = [];
    for (const [name, value] of Object.entries(this)) {
      if (value instanceof Tensor || value instanceof Module) out.push([name, value]);
      else if (Array.isArray(value)) {
        value.forEach((v, i) => {
          if (v instanceof Module || v instanceof Tensor) out.push([`${name}.${i}`, v]);
        });
      } else if (value instanceof Map) {
        // Per-adapter parameters (PEFT's ParameterDict): "vera_lambda_b.default".
        for (const [key, v] of value)
          if (v instanceof Module || v instanceof Tensor) out.push([`${name}.${String(key)}`, v]);
      }
    }
    return out;
  }

  /** Stops gradients to every parameter below this module. */
  freeze(): this {
    for (const p of this.parameters()) p.requiresGrad = false;
    return this;
  }

  unfreeze(): this {
    for (const p of this.parameters()) p.setRequiresGrad(true);
    return this;
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  /**
   * Read by models that run a stack of blocks (through models/blocks.ts): while training, each block's
   * activations are recomputed in the backward instead of kept (transformers'
   * gradient_checkpointing_enable()). Set on every module below this one.
   */
  gradientCheckpointing = false;

  setGradientCheckpointing(on = true): this {
    for (const [, m] of this.namedModules()) m.gradientCheckpointing = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  numParameters(onlyTrainable = false): number {
    return this.parameters()
      .filter((t) => !onlyTrainable || t.requiresGrad)
      .reduce((n, t) => n + t.numel, 0);
  }

  /** Frees every parameter's memory and every module's buffers; the module is unusable afterwards. */
  dispose(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.dispose();
    }
    for (const [, m] of this.namedModules()) m.disposeBuffers();
  }

  /** Frees non-parameter tensors this module keeps in #private fields (torch's buffers); dispose() calls it. */
  protected disposeBuffers(): void {}
}

/** Marks a freshly created tensor as a parameter: kept out of scopes, trainable unless frozen. */
export function parameter(t: Tensor, trainable = true): Tensor {
  keep(t);
  return trainable ? t.setRequiresGrad(true) : t;
}
