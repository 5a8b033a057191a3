// LoRA as an adapter method (PEFT's lora/model.py): no model-wide state; each targeted layer gets its
// own A and B, with per-module rank and alpha from rank_pattern / alpha_pattern.

import type { LinearLike } from '../../nn/layers.js';
import type { Module } from '../../nn/module.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { AdapterLayer } from '../layer.js';
import type { AdapterMethod, ExpectedTensor } from '../method.js';
import type { PyJson } from '../python-json.js';
import { patternKey } from '../targets.js';
import { type LoraConfig, loraFromJson, loraToJson } from './config.js';
import { LoraLinear } from './layer.js';

export class LoraMethod implements AdapterMethod<LoraConfig> {
  readonly peftType = 'LORA';
  readonly prefix = 'lora_';

  fromJson(json: Record<string, unknown>, file: string): LoraConfig {
    return loraFromJson(json, file);
  }

  toJson(config: LoraConfig): Record<string, PyJson> {
    return loraToJson(config);
  }

  checkNewAdapter(): void {}

  prepare(): ExpectedTensor[] {
    return [];
  }

  isLayer(m: Module): m is AdapterLayer {
    return m instanceof LoraLinear;
  }

  createLayer(base: LinearLike, path: string): AdapterLayer {
    return new LoraLinear(base, path);
  }

  addToLayer(layer: AdapterLayer, name: string, config: LoraConfig, path: string): void {
    const rKey = patternKey(config.rank_pattern, path);
    const aKey = patternKey(config.alpha_pattern, path);
    const r = rKey === null ? config.r : config.rank_pattern[rKey]!;
    (layer as LoraLinear).addAdapter(name, {
      r,
      alpha: aKey === null ? config.lora_alpha : config.alpha_pattern[aKey]!,
      dropout: config.lora_dropout,
      useRslora: config.use_rslora,
      init: config.init_lora_weights,
    });
  }

  layerTensors(layer: AdapterLayer, name: string): [string, Tensor][] {
    const l = layer as LoraLinear;
    const a = l.lora_A.get(name);
    const b = l.lora_B.get(name);
    return a && b
      ? [
          ['lora_A.weight', a.weight],
          ['lora_B.weight', b.weight],
        ]
      : [];
  }

  modelTensors(): [string, Tensor][] {
    return [];
  }

  deleteAdapter(): void {}
}
