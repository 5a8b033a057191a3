// The supported transformers classes: architecture name → family class, with the model_type values each
// accepts. Built from explicit imports (no side-effect registration), so the list is the code.

import type { InitOpts } from '../nn/layers.js';
import { BertForSequenceClassification, RobertaForSequenceClassification } from './bert/model.js';
import type { HFConfig } from './config-utils.js';
import { GPT2ForSequenceClassification, GPT2LMHeadModel } from './gpt2/model.js';
import {
  LlamaForCausalLM,
  LlamaForSequenceClassification,
  MistralForCausalLM,
  MistralForSequenceClassification,
  Qwen2ForCausalLM,
  Qwen2ForSequenceClassification,
} from './llama/model.js';
import type { PreTrainedModel, Task } from './pretrained.js';
import { ViTForImageClassification } from './vit/model.js';

export interface ModelClass {
  architecture: string;
  modelType: string;
  task: Task;
  create(config: HFConfig, opts: InitOpts): PreTrainedModel;
}

/** Every supported class; the first entry of a model_type is its default when `architectures` is absent. */
export const MODEL_CLASSES: readonly ModelClass[] = [
  {
    architecture: 'GPT2LMHeadModel',
    modelType: 'gpt2',
    task: 'causal-lm',
    create: (c, o) => new GPT2LMHeadModel(c, o),
  },
  {
    architecture: 'GPT2ForSequenceClassification',
    modelType: 'gpt2',
    task: 'sequence-classification',
    create: (c, o) => new GPT2ForSequenceClassification(c, o),
  },
  {
    architecture: 'LlamaForCausalLM',
    modelType: 'llama',
    task: 'causal-lm',
    create: (c, o) => new LlamaForCausalLM(c, o),
  },
  {
    architecture: 'LlamaForSequenceClassification',
    modelType: 'llama',
    task: 'sequence-classification',
    create: (c, o) => new LlamaForSequenceClassification(c, o),
  },
  {
    architecture: 'MistralForCausalLM',
    modelType: 'mistral',
    task: 'causal-lm',
    create: (c, o) => new MistralForCausalLM(c, o),
  },
  {
    architecture: 'MistralForSequenceClassification',
    modelType: 'mistral',
    task: 'sequence-classification',
    create: (c, o) => new MistralForSequenceClassification(c, o),
  },
  {
    architecture: 'Qwen2ForCausalLM',
    modelType: 'qwen2',
    task: 'causal-lm',
    create: (c, o) => new Qwen2ForCausalLM(c, o),
  },
  {
    architecture: 'Qwen2ForSequenceClassification',
    modelType: 'qwen2',
    task: 'sequence-classification',
    create: (c, o) => new Qwen2ForSequenceClassification(c, o),
  },
  {
    architecture: 'BertForSequenceClassification',
    modelType: 'bert',
    task: 'sequence-classification',
    create: (c, o) => new BertForSequenceClassification(c, o),
  },
  {
    architecture: 'RobertaForSequenceClassification',
    modelType: 'roberta',
    task: 'sequence-classification',
    create: (c, o) => new RobertaForSequenceClassification(c, o),
  },
  {
    architecture: 'ViTForImageClassification',
    modelType: 'vit',
    task: 'image-classification',
    create: (c, o) => new ViTForImageClassification(c, o),
  },
];

export function supportedArchitectures(): string[] {
  return MODEL_CLASSES.map((m) => m.architecture);
}

/**
 * The class for a config: `architecture` if given, else architectures[0], else model_type's default.
 * Throws an Error listing the supported architectures when there is none, or when the config's
 * model_type belongs to another family.
 */
export function resolveModelClass(config: HFConfig, architecture?: string, source = 'config.json'): ModelClass {
  const modelType = typeof config['model_type'] === 'string' ? config['model_type'] : null;
  const archs = config['architectures'];
  const arch = architecture ?? (Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : null);
  const supported = `supported architectures: ${supportedArchitectures().join(', ')}`;
  if (arch === null) {
    const byType = MODEL_CLASSES.find((m) => m.modelType === modelType);
    if (byType) return byType;
    throw new Error(
      `[loadModel] ${source}: no "architectures" and model_type ${JSON.stringify(modelType)} is not supported (${supported})`,
    );
  }
  const entry = MODEL_CLASSES.find((m) => m.architecture === arch);
  if (!entry)
    throw new Error(
      `[loadModel] ${source}: unsupported architecture ${JSON.stringify(arch)} (model_type ${JSON.stringify(modelType)}); ${supported}`,
    );
  if (modelType !== null && modelType !== entry.modelType)
    throw new Error(
      `[loadModel] ${source}: architecture ${arch} expects model_type "${entry.modelType}", the config says ${JSON.stringify(modelType)}`,
    );
  return entry;
}
