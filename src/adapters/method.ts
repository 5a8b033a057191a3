// The contract between the generic adapter machinery (peft-model.ts: targeting, injection, files,
// adapter management) and one method (VeRA, LoRA): its config, its layer, what it saves per layer and
// per model, and any model-wide state (VeRA's shared projections). PEFT's BaseTuner hooks, reduced to
// what the two methods need.

import type { Backend } from '../backends/backend.js';
import type { LinearLike } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import type { CommonConfig } from './config.js';
import type { AdapterLayer } from './layer.js';
import type { PyJson } from './python-json.js';
import type { BaseDType } from './vera/projections.js';

/** Facts about the base model an adapter is applied to. */
export interface ModelContext {
  backend: Backend;
  /** Storage dtype of the checkpoint's weights (config.json's dtype / torch_dtype). */
  baseDType: BaseDType;
  modelType: string | null;
}

export interface Target {
  path: string;
  layer: LinearLike;
}

/** A tensor the adapter file must hold: its key (relative to "base_model.model." for layer keys) and shape. */
export interface ExpectedTensor {
  key: string;
  shape: readonly number[];
  /** Puts the loaded values in place. */
  assign(values: Tensor): void;
  /** Accepted when present but not loaded (PEFT ignores it too). */
  ignore?: boolean;
  /** Said when the key is missing. */
  missingHint?: string;
}

export interface AdapterMethod<C extends CommonConfig = CommonConfig> {
  readonly peftType: 'VERA' | 'LORA';
  /** Parameter-name prefix that marks this method's trainable tensors ("vera_lambda_", "lora_"). */
  readonly prefix: string;
  fromJson(json: Record<string, unknown>, file: string): C;
  toJson(config: C): Record<string, PyJson>;
  /** Throws when a new adapter cannot live next to the existing ones (PEFT's config checks). */
  checkNewAdapter(name: string, config: C, existing: ReadonlyMap<string, C>): void;
  /**
   * Sets up model-wide state for an adapter before its layers exist (VeRA: the projections, from the
   * file's tensors when `stored` has them). Returns the model-level tensors the file must hold.
   */
  prepare(
    name: string,
    config: C,
    targets: readonly Target[],
    ctx: ModelContext,
    stored: ReadonlySet<string> | null,
  ): ExpectedTensor[];
  isLayer(m: Module): m is AdapterLayer;
  createLayer(base: LinearLike, path: string): AdapterLayer;
  /** Adds the adapter's parameters to a layer (initialised per the config). */
  addToLayer(layer: AdapterLayer, name: string, config: C, path: string, ctx: ModelContext): void;
  /** The layer's tensors an adapter file holds for this adapter, by key suffix ("vera_lambda_b", "lora_A.weight"). */
  layerTensors(layer: AdapterLayer, name: string): [string, Tensor][];
  /** Model-level tensors written for an adapter ("base_model.vera_A"), given its config. */
  modelTensors(name: string, config: C): [string, Tensor][];
  /** Frees model-level state of an adapter. */
  deleteAdapter(name: string): void;
}
