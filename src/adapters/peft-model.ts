// PeftModel: a base model with VeRA or LoRA adapters, in the shape PEFT users know — getPeftModel,
// PeftModel.fromPretrained, savePretrained, add/set/delete/disable adapters, merge/unmerge,
// mergeAndUnload. Files are PEFT's: adapter_config.json (sorted keys, Python formatting) and
// adapter_model.safetensors (F32, {"format": "pt"}, "base_model.model.<path>.<param>" keys).

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad } from '../autograd/graph.js';
import type { Backend } from '../backends/backend.js';
import { readJsonFile } from '../io/json.js';
import { SafetensorsReader, writeSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Module } from '../nn/module.js';
import * as ops from '../ops/index.js';
import { scope } from '../tensor/scope.js';
import { shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { AdapterError } from './errors.js';
import { findTargets, resolveTargets, stage, visibleModules } from './inject.js';
import { AdapterLayer } from './layer.js';
import { BASE_ADAPTER, withRowCache } from './mixed.js';
import { type LoraConfig } from './lora/config.js';
import { LoraMethod } from './lora/model.js';
import type { AdapterMethod, ExpectedTensor, ModelContext } from './method.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import { pythonJson } from './python-json.js';
import { setModule } from './tree.js';
import { type VeraConfig } from './vera/config.js';
import { VeraMethod } from './vera/model.js';
import type { BaseDType } from './vera/projections.js';

export type AdapterConfig = VeraConfig | LoraConfig;

/** What adapters need from a base model: a module tree and a forward (HF models add config fields). */
export interface AdaptableModel extends Module {
  forward(...args: never[]): Tensor;
  readonly config?: Record<string, unknown>;
  readonly modelType?: string;
  readonly architecture?: string;
  /** Where the model was loaded from (saved as base_model_name_or_path). */
  readonly nameOrPath?: string | null;
  /**
   * How older checkpoint layouts name this model's modules (ViT in transformers 4.x): `rename` maps an
   * old name onto the module tree, `saveAs` maps a current name to the old one.
   */
  weightSpec?(): { rename?: (key: string) => string; saveAs?: (key: string) => string };
}

export interface PeftModelOpts {
  /**
   * Draw VeRA projections with torch's fused multiply-add recipe (default; torch's AVX2/AVX-512 CPU
   * kernels, which PEFT users on x86 get) or without it (torch's generic kernel). Only matters for
   * adapters saved without projections (save_projection=false).
   */
  projectionFma?: boolean;
  /**
   * VeRA: layers that read the same input (q/k/v_proj, gate/up_proj) compute A_s·x once and share it,
   * forward and backward (default true; outputs are unchanged). False computes it in every layer, as
   * PEFT does. PeftModel.shareVeraInput switches it later.
   */
  shareVeraInput?: boolean;
}

export interface LoadAdapterOpts extends PeftModelOpts {
  adapterName?: string;
  /** Leave the adapter's parameters trainable (PEFT's is_trainable; default false). */
  isTrainable?: boolean;
}

const CONFIG_FILE = 'adapter_config.json';
const WEIGHTS_FILE = 'adapter_model.safetensors';

/** PEFT's tuner module (VeraModel / LoraModel): holds the adapted model as `model`. */
class TunerModel extends Module {
  constructor(public model: AdaptableModel) {
    super();
  }
}

function methodFor(peftType: unknown, file: string, opts: PeftModelOpts): AdapterMethod {
  if (peftType === 'VERA')
    return new VeraMethod({
      fma: opts.projectionFma ?? true,
      shareInput: opts.shareVeraInput ?? true,
    }) as AdapterMethod;
  if (peftType === 'LORA') return new LoraMethod() as AdapterMethod;
  throw new AdapterError(
    `[adapters] ${file}: unknown peft_type ${JSON.stringify(peftType)}; vera-ts reads "VERA" and "LORA"`,
  );
}

function contextOf(model: AdaptableModel): ModelContext {
  const first = model.parameters()[0];
  if (!first) throw new AdapterError('[adapters] The base model has no parameters');
  const cfg = model.config ?? {};
  const stored = String(cfg['dtype'] ?? cfg['torch_dtype'] ?? 'float32');
  const baseDType: BaseDType = stored === 'bfloat16' ? 'bf16' : stored === 'float16' ? 'f16' : 'f32';
  return {
    backend: first.backend as Backend,
    baseDType,
    modelType: model.modelType ?? (cfg['model_type'] as string | undefined) ?? null,
  };
}

export class PeftModel<M extends AdaptableModel = AdaptableModel> extends Module {
  base_model: TunerModel;
  readonly peftConfig = new Map<string, AdapterConfig>();
  activeAdapter: string;
  readonly #method: AdapterMethod;
  readonly #ctx: ModelContext;

  private constructor(model: M, method: AdapterMethod) {
    super();
    this.base_model = new TunerModel(model);
    this.#method = method;
    this.#ctx = contextOf(model);
    this.activeAdapter = 'default';
  }

  /** PEFT's get_peft_model: wraps `model` with a new, trainable adapter. */
  static create<M extends AdaptableModel>(
    model: M,
    config: AdapterConfig,
    adapterName = 'default',
    opts: PeftModelOpts = {},
  ): PeftModel<M> {
    const peft = new PeftModel(model, methodFor(config.peft_type, 'config', opts));
    peft.addAdapter(adapterName, config);
    return peft;
  }

  /** PEFT's PeftModel.from_pretrained: `model` with the adapter saved in `dir`. */
  static fromPretrained<M extends AdaptableModel>(model: M, dir: string, opts: LoadAdapterOpts = {}): PeftModel<M> {
    const json = readConfigJson(dir);
    const peft = new PeftModel(model, methodFor(json['peft_type'], join(dir, CONFIG_FILE), opts));
    peft.loadAdapter(dir, opts.adapterName ?? 'default', opts);
    // As PEFT's from_pretrained: loaded for inference, the model is put in eval mode (no dropout).
    if (!opts.isTrainable) peft.model.eval();
    return peft;
  }

  /** The adapted model (its forward runs the adapters). */
  get model(): M {
    return this.base_model.model as M;
  }

  get peftType(): 'VERA' | 'LORA' {
    return this.#method.peftType;
  }

  /** The adapted model's forward (same arguments). */
  forward(...args: Parameters<M['forward']>): Tensor {
    return this.model.forward(...(args as never[]));
  }

  /** Adds a new adapter initialised per its config; it trains, and becomes active if it is the first. */
  addAdapter(name: string, config: AdapterConfig): void {
    this.#install(name, { ...config }, null, true);
  }

  /** Loads a saved adapter under `name` (PEFT's load_adapter). */
  loadAdapter(dir: string, name: string, opts: LoadAdapterOpts = {}): void {
    const json = readConfigJson(dir);
    const file = join(dir, CONFIG_FILE);
    if (json['peft_type'] !== this.#method.peftType) {
      throw new AdapterError(
        `[adapters] ${file}: peft_type "${String(json['peft_type'])}" differs from this model's ${this.#method.peftType} adapters`,
      );
    }
    const config = this.#method.fromJson(json, file) as AdapterConfig;
    const weights = join(dir, WEIGHTS_FILE);
    if (!existsSync(weights)) {
      const bin = existsSync(join(dir, 'adapter_model.bin'))
        ? ' (adapter_model.bin is not supported: save with safe_serialization=True)'
        : '';
      throw new AdapterError(`[adapters] ${dir}: no ${WEIGHTS_FILE}${bin}`);
    }
    const reader = SafetensorsReader.open(weights);
    try {
      this.#install(name, config, reader, opts.isTrainable ?? false);
    } finally {
      reader.close();
    }
  }

  #install(name: string, config: AdapterConfig, reader: SafetensorsReader | null, trainable: boolean): void {
    if (this.peftConfig.has(name)) throw new AdapterError(`[adapters] An adapter named "${name}" already exists`);
    if (config.peft_type !== this.#method.peftType) {
      throw new AdapterError(
        `[adapters] Cannot add a ${config.peft_type} adapter to a model with ${this.#method.peftType} adapters`,
      );
    }
    const others = new Map(this.peftConfig);
    if ([...others.values(), config].filter((c) => c.bias !== 'none').length > 1) {
      throw new AdapterError(
        '[adapters] PeftModel supports only 1 adapter with bias. When using multiple adapters, set bias to "none" for all adapters',
      );
    }
    this.#method.checkNewAdapter(name, config, others);
    resolveTargets(config, this.model, this.#ctx, this.#method);
    const legacy = this.model.weightSpec?.().saveAs ?? null;
    const targets = findTargets(
      config,
      this.model,
      this.#method,
      (config as LoraConfig).exclude_modules ?? null,
      legacy,
    );
    const stored = reader ? new Set(reader.names()) : null;
    const staged = stage(name, config, this.model, this.#method, this.#ctx, targets, stored);
    if (reader) {
      try {
        noGrad(() => loadInto(reader, staged.expected, name, this.#ctx.backend, this.#renameKey.bind(this)));
      } catch (e) {
        staged.rollback();
        throw e;
      }
    }
    staged.commit();
    this.peftConfig.set(name, config);
    if (this.peftConfig.size === 1) this.setAdapter(name);
    this.#markTrainable(trainable ? name : null);
  }

  /** A file key in an older layout (PEFT adapters of transformers 4.x ViT) as this model names it. */
  #renameKey(key: string): string {
    const rename = this.model.weightSpec?.().rename;
    const prefix = 'base_model.model.';
    return rename && key.startsWith(prefix) ? prefix + rename(key.slice(prefix.length)) : key;
  }

  /** Makes `name` the adapter the forward uses. */
  setAdapter(name: string): void {
    if (!this.peftConfig.has(name))
      throw new AdapterError(
        `[adapters] Adapter "${name}" not found; adapters: ${[...this.peftConfig.keys()].join(', ')}`,
      );
    this.activeAdapter = name;
    for (const [, m] of this.model.namedModules()) {
      if (m instanceof AdapterLayer) m.activeAdapters = m.adapterNames().includes(name) ? [name] : [];
      else if (m instanceof ModulesToSaveWrapper) m.activeAdapter = m.modules_to_save.has(name) ? name : null;
    }
  }

  deleteAdapter(name: string): void {
    if (!this.peftConfig.has(name)) throw new AdapterError(`[adapters] Adapter "${name}" not found`);
    for (const [, m] of this.model.namedModules()) {
      if (m instanceof AdapterLayer || m instanceof ModulesToSaveWrapper) m.deleteAdapter(name);
    }
    this.#method.deleteAdapter(name);
    this.peftConfig.delete(name);
    if (this.activeAdapter === name && this.peftConfig.size > 0) this.setAdapter(this.peftConfig.keys().next().value!);
  }

  /**
   * Runs fn with each batch row on its own adapter (PEFT's `adapter_names`): names[i] is row i's adapter,
   * or BASE_ADAPTER ('__base__') for none. Inference only: the model must be in eval mode and nothing
   * merged. With VeRA a mixed batch costs what a batch of one adapter costs (src/adapters/mixed.ts).
   */
  withAdapterNames<T>(names: readonly string[], fn: () => T): T {
    const known = [...this.peftConfig.keys()];
    for (const n of names)
      if (n !== BASE_ADAPTER && !this.peftConfig.has(n))
        throw new AdapterError(
          `[adapters] Adapter "${n}" not found; adapters: ${known.join(', ')} (or ${BASE_ADAPTER})`,
        );
    if (this.model.training)
      throw new AdapterError('[adapters] Mixed-adapter batches are for inference: call model.eval() first');
    const layers = this.model
      .namedModules()
      .map(([, m]) => m)
      .filter(
        (m): m is AdapterLayer | ModulesToSaveWrapper => m instanceof AdapterLayer || m instanceof ModulesToSaveWrapper,
      );
    if (layers.some((m) => m instanceof AdapterLayer && m.mergedAdapters.length > 0))
      throw new AdapterError('[adapters] Mixed-adapter batches need unmerged adapters: call unmerge() first');
    const rows = names.map((n) => (n === BASE_ADAPTER ? null : n));
    for (const m of layers) m.rowAdapters = rows;
    try {
      return withRowCache(fn);
    } finally {
      for (const m of layers) m.rowAdapters = null;
    }
  }

  /** Runs fn with every adapter (and modules_to_save copy) switched off. */
  disableAdapter<T>(fn: () => T): T {
    const switches = this.model
      .namedModules()
      .filter(([, m]) => m instanceof AdapterLayer || m instanceof ModulesToSaveWrapper);
    for (const [, m] of switches) (m as AdapterLayer).disabled = true;
    try {
      return fn();
    } finally {
      for (const [, m] of switches) (m as AdapterLayer).disabled = false;
    }
  }

  /** Merges the active adapter into the base weights (the forward then costs what the base costs). */
  merge(opts: { safe?: boolean } = {}): void {
    for (const [, m] of this.model.namedModules()) if (m instanceof AdapterLayer) m.merge([this.activeAdapter], opts);
  }

  unmerge(): void {
    for (const [, m] of this.model.namedModules()) if (m instanceof AdapterLayer) m.unmerge();
  }

  /**
   * Merges the active adapter and returns the base model with plain layers again (modules_to_save
   * replaced by the adapter's copies), ready for savePretrained. This PeftModel is unusable afterwards.
   */
  mergeAndUnload(opts: { safe?: boolean } = {}): M {
    this.merge(opts);
    return this.unload();
  }

  /** Removes the adapter layers without merging (the base model as it was). */
  unload(): M {
    for (const [path, m] of visibleModules(this.model, this.#method)) {
      if (m instanceof AdapterLayer) {
        for (const name of m.adapterNames()) if (!m.mergedAdapters.includes(name)) m.deleteAdapter(name);
        setModule(this.model, path, m.base_layer);
      } else if (m instanceof ModulesToSaveWrapper) {
        setModule(this.model, path, m.current());
      }
    }
    for (const p of this.model.parameters()) p.requiresGrad = false;
    return this.model;
  }

  /** VeRA's shared projections A (r, max_in) and B (max_out, r) used by an adapter (null for LoRA). */
  projections(name = this.activeAdapter): { A: Tensor; B: Tensor } | null {
    return this.#method instanceof VeraMethod ? (this.#method.projections.get(name) ?? null) : null;
  }

  /** VeRA: whether layers reading the same input share one A_s·x (PeftModelOpts.shareVeraInput); false for LoRA. */
  get shareVeraInput(): boolean {
    return this.#method instanceof VeraMethod && this.#method.sharedInput.enabled;
  }

  set shareVeraInput(on: boolean) {
    if (!(this.#method instanceof VeraMethod)) {
      if (on) throw new AdapterError('[adapters] shareVeraInput applies to VeRA adapters; this model holds LoRA ones');
      return;
    }
    this.#method.sharedInput.enabled = on;
    this.#method.sharedInput.clear();
  }

  /** The tensors PEFT saves for an adapter, by file key. */
  adapterStateDict(name = this.activeAdapter): Map<string, Tensor> {
    const config = this.#config(name);
    const out = new Map<string, Tensor>();
    for (const [path, m] of visibleModules(this.model, this.#method)) {
      if (m instanceof AdapterLayer && m.adapterNames().includes(name)) {
        for (const [suffix, t] of this.#method.layerTensors(m, name)) out.set(`base_model.model.${path}.${suffix}`, t);
        if ((config.bias === 'vera_only' || config.bias === 'lora_only') && m.base_layer.bias)
          out.set(`base_model.model.${path}.base_layer.bias`, m.base_layer.bias);
      } else if (m instanceof ModulesToSaveWrapper && m.modules_to_save.has(name)) {
        for (const [p, t] of m.modules_to_save.get(name)!.namedParameters())
          out.set(`base_model.model.${path}.${p}`, t);
      }
    }
    if (config.bias === 'all') {
      for (const [p, t] of this.model.namedParameters()) {
        if (p.endsWith('.bias') && !p.includes('.modules_to_save.') && !p.includes('.original_module.'))
          out.set(`base_model.model.${p}`, t);
      }
    }
    for (const [k, t] of this.#method.modelTensors(name, config)) out.set(k, t);
    return out;
  }

  /**
   * Writes adapter_config.json and adapter_model.safetensors for each adapter (default: all), the
   * "default" adapter in `dir` and others in `dir/<name>/`, as PEFT lays them out. Writes are atomic.
   */
  savePretrained(dir: string, opts: { selectedAdapters?: string[] } = {}): void {
    for (const name of opts.selectedAdapters ?? [...this.peftConfig.keys()]) {
      const config = this.#config(name);
      const out = name === 'default' ? dir : join(dir, name);
      mkdirSync(out, { recursive: true });
      scope(() => {
        const tensors = new Map<string, Tensor>();
        for (const [k, t] of this.adapterStateDict(name))
          tensors.set(
            k,
            noGrad(() => ops.cast(t, 'f32')),
          );
        writeSafetensors(join(out, WEIGHTS_FILE), tensors, { format: 'pt' });
      });
      writeFileAtomic(join(out, CONFIG_FILE), pythonJson(this.#configJson(config)));
    }
  }

  #configJson(config: AdapterConfig) {
    const json = this.#method.toJson(config as never);
    json['base_model_name_or_path'] = config.base_model_name_or_path ?? this.model.nameOrPath ?? null;
    json['inference_mode'] = true;
    if (config.task_type === null && this.model.architecture) {
      const type = this.#ctx.modelType ?? '';
      json['auto_mapping'] = {
        base_model_class: this.model.architecture,
        parent_library: `transformers.models.${type}.modeling_${type}`,
      };
    }
    return json;
  }

  #config(name: string): AdapterConfig {
    const c = this.peftConfig.get(name);
    if (!c)
      throw new AdapterError(
        `[adapters] Adapter "${name}" not found; adapters: ${[...this.peftConfig.keys()].join(', ')}`,
      );
    return c;
  }

  /** PEFT's mark_only_adapters_as_trainable for one adapter (null: everything frozen, inference). */
  #markTrainable(name: string | null): void {
    for (const p of this.model.parameters()) p.requiresGrad = false;
    if (name === null) return;
    const config = this.#config(name);
    const frozen = new Set(this.#method.modelTensors(name, config).map(([, t]) => t));
    for (const [, m] of visibleModules(this.model, this.#method))
      if (m instanceof AdapterLayer) for (const t of m.fixedTensors(name)) frozen.add(t);
    for (const t of this.adapterStateDict(name).values()) if (!frozen.has(t)) t.requiresGrad = true;
  }

  /** PEFT's print_trainable_parameters line. */
  trainableParametersSummary(): string {
    const all = this.model.numParameters();
    const trainable = this.trainableParameters().reduce((n, [, t]) => n + t.numel, 0);
    return `trainable params: ${trainable.toLocaleString('en-US')} || all params: ${all.toLocaleString('en-US')} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
  }

  /** Bytes of an adapter's tensors as saved (float32), without the file header. */
  adapterBytes(name = this.activeAdapter): number {
    let n = 0;
    for (const t of this.adapterStateDict(name).values()) n += t.numel * 4;
    return n;
  }
}

/** PEFT's get_peft_model. */
export function getPeftModel<M extends AdaptableModel>(
  model: M,
  config: AdapterConfig,
  opts: PeftModelOpts & { adapterName?: string } = {},
): PeftModel<M> {
  return PeftModel.create(model, config, opts.adapterName ?? 'default', opts);
}

function readConfigJson(dir: string): Record<string, unknown> {
  const file = join(dir, CONFIG_FILE);
  if (!existsSync(file))
    throw new AdapterError(`[adapters] ${dir}: no ${CONFIG_FILE} (is this a PEFT adapter directory?)`);
  const json = readJsonFile(file);
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new AdapterError(`[adapters] ${file}: expected a JSON object`);
  return json as Record<string, unknown>;
}

/** Reads every expected tensor from the file after checking the key sets and shapes agree. */
function loadInto(
  reader: SafetensorsReader,
  expected: readonly ExpectedTensor[],
  name: string,
  backend: Backend,
  rename: (key: string) => string,
): void {
  const file = reader.path;
  // File key as the model names it → file key as written.
  const inFile = new Map(reader.names().map((k) => [rename(k), k]));
  const byKey = new Map(expected.map((e) => [e.key, e]));
  const missing = expected.filter((e) => !e.ignore && !inFile.has(e.key));
  if (missing.length > 0) {
    const first = missing[0]!;
    throw new AdapterError(
      `[adapters] ${file}: missing key "${first.key}"${missing.length > 1 ? ` (and ${missing.length - 1} more)` : ''} for adapter "${name}"${first.missingHint ? `: ${first.missingHint}` : ''}`,
    );
  }
  const unexpected = [...inFile].filter(([k]) => !byKey.has(k)).map(([, k]) => k);
  if (unexpected.length > 0) {
    throw new AdapterError(
      `[adapters] ${file}: unexpected key "${unexpected[0]}"${unexpected.length > 1 ? ` (and ${unexpected.length - 1} more)` : ''}: no such module or parameter in this model with this config (is the adapter for another base model, or are target_modules/layers_to_transform different?)`,
    );
  }
  for (const e of expected) {
    if (e.ignore) continue;
    const info = reader.info(inFile.get(e.key)!);
    if (!shapesEqual(info.shape, e.shape)) {
      const rHint = /vera_lambda_d$|lora_A\.weight$/.test(e.key) ? " (does the config's r match the file?)" : '';
      throw new AdapterError(
        `[adapters] ${file}: "${inFile.get(e.key)}" has shape (${info.shape.join(', ')}) but the model needs (${e.shape.join(', ')})${rHint}`,
      );
    }
  }
  for (const e of expected) {
    if (e.ignore) continue;
    scope(() => e.assign(reader.tensor(inFile.get(e.key)!, { dtype: 'f32', backend })));
  }
}
