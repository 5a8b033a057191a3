// Finding an adapter's targets in a model and staging its layers. Staging builds (or extends) every
// adapter layer and modules_to_save copy off to the side and lists the tensors an adapter file must
// hold; nothing touches the model until commit(), so a bad file leaves the model as it was.

import { Linear, type LinearLike } from '../nn/layers.js';
import { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import type { CommonConfig } from './config.js';
import { AdapterError } from './errors.js';
import type { AdapterLayer } from './layer.js';
import type { AdapterMethod, ExpectedTensor, ModelContext, Target } from './method.js';
import { ModulesToSaveWrapper } from './modules-to-save.js';
import { isTargeted, matchesModulesToSave } from './targets.js';
import { setModule } from './tree.js';

/** Target modules PEFT picks when target_modules is null (its per-model-type mapping). */
const DEFAULT_TARGETS: Record<string, string[]> = {
  gpt2: ['c_attn'],
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  bert: ['query', 'value'],
  roberta: ['query', 'value'],
  vit: ['q_proj', 'v_proj'],
};

/** Head names PEFT adds to modules_to_save for sequence classification. */
const CLASSIFIER_NAMES = ['classifier', 'score'];

/** Module paths of a model, skipping the insides of adapter layers and modules_to_save wrappers. */
export function visibleModules(model: Module, method: AdapterMethod | null): [string, Module][] {
  const out: [string, Module][] = [];
  const hidden: string[] = [];
  for (const [path, m] of model.namedModules()) {
    if (hidden.some((h) => path.startsWith(`${h}.`))) continue;
    out.push([path, m]);
    if (m instanceof ModulesToSaveWrapper || (method?.isLayer(m) ?? false)) hidden.push(path);
  }
  return out;
}

/** Resolves null and "all-linear" target_modules the way PEFT does, in place. */
export function resolveTargets(config: CommonConfig, model: Module, ctx: ModelContext, method: AdapterMethod): void {
  if (config.task_type === 'SEQ_CLS') {
    config.modules_to_save = [...new Set([...(config.modules_to_save ?? []), ...CLASSIFIER_NAMES])];
  }
  if (config.target_modules === null) {
    const d = ctx.modelType ? DEFAULT_TARGETS[ctx.modelType] : undefined;
    if (!d)
      throw new AdapterError(
        '[adapters] Please specify `target_modules` in `peft_config` (no default is known for this model type)',
      );
    config.target_modules = [...d];
  } else if (config.target_modules === 'all-linear') {
    // Every linear layer but the output head (lm_head) and, for classification, the classifier.
    const heads = new Set(['lm_head', ...(config.task_type === 'SEQ_CLS' ? CLASSIFIER_NAMES : [])]);
    config.target_modules = visibleModules(model, method)
      .filter(([path, m]) => (m instanceof Linear || method.isLayer(m)) && !heads.has(path.split('.').pop()!))
      .filter(([path]) => !matchesModulesToSave(config.modules_to_save, path))
      .map(([path]) => path);
  }
}

/** The layers an adapter with this config wraps (or extends), in model order; `legacyName` gives a path's older name. */
export function findTargets(
  config: CommonConfig,
  model: Module,
  method: AdapterMethod,
  exclude: string[] | string | null,
  legacyName: ((path: string) => string) | null,
): Target[] {
  const targets: Target[] = [];
  for (const [path, m] of visibleModules(model, method)) {
    if (!(m instanceof Linear) && !method.isLayer(m)) continue;
    // Configs written against an older module layout (ViT in transformers 4.x) name the old paths.
    if (!isTargeted(config, path) && !(legacyName && isTargeted(config, legacyName(path)))) continue;
    if (
      exclude !== null &&
      (typeof exclude === 'string'
        ? new RegExp(`^(?:${exclude})$`, 'u').test(path)
        : exclude.some((e) => path === e || path.endsWith(`.${e}`)))
    )
      continue;
    targets.push({ path, layer: m as LinearLike });
  }
  if (targets.length === 0) {
    const linears = visibleModules(model, method)
      .filter(([, m]) => m instanceof Linear)
      .map(([p]) => p);
    throw new AdapterError(
      `[adapters] No layers types compatible with the adapter were found for target_modules ${JSON.stringify(config.target_modules)}. Please check \`peft_config.target_modules\`; linear layers of this model include: ${linears.slice(0, 8).join(', ')}${linears.length > 8 ? ', …' : ''}`,
    );
  }
  return targets;
}

/** An adapter's layers and copies, built but not yet in the model. */
export interface Staged {
  expected: ExpectedTensor[];
  commit(): void;
  rollback(): void;
}

export function stage(
  name: string,
  config: CommonConfig,
  model: Module,
  method: AdapterMethod,
  ctx: ModelContext,
  targets: readonly Target[],
  stored: ReadonlySet<string> | null,
): Staged {
  const expected: ExpectedTensor[] = [];
  const swaps: [string, Module][] = [];
  // Layers/wrappers that gained this adapter; undo removes it from each.
  const touched: { deleteAdapter(name: string): void }[] = [];
  try {
    expected.push(...method.prepare(name, config, targets, ctx, stored));
    for (const { path, layer } of targets) {
      const m = layer as unknown as Module;
      let adapterLayer: AdapterLayer;
      if (method.isLayer(m)) {
        adapterLayer = m;
      } else {
        forceFanInFanOut(config, layer as Linear, path);
        adapterLayer = method.createLayer(layer, path);
        swaps.push([path, adapterLayer]);
      }
      method.addToLayer(adapterLayer, name, config, path, ctx);
      touched.push(adapterLayer);
      for (const [suffix, t] of method.layerTensors(adapterLayer, name))
        expected.push(expectation(`base_model.model.${path}.${suffix}`, t));
      if ((config.bias === 'vera_only' || config.bias === 'lora_only') && adapterLayer.base_layer.bias) {
        expected.push(expectation(`base_model.model.${path}.base_layer.bias`, adapterLayer.base_layer.bias));
      }
    }
    for (const [path, m] of visibleModules(model, method)) {
      if (path === '' || !matchesModulesToSave(config.modules_to_save, path)) continue;
      const wrapper = m instanceof ModulesToSaveWrapper ? m : new ModulesToSaveWrapper(m);
      wrapper.addAdapter(name);
      touched.push(wrapper);
      if (wrapper !== m) swaps.push([path, wrapper]);
      for (const [pname, t] of wrapper.modules_to_save.get(name)!.namedParameters())
        expected.push(expectation(`base_model.model.${path}.${pname}`, t));
    }
    if (config.bias === 'all') {
      for (const [pname, t] of model.namedParameters()) {
        if (pname.endsWith('.bias') && !pname.includes('.modules_to_save.') && !pname.includes('.original_module.')) {
          expected.push(expectation(`base_model.model.${biasKey(pname, swaps)}`, t));
        }
      }
    }
  } catch (e) {
    undo();
    throw e;
  }

  function undo(): void {
    for (const t of touched) t.deleteAdapter(name);
    method.deleteAdapter(name);
  }

  return {
    expected,
    commit: () => {
      for (const [path, m] of swaps) setModule(model, path, m);
    },
    rollback: undo,
  };
}

/** PEFT forces fan_in_fan_out to the layer's layout (Conv1D: true), with a warning, and saves that. */
function forceFanInFanOut(config: CommonConfig, layer: Linear, path: string): void {
  if (config.fan_in_fan_out === layer.fanInFanOut) return;
  process.emitWarning(
    `fan_in_fan_out is set to ${config.fan_in_fan_out ? 'True' : 'False'} but the target module "${path}" stores its weight ${layer.fanInFanOut ? '[in, out] (Conv1D)' : '[out, in]'}. Setting fan_in_fan_out to ${layer.fanInFanOut ? 'True' : 'False'}.`,
    { code: 'VERA_FAN_IN_FAN_OUT' },
  );
  config.fan_in_fan_out = layer.fanInFanOut;
}

/** Where a bias lives once its layer is wrapped: "<path>.base_layer.bias". */
function biasKey(pname: string, swaps: readonly [string, Module][]): string {
  const owner = pname.slice(0, -'.bias'.length);
  return swaps.some(([p, m]) => p === owner && !(m instanceof ModulesToSaveWrapper))
    ? `${owner}.base_layer.bias`
    : pname;
}

function expectation(key: string, t: Tensor): ExpectedTensor {
  return { key, shape: t.shape, assign: (v) => t.backend.copy(t.view('load'), v.view('load')) };
}
