// PreTrainedModel, the base of every HF model class: keeps config.json as read, maps checkpoint keys to
// parameters (prefixes, buffers, renames, tied weights), loads one tensor at a time with exact key/shape
// checks (or, for a new task head on a pretrained base, leaves the head to be initialised), and saves
// config.json + model.safetensors as transformers' save_pretrained does.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { Checkpoint } from '../io/checkpoint.js';
import { writeSafetensors } from '../io/safetensors.js';
import { Module } from '../nn/module.js';
import type { DType } from '../backends/dtype.js';
import { fmtShape } from '../tensor/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { HFConfig } from './config-utils.js';
import { adoptParameter, loadTarget, readParameter } from './storage.js';

export type Task = 'causal-lm' | 'sequence-classification' | 'image-classification';

/**
 * What a causal model's attention needs from a key/value cache (src/generate's KVCache implements it):
 * models know this interface, not the cache class, so they stay below generate.
 */
export interface LayerCache {
  /** Tokens cached so far (layer 0's count). */
  readonly length: number;
  /** Appends k, v [B, T, Hkv, D] to `layer` and returns everything cached for it, [B, Tpast + T, Hkv, D]. */
  update(layer: number, k: Tensor, v: Tensor): { k: Tensor; v: Tensor };
}

export interface ModelInputs {
  /** i32 [B, T]. */
  inputIds?: Tensor;
  /** i32/bool [B, Tk] (Tk = cached + new tokens), 1 = token, 0 = padding. */
  attentionMask?: Tensor;
  /** i32 [B, T]; zeros when omitted. */
  tokenTypeIds?: Tensor;
  /** i32 [B, T]; arange(cached, cached + T) when omitted. */
  positionIds?: Tensor;
  /** f32 [B, C, H, W]. */
  pixelValues?: Tensor;
  /** Keys and values of earlier tokens (causal LMs); appended to by the forward. */
  cache?: LayerCache;
  /** Causal LMs: compute logits for the last n positions only (transformers' logits_to_keep). */
  logitsToKeep?: number;
  /**
   * Causal LMs: return the per-position cross-entropy against these targets, f32 [B, T] (0 where a
   * target is ignoreIndex), instead of the logits. A frozen bias-free LM head computes it in row chunks
   * (ops.linearCrossEntropy), so the [B·T, vocab] logits never exist at once.
   */
  lossTargets?: LossTargets;
}

export interface LossTargets {
  /** i32 [B, T]: position t's target token. */
  targets: Tensor;
  /** Default −100. */
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/** How a family's checkpoint keys relate to its parameter names. */
export interface WeightSpec {
  /** transformers' base_model_prefix ("transformer", "model", "bert", …): checkpoints of the bare model lack it. */
  basePrefix: string;
  /** Non-parameter tensors that checkpoints may hold (causal-mask buffers, position_ids, inv_freq). */
  ignore: readonly RegExp[];
  /** Renames of older checkpoint layouts onto this one (ViT 4.x → 5.x). */
  rename?: (key: string) => string;
  /** The key savePretrained writes for a parameter, when transformers writes another layout (ViT: 4.x). */
  saveAs?: (param: string) => string;
}

export abstract class PreTrainedModel extends Module {
  /** config.json as read; savePretrained writes it back (with `dtype` and `architectures` updated). */
  readonly config: HFConfig;
  /** The directory the model was loaded from (adapters record it as base_model_name_or_path). */
  nameOrPath: string | null = null;
  abstract readonly modelType: string;
  /** The transformers class name, e.g. "LlamaForCausalLM". */
  abstract readonly architecture: string;
  abstract readonly task: Task;

  constructor(config: HFConfig) {
    super();
    this.config = config;
  }

  /** Logits: [B, T, V] for causal LMs, [B, numLabels] for classifiers. */
  abstract forward(inputs: ModelInputs): Tensor;

  abstract weightSpec(): WeightSpec;

  /** [alias, source] parameter names that share one tensor (lm_head.weight and the embedding). */
  tiedWeights(): [string, string][] {
    return [];
  }

  /** The parameter a checkpoint key loads into, null for a known buffer to skip, undefined if unknown. */
  parameterFor(key: string, params: ReadonlyMap<string, Tensor>): string | null | undefined {
    const spec = this.weightSpec();
    const candidates = [key, `${spec.basePrefix}.${key}`];
    if (spec.rename) candidates.push(...candidates.map(spec.rename));
    const hit = candidates.find((c) => params.has(c));
    if (hit !== undefined) return hit;
    if (spec.ignore.some((re) => re.test(key))) return null;
    return undefined;
  }

  /** Parameter name → tensor for every distinct parameter (tied aliases left out, as save_pretrained does). */
  stateDict(): Map<string, Tensor> {
    const aliases = new Set(this.tiedWeights().map(([alias]) => alias));
    const seen = new Set<Tensor>();
    const out = new Map<string, Tensor>();
    for (const [name, t] of this.namedParameters()) {
      if (aliases.has(name) || seen.has(t)) continue;
      seen.add(t);
      out.set(name, t);
    }
    return out;
  }

  /** Writes config.json and model.safetensors (HF key names, the parameters' dtype), each atomically. */
  savePretrained(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const state = this.stateDict();
    const dtype = [...state.values()][0]?.dtype ?? 'f32';
    const saveAs = this.weightSpec().saveAs ?? ((name: string) => name);
    const tensors = new Map([...state].map(([name, t]) => [saveAs(name), t]));
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    const config: HFConfig = { ...this.config, architectures: [this.architecture] };
    const name = TORCH_DTYPE_NAMES[dtype];
    if (name) {
      if ('torch_dtype' in config) config['torch_dtype'] = name;
      if ('dtype' in config || !('torch_dtype' in config)) config['dtype'] = name;
    }
    writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  }

