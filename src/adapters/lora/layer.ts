// The LoRA layer (PEFT's lora/layer.py Linear): y = base(x) + scaling · B(A(dropout(x))), with A (r, in)
// and B (out, r) trained, scaling = alpha / r (alpha / √r with rsLoRA). The paper's baseline.

import type { LinearLike } from '../../nn/layers.js';
import { Linear } from '../../nn/layers.js';
import * as ops from '../../ops/index.js';
import { full, tensor } from '../../tensor/creation.js';
import { defaultGenerator } from '../../tensor/random.js';
import { keep } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { AdapterLayer } from '../layer.js';

export interface LoraLayerInit {
  r: number;
  alpha: number;
  dropout: number;
  useRslora: boolean;
  init: boolean | 'gaussian';
}

export class LoraLinear extends AdapterLayer {
  lora_A = new Map<string, Linear>(); // adapter → Linear(in → r), weight (r, in)
  lora_B = new Map<string, Linear>(); // adapter → Linear(r → out), weight (out, r)
  scaling = new Map<string, number>();
  #dropout = new Map<string, number>();

  constructor(base: LinearLike, path: string) {
    super(base, path);
  }

  adapterNames(): string[] {
    return [...this.lora_A.keys()];
  }

  addAdapter(name: string, init: LoraLayerInit): void {
    const backend = this.base_layer.weight.backend;
    const a = new Linear(this.inFeatures, init.r, { bias: false, backend });
    const b = new Linear(init.r, this.outFeatures, { bias: false, backend });
    const g = defaultGenerator;
    if (init.init === 'gaussian')
      replace(
        a,
        'weight',
        tensor(g.normal(init.r * this.inFeatures, 0, 1 / init.r), { shape: [init.r, this.inFeatures], backend }),
      );
    // init === true keeps Linear's U(±1/√in), which is kaiming_uniform_(a=√5) as PEFT draws A.
    if (init.init !== false) replace(b, 'weight', full([this.outFeatures, init.r], 0, { backend }));
    this.lora_A.set(name, a);
    this.lora_B.set(name, b);
    this.scaling.set(name, init.useRslora ? init.alpha / Math.sqrt(init.r) : init.alpha / init.r);
    this.#dropout.set(name, init.dropout);
    if (this.activeAdapters.length === 0) this.activeAdapters = [name];
  }

  deleteAdapter(name: string): void {
    if (this.mergedAdapters.includes(name)) this.unmerge();
    this.lora_A.get(name)?.dispose();
    this.lora_B.get(name)?.dispose();
    this.lora_A.delete(name);
    this.lora_B.delete(name);
    this.scaling.delete(name);
    this.#dropout.delete(name);
    this.activeAdapters = this.activeAdapters.filter((a) => a !== name);
  }

  protected contribution(name: string, x: Tensor): Tensor {
    // Over a bf16 base both products run in bf16 (as under torch.autocast), the scaling folded into B's
    // rounded copy; over an f32 base this is B(A(x)) · scaling as PEFT writes it.
    const dtype = this.base_layer.weight.dtype === 'bf16' ? 'bf16' : 'f32';
    const xin = ops.dropout(x, this.#dropout.get(name) ?? 0, this.training);
    const h = ops.castLinear(xin, this.lora_A.get(name)!.weight, dtype); // (..., r)
    return ops.castLinear(h, this.lora_B.get(name)!.weight, dtype, this.scaling.get(name)!); // (..., out)
  }

  deltaWeight(name: string): Tensor {
    // scaling · B · A: (out, r) · (r, in)
    const delta = ops.mulScalar(
      ops.matmul(this.lora_B.get(name)!.weight, this.lora_A.get(name)!.weight),
      this.scaling.get(name)!,
    );
    return this.base_layer.fanInFanOut ? ops.contiguous(ops.transpose(delta)) : delta;
  }
}

/** Swaps a parameter of a freshly built layer, keeping it trainable and outside scopes. */
function replace(layer: Linear, field: 'weight', value: Tensor): void {
  layer[field].dispose();
  layer[field] = keep(value).setRequiresGrad(true);
}
