// Loading an adapter with the base model it needs (for evaluation, merging, inference and serving): the base model in the class its adapter
// needs (a classification adapter trained on a causal-LM base gets the family's classifier, sized by
// the head the adapter file holds), then the adapter itself.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PeftModel } from './peft-model.js';
import type { Backend } from '../backends/backend.js';
import { readJsonFile } from '../io/json.js';
import { SafetensorsReader } from '../io/safetensors.js';
import { loadModel } from '../models/auto.js';
import { asConfigObject } from '../models/config-utils.js';
import type { PreTrainedModel } from '../models/pretrained.js';
import type { ParameterDType } from '../models/storage.js';
import { MODEL_CLASSES, resolveModelClass } from '../models/registry.js';

/** The classes and label count an adapter's head implies: null when it has no classification head. */
export function adapterHead(adapterDir: string): { numLabels: number } | null {
  const config = readJsonFile(join(adapterDir, 'adapter_config.json')) as Record<string, unknown>;
  const saved = Array.isArray(config['modules_to_save']) ? (config['modules_to_save'] as string[]) : [];
  if (config['task_type'] !== 'SEQ_CLS' && !saved.some((m) => m === 'score' || m === 'classifier')) return null;
  const file = join(adapterDir, 'adapter_model.safetensors');
  if (!existsSync(file)) return null;
  const reader = SafetensorsReader.open(file);
  try {
    const names = reader.names();
    // The head's output layer: score / classifier (BERT, ViT, GPT-2, Llama) or classifier.out_proj (RoBERTa).
    const key = ['classifier.out_proj.weight', 'classifier.weight', 'score.weight']
      .map((k) => `base_model.model.${k}`)
      .find((k) => names.includes(k));
    return key ? { numLabels: reader.info(key).shape[0]! } : null;
  } finally {
    reader.close();
  }
}

export interface LoadTrainedOpts {
  backend?: Backend;
  /** Merge the adapter and unload it, leaving a plain model. */
  merge?: boolean;
  /** The padding id training used (decoder classifiers pool the last non-padding token). */
  padTokenId?: number;
  dtype?: ParameterDType;
}

/**
 * The base model of `modelDir` in the class an adapter needs: as saved, or — for an adapter with a
 * classification head trained on a causal-LM base — the family's classifier, sized by that head.
 */
export function loadBaseFor(modelDir: string, adapterDir: string | null, opts: LoadTrainedOpts = {}): PreTrainedModel {
  // Options every loadModel call here shares: the backend and the weights' storage dtype.
  const shared = {
    ...(opts.backend === undefined ? {} : { backend: opts.backend }),
    ...(opts.dtype === undefined ? {} : { dtype: opts.dtype }),
  };
  const head = adapterDir === null ? null : adapterHead(adapterDir);
  if (head === null) return loadModel(modelDir, shared);
  const configFile = join(modelDir, 'config.json');
  const config = asConfigObject(readJsonFile(configFile), configFile);
  const base = resolveModelClass(config, undefined, configFile);
  const cls =
    base.task === 'causal-lm'
      ? MODEL_CLASSES.find((m) => m.modelType === base.modelType && m.task === 'sequence-classification')
      : base;
  if (!cls)
    throw new Error(
      `${adapterDir} has a classification head but ${modelDir} (${base.architecture}) has no classifier class`,
    );
  // The head's weights come from the adapter (modules_to_save); the base's own head, if any, is replaced.
  return loadModel(modelDir, {
    ...shared,
    architecture: cls.architecture,
    numLabels: head.numLabels,
    ...(config['pad_token_id'] == null && opts.padTokenId !== undefined
      ? { config: { pad_token_id: opts.padTokenId } }
      : {}),
    newHead: { seed: 0, warn: () => {} },
  });
}

/** The base model of `modelDir` for the adapter in `adapterDir` (or alone), and the adapter on it. */
export function loadTrained(
  modelDir: string,
  adapterDir: string | null,
  opts: LoadTrainedOpts = {},
): { model: PreTrainedModel; peft: PeftModel<PreTrainedModel> | null } {
  const model = loadBaseFor(modelDir, adapterDir, opts);
  if (adapterDir === null) return { model, peft: null };
  const peft = PeftModel.fromPretrained(model, adapterDir);
  if (opts.merge) return { model: peft.mergeAndUnload(), peft: null };
  return { model, peft };
}