  /** Whether a parameter belongs to the task head (score, classifier, lm_head), which newHead may initialise. */
  isHeadParameter(name: string): boolean {
    return HEAD_MODULES.some((h) => name.startsWith(`${h}.`));
  }

  /**
   * Loads every parameter from `ckpt` (one tensor at a time, converted into the existing parameter's
   * storage). Throws before reading any data when a key is unexpected or missing or a shape differs.
   * With `newHead`, head parameters (isHeadParameter) that the file lacks or holds in another shape are
   * left as they are and returned, and the keys of another task's head (the lm_head of a causal-LM file
   * loaded for classification) are ignored; every other key must still load exactly.
   */
  loadCheckpoint(ckpt: Checkpoint, source: string = ckpt.dir, opts: { newHead?: boolean } = {}): string[] {
    const tag = `[loadModel] ${source} (${this.architecture})`;
    const newHead = opts.newHead ?? false;
    const params = new Map(this.namedParameters());
    const tied = new Map(this.tiedWeights());
    const plan = new Map<string, string>(); // parameter → checkpoint key
    const aliasKeys = new Map<string, string>(); // tied source → key of its alias (lm_head.weight) in the file
    const unexpected: string[] = [];
    const basePrefix = `${this.weightSpec().basePrefix}.`;
    for (const key of ckpt.names()) {
      const target = this.parameterFor(key, params);
      if (target === null) continue;
      if (target === undefined) {
        const bare = key.startsWith(basePrefix) ? key.slice(basePrefix.length) : key;
        if (!(newHead && OTHER_HEAD_KEYS.some((re) => re.test(bare)))) unexpected.push(key);
        continue;
      }
      const source = tied.get(target);
      if (source !== undefined) {
        aliasKeys.set(source, key);
        continue;
      }
      if (plan.has(target))
        throw new Error(`${tag}: checkpoint keys "${plan.get(target)}" and "${key}" both load parameter "${target}"`);
      plan.set(target, key);
    }
    // A tied pair stored only under the alias's name loads the shared tensor from it.
    for (const [source, key] of aliasKeys) if (!plan.has(source)) plan.set(source, key);
    if (unexpected.length > 0) {
      const list = unexpected.slice(0, 10).map((k) => `"${k}"`);
      throw new Error(
        `${tag}: unexpected key ${list.join(', ')}${unexpected.length > 10 ? ` and ${unexpected.length - 10} more` : ''} in the checkpoint (not a parameter of ${this.architecture})`,
      );
    }
    const fresh: string[] = [];
    if (newHead) {
      // A head of another size (a 3-label classifier loaded for 2 labels) is replaced, as
      // transformers' ignore_mismatched_sizes does.
      for (const [name, key] of plan) {
        const p = params.get(name)!;
        const shape = ckpt.info(key).shape;
        if (this.isHeadParameter(name) && (shape.length !== p.rank || shape.some((d, i) => d !== p.shape[i]))) {
          plan.delete(name);
          fresh.push(name);
        }
      }
    }
    const missing = [...params.keys()].filter((n) => !tied.has(n) && !plan.has(n) && !fresh.includes(n));
    fresh.push(...missing.filter((n) => newHead && this.isHeadParameter(n)));
    const stillMissing = missing.filter((n) => !fresh.includes(n));
    if (stillMissing.length > 0) {
      const list = stillMissing.slice(0, 10).map((k) => `"${k}"`);
      const hint = stillMissing.every((n) => this.isHeadParameter(n))
        ? '; to put a new, randomly initialised head on this base, load it with newHead'
        : '';
      throw new Error(
        `${tag}: missing key ${list.join(', ')}${stillMissing.length > 10 ? ` and ${stillMissing.length - 10} more` : ''} (the checkpoint has ${ckpt.names().length} tensors)${hint}`,
      );
    }
    for (const [name, key] of plan) {
      const p = params.get(name)!;
      const info = ckpt.info(key);
      if (info.shape.length !== p.rank || info.shape.some((s, i) => s !== p.shape[i]))
        throw new Error(
          `${tag}: key "${key}" has shape ${fmtShape(info.shape)} in the checkpoint, expected ${fmtShape(p.shape)}`,
        );
      if (!FLOAT_FILE_DTYPES.has(info.dtype))
        throw new Error(`${tag}: key "${key}" is ${info.dtype}; parameters load from F32, F16, BF16 or F64 tensors`);
    }
    for (const [name, key] of plan) {
      const p = params.get(name)!;
      // A skeleton parameter (loadModel) is replaced by the tensor read in its dtype: no copy.
      const target = loadTarget(p);
      if (target) {
        adoptParameter(this, p, readParameter(ckpt, key, target, p.dtype));
        continue;
      }
      const t = ckpt.tensor(key, { backend: p.backend, dtype: p.dtype });
      try {
        p.backend.copy(p.view('loadModel'), t.view('loadModel'));
      } finally {
        t.dispose();
      }
    }
    const order = [...params.keys()];
    return fresh.sort((a, b) => order.indexOf(a) - order.indexOf(b));
  }
}

/** Top-level modules that are task heads in transformers' classes. */
export const HEAD_MODULES: readonly string[] = ['score', 'classifier', 'lm_head'];

/** Keys (without the base prefix) of heads another task's class has: ignored when loading with a new head. */
const OTHER_HEAD_KEYS: readonly RegExp[] = [/^(lm_head|score|classifier|cls|pre_classifier)\./, /^pooler\./];

const FLOAT_FILE_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);

const TORCH_DTYPE_NAMES: Partial<Record<DType, string>> = {
  f32: 'float32',
  bf16: 'bfloat16',
  f16: 'float16',
  f64: 'float64',
};
