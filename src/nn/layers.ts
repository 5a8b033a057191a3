// Basic layers: Linear (torch layout [out, in]), LayerNorm, RMSNorm, Embedding. Initialisation follows
// torch's defaults where models rely on it; pretrained weights overwrite it anyway.

import { full, randn, tensor } from '../tensor/creation.js';
import type { Backend } from '../backends/backend.js';
import type { Generator } from '../tensor/random.js';
import { defaultGenerator } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { Module, parameter } from './module.js';

export interface InitOpts {
  generator?: Generator;
  backend?: Backend;
}

/**
 * What model code calls for every projection: a Linear, or an adapter layer wrapping one (VeRA, LoRA).
 * Models type their projection fields with it, so adapters can be injected without changing them.
 */
export interface LinearLike extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  forward(x: Tensor): Tensor;
}

export interface LinearOpts extends InitOpts {
  bias?: boolean;
  /**
   * Store the weight as [in, out] (GPT-2's Conv1D layout, PEFT's fan_in_fan_out) instead of torch's
   * [out, in]; the forward reads it through a transposed view, so no copy is made.
   */
  fanInFanOut?: boolean;
}

export class Linear extends Module implements LinearLike {
  weight: Tensor; // (out, in), or (in, out) when fanInFanOut
  bias: Tensor | null; // (out)
  readonly fanInFanOut: boolean;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOpts = {},
  ) {
    super();
    this.fanInFanOut = opts.fanInFanOut ?? false;
    // torch.nn.Linear: U(−1/√in, 1/√in) for weight and bias.
    const g = opts.generator ?? defaultGenerator;
    const bound = 1 / Math.sqrt(inFeatures);
    const shape = this.fanInFanOut ? [inFeatures, outFeatures] : [outFeatures, inFeatures];
    this.weight = parameter(
      tensor(g.uniform(outFeatures * inFeatures, -bound, bound), { shape, backend: opts.backend }),
    );
    this.bias =
      opts.bias === false ? null : parameter(tensor(g.uniform(outFeatures, -bound, bound), { backend: opts.backend }));
  }

  /** The weight in torch's [out, in] orientation (a view when stored fan-in-fan-out). */
  weightOutIn(): Tensor {
    return this.fanInFanOut ? ops.transpose(this.weight) : this.weight;
  }

  forward(x: Tensor): Tensor {
    if (!this.fanInFanOut) return ops.linear(x, this.weight, this.bias);
    const w = ops.transpose(this.weight);
    const y = ops.linear(x, w, this.bias);
    w.dispose();
    return y;
  }
}

export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor | null;

  constructor(
    readonly size: number,
    readonly eps = 1e-5,
    opts: InitOpts & { bias?: boolean } = {},
  ) {
    super();
    this.weight = parameter(full([size], 1, { backend: opts.backend }));
    this.bias = opts.bias === false ? null : parameter(full([size], 0, { backend: opts.backend }));
  }

  forward(x: Tensor): Tensor {
    return ops.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class RMSNorm extends Module {
  weight: Tensor;

  constructor(
    readonly size: number,
    readonly eps = 1e-6,
    opts: InitOpts = {},
  ) {
    super();
    this.weight = parameter(full([size], 1, { backend: opts.backend }));
  }

  forward(x: Tensor): Tensor {
    return ops.rmsNorm(x, this.weight, this.eps);
  }
}

export class Embedding extends Module {
  weight: Tensor; // (V, C)

  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
    opts: InitOpts & { std?: number } = {},
  ) {
    super();
    this.weight = parameter(
      randn([numEmbeddings, dim], { generator: opts.generator, backend: opts.backend, std: opts.std ?? 1 }),
    );
  }

  forward(ids: Tensor): Tensor {
    return ops.embedding(ids, this.weight);
  }
}
