// Everything a run is made of before its first step, built the same way for a fresh run and a resumed
// one: backend and seed, tokenizer, datasets, the model (pretrained, with a new head, or from scratch),
// the method's trainable parameters (VeRA/LoRA adapters, head, or all), and AdamW's parameter groups.

import { existsSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { AdapterConfig } from '../adapters/peft-model.js';
import { PeftModel, getPeftModel } from '../adapters/peft-model.js';
import { loraConfig } from '../adapters/lora/config.js';
import { type VeraExperimental, veraConfig } from '../adapters/vera/config.js';
import type { Backend } from '../backends/backend.js';
import { backendForDevice, defaultBackend, getBackend, setDefaultBackend } from '../backends/registry.js';
import {
  BatchSampler,
  type Dataset,
  loadCausalText,
  loadIdx,
  loadImageFolder,
  loadInstructions,
  loadTextClassification,
  loadUciSentiment,
  splitDataset,
} from '../data/index.js';
import { type ImageProcessorConfig, VIT_DEFAULTS, loadImageProcessorConfig } from '../io/image.js';
import { readJsonFile } from '../io/json.js';
import { Tokenizer } from '../io/tokenizer.js';
import { createModel, loadModel } from '../models/auto.js';
import { defaultMaxLength, padIdFor } from '../models/text-inputs.js';
import { type HFConfig, asConfigObject } from '../models/config-utils.js';
import type { ModelInputs, PreTrainedModel } from '../models/pretrained.js';
import { MODEL_CLASSES, type ModelClass, resolveModelClass } from '../models/registry.js';
import { LayerNorm, RMSNorm } from '../nn/layers.js';
import type { Module } from '../nn/module.js';
import { AdamW, type ParamGroup } from '../optim/adamw.js';
import { manualSeed } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { GENERATION_METRICS, type Task, type TrainConfig, ConfigError, defaultLr, metricsFor } from './config.js';
import { type GenerationExample, readGenerationExamples } from './generation-eval.js';

export interface Run {
  cfg: TrainConfig;
  task: Task;
  backend: Backend;
  tokenizer: Tokenizer | null;
  /** Id that fills padded positions (the model's pad_token_id for decoder classifiers). */
  padId: number;
  train: Dataset;
  validation: Dataset | null;
  labelNames: string[] | null;
  model: PreTrainedModel;
  peft: PeftModel<PreTrainedModel> | null;
  /** The model's forward (through the adapters when there are any). */
  forward: (inputs: ModelInputs) => Tensor;
  /** The module whose mode (train/eval) the run switches: the PeftModel or the model. */
  root: Module;
  /** Trainable parameters in the optimizer's order, with the names checkpoints store them by. */
  params: [string, Tensor][];
  optimizer: AdamW;
  /** Each group's base learning rate (the schedule scales it). */
  baseLrs: number[];
  sampler: BatchSampler;
  stepsPerEpoch: number;
  totalSteps: number;
  /** Metric that picks the best checkpoint, or null without validation data. */
  metric: string | null;
  /** With a generation metric: the validation prompts and their reference responses. */
  generation: GenerationExample[] | null;
  /** Where tokenizer / preprocessor files come from (copied next to saved full models). */
  assetsDir: string;
}

/** Builds a run (see the file comment); `warn` receives loading warnings (a new head's keys). */
export function setUp(cfg: TrainConfig, warn: (message: string) => void): Run {
  // A backend named outright wins; else the device's (cpu: native when built, else js; cuda).
  const named = cfg.backend ? getBackend(cfg.backend) : cfg.device ? backendForDevice(cfg.device) : null;
  const backend = named ?? defaultBackend();
  if (named) setDefaultBackend(named);
  if (cfg.threads !== null) backend.setThreads?.(cfg.threads);
  // One seed drives everything random: a new head, LoRA's init, dropout masks (and, separately, data order).
  manualSeed(cfg.seed);

  const baseConfig = readModelConfig(cfg.model);
  const { cls, task } = resolveClassAndTask(cfg, baseConfig);
  const assetsDir = cfg.tokenizer ?? cfg.model;
  const tokenizer = task === 'image-classification' ? null : Tokenizer.fromDir(assetsDir);
  const padId = padIdFor(baseConfig, tokenizer);
  const maxLength = cfg.max_length ?? defaultMaxLength(baseConfig, tokenizer);
  const positions = defaultMaxLength(baseConfig, null);
  if (cfg.block_size !== null && positions !== undefined && cfg.block_size > positions)
    throw new ConfigError(`--block_size ${cfg.block_size} exceeds the ${positions} positions of ${cfg.model}`);
  const blockSize = cfg.block_size ?? Math.min(128, positions ?? 128);

  const { train, validation } = loadData(cfg, task, tokenizer, { maxLength, blockSize }, cfg.model);
  const labelNames = task === 'regression' || task === 'causal-lm' ? null : (train.labelNames ?? null);

  const model = buildModel(cfg, cls, task, baseConfig, labelNames, padId, backend, warn);
  if (tokenizer && tokenizer.vocabSize > embeddingRows(model))
    throw new ConfigError(
      `the tokenizer (${assetsDir}) has ${tokenizer.vocabSize} ids but ${cfg.model}'s embeddings have ${embeddingRows(model)} rows`,
    );
  const peft =
    cfg.method === 'vera' || cfg.method === 'lora'
      ? getPeftModel(model, adapterConfig(cfg, task, model.modelType))
      : null;
  if (cfg.method === 'head') {
    model.freeze();
    for (const [name, p] of model.namedParameters()) if (model.isHeadParameter(name)) p.setRequiresGrad(true);
  } else if (cfg.method === 'full') {
    model.unfreeze();
  }
  const root: Module = peft ?? model;
  root.train();
  root.setGradientCheckpointing(cfg.gradient_checkpointing);
  const forward = peft ? (inputs: ModelInputs) => peft.forward(inputs) : (inputs: ModelInputs) => model.forward(inputs);

  const { groups, names, baseLrs } = paramGroups(cfg, root, peft !== null, model);
  if (names.length === 0) throw new ConfigError(`--method ${cfg.method} leaves nothing to train in ${cfg.model}`);
  const optimizer = new AdamW(groups, {
    betas: [cfg.adam_beta1, cfg.adam_beta2],
    eps: cfg.adam_epsilon,
    weightDecay: cfg.weight_decay,
  });
  const params = names.map((n, i): [string, Tensor] => [n, optimizer.params[i]!]);

  const sampler = new BatchSampler(train, {
    batchSize: cfg.batch_size,
    shuffle: true,
    seed: cfg.seed,
    bucketByLength: cfg.bucket_by_length,
  });
  const stepsPerEpoch = Math.ceil(sampler.batchesPerEpoch / cfg.gradient_accumulation_steps);
  const totalSteps = cfg.max_steps > 0 ? cfg.max_steps : Math.max(1, Math.ceil(cfg.epochs * stepsPerEpoch));
  const metric = validation === null ? null : (cfg.metric ?? metricsFor(task)[0]!);
  let generation: GenerationExample[] | null = null;
  if (metric !== null && (GENERATION_METRICS as readonly string[]).includes(metric)) {
    if (task !== 'causal-lm' || !tokenizer)
      throw new ConfigError(`--metric ${metric} scores generated responses: it needs a causal LM, not a ${task} task`);
    generation = readGenerationExamples(cfg.validation_file!, {
      promptKey: cfg.prompt_key,
      responseKey: cfg.response_key,
    });
  }
  return {
    cfg,
    task,
    backend,
    tokenizer,
    padId,
    train,
    validation,
    labelNames,
    model,
    peft,
    forward,
    root,
    params,
    optimizer,
    baseLrs,
    sampler,
    stepsPerEpoch,
    totalSteps,
    metric,
    generation,
    assetsDir,
  };
}

function readModelConfig(dir: string): HFConfig {
  const file = join(dir, 'config.json');
  if (!existsSync(file))
    throw new ConfigError(`--model ${dir}: no config.json (is it a Hugging Face model directory?)`);
  return asConfigObject(readJsonFile(file), file);
}

/** The transformers class to build and the task: --task, else the model's; a causal LM becomes its family's classifier for a classification task. */
function resolveClassAndTask(cfg: TrainConfig, config: HFConfig): { cls: ModelClass; task: Task } {
  const source = join(cfg.model, 'config.json');
  let cls = resolveModelClass(config, cfg.architecture ?? undefined, source);
  const table = ['.csv', '.tsv', '.tab'].includes(extname(cfg.train_file).toLowerCase());
  const task: Task =
    cfg.task ??
    (table || cls.task === 'sequence-classification'
      ? 'classification'
      : cls.task === 'causal-lm'
        ? 'causal-lm'
        : 'image-classification');
  const wanted =
    task === 'causal-lm'
      ? 'causal-lm'
      : task === 'image-classification'
        ? 'image-classification'
        : 'sequence-classification';
  if (cls.task !== wanted) {
    const other =
      cfg.architecture === null
        ? MODEL_CLASSES.find((m) => m.modelType === cls.modelType && m.task === wanted)
        : undefined;
    if (!other)
      throw new ConfigError(
        `task ${task} needs a ${wanted} model; ${cfg.architecture ?? cls.architecture} is ${cls.task}${cfg.architecture ? '' : ` and model_type ${cls.modelType} has no ${wanted} class`}`,
      );
    cls = other;
  }
  if (cfg.method === 'head' && task === 'causal-lm')
    throw new ConfigError('--method head trains a classification head; a causal LM has none (use vera, lora or full)');
  return { cls, task };
}

function embeddingRows(model: PreTrainedModel): number {
  const v = model.config['vocab_size'];
  return typeof v === 'number' ? v : Infinity;
}

/** Truncation length of text examples and block size of packed plain text. */
export interface Lengths {
  maxLength: number | undefined;
  blockSize: number;
}

/** The training and validation sets: --validation_file, else a seeded split of the training data. */
function loadData(
  cfg: TrainConfig,
  task: Task,
  tokenizer: Tokenizer | null,
  lengths: Lengths,
  modelDir: string,
): { train: Dataset; validation: Dataset | null } {
  const processor = task === 'image-classification' ? imageProcessor(modelDir) : null;
  const load = (file: string, labels: string | null, names: string[] | null): Dataset =>
    loadDataset(cfg, task, file, labels, names, tokenizer, lengths, processor);
  let train = load(cfg.train_file, cfg.train_labels_file, cfg.label_names);
  let validation: Dataset | null = null;
  if (cfg.validation_file !== null) {
    // The validation labels must mean what the training labels mean.
    validation = load(cfg.validation_file, cfg.validation_labels_file, train.labelNames ?? cfg.label_names);
  } else if (cfg.validation_fraction > 0) {
    ({ train, validation } = splitDataset(train, { validationFraction: cfg.validation_fraction, seed: cfg.seed }));
  }
  return { train, validation };
}

/** The fields of a run config that say how to read a data file. */
export type DataOptions = Pick<
  TrainConfig,
  | 'data_format'
  | 'text_column'
  | 'pair_column'
  | 'label_column'
  | 'prompt_key'
  | 'response_key'
  | 'messages_key'
  | 'on_bad_row'
>;

/** One data file (or builtin set) as a dataset of the task; image tasks need the model's processor. */
export function loadDataset(
  cfg: DataOptions,
  task: Task,
  file: string,
  labelsFile: string | null,
  labelNames: string[] | null,
  tokenizer: Tokenizer | null,
  lengths: Lengths,
  processor: ImageProcessorConfig | null,
): Dataset {
  const maxLen = lengths.maxLength === undefined ? {} : { maxLength: lengths.maxLength };
  if (file === 'builtin:uci-sentiment') {
    if (task !== 'classification')
      throw new ConfigError(`builtin:uci-sentiment is a classification set, the task is ${task}`);
    return loadUciSentiment({ tokenizer: tokenizer!, ...maxLen });
  }
  if (!existsSync(file)) throw new ConfigError(`${file}: no such file or directory`);
  const format = dataFormat(cfg, task, file);
  switch (format) {
    case 'images':
      return loadImageFolder(file, { processor: processor!, onBadRow: cfg.on_bad_row });
    case 'idx':
      if (labelsFile === null)
        throw new ConfigError(
          `${file}: IDX images need their labels file (--train_labels_file / --validation_labels_file)`,
        );
      return loadIdx(file, labelsFile, { ...(processor ? { processor } : {}), ...(labelNames ? { labelNames } : {}) });
    case 'text':
      return loadCausalText([file], { tokenizer: tokenizer!, blockSize: lengths.blockSize });
    case 'instructions':
      return loadInstructions(file, {
        tokenizer: tokenizer!,
        ...maxLen,
        promptKey: cfg.prompt_key,
        responseKey: cfg.response_key,
        messagesKey: cfg.messages_key,
        onBadRow: cfg.on_bad_row,
      });
    default:
      if (task === 'causal-lm' || task === 'image-classification')
        throw new ConfigError(`${file}: --data_format ${format} is a table of labelled texts; the task is ${task}`);
      return loadTextClassification(file, {
        tokenizer: tokenizer!,
        textColumn: cfg.text_column,
        ...(cfg.pair_column === null ? {} : { pairColumn: cfg.pair_column }),
        labelColumn: cfg.label_column,
        regression: task === 'regression',
        ...(labelNames && task !== 'regression' ? { labelNames } : {}),
        ...maxLen,
        ...(format === 'auto' ? {} : { format }),
        onBadRow: cfg.on_bad_row,
      });
  }
}

/** --data_format, or what the file and task imply. */
function dataFormat(cfg: DataOptions, task: Task, file: string): TrainConfig['data_format'] {
  if (cfg.data_format !== 'auto') return cfg.data_format;
  if (task === 'image-classification') return statSync(file).isDirectory() ? 'images' : 'idx';
  if (task === 'causal-lm')
    return ['.jsonl', '.json', '.ndjson'].includes(extname(file).toLowerCase()) ? 'instructions' : 'text';
  return 'auto';
}

/** preprocessor_config.json of the model, else ViT's defaults at the config's image_size. */
export function imageProcessor(modelDir: string): ImageProcessorConfig {
  if (existsSync(join(modelDir, 'preprocessor_config.json'))) return loadImageProcessorConfig(modelDir);
  const config = readModelConfig(modelDir);
  const side = typeof config['image_size'] === 'number' ? config['image_size'] : 224;
  return { ...VIT_DEFAULTS, size: { height: side, width: side } };
}

function buildModel(
  cfg: TrainConfig,
  cls: ModelClass,
  task: Task,
  baseConfig: HFConfig,
  labelNames: string[] | null,
  padId: number,
  backend: Backend,
  warn: (message: string) => void,
): PreTrainedModel {
  const overrides: HFConfig = {};
  let numLabels: number | undefined;
  if (task === 'regression') {
    numLabels = 1;
    overrides['problem_type'] = 'regression';
  } else if (task !== 'causal-lm') {
    if (!labelNames || labelNames.length < 2)
      throw new ConfigError(
        `${cfg.train_file}: classification needs at least 2 classes, the data has ${labelNames?.length ?? 0}`,
      );
    numLabels = labelNames.length;
    overrides['id2label'] = Object.fromEntries(labelNames.map((n, i) => [String(i), n]));
    overrides['label2id'] = Object.fromEntries(labelNames.map((n, i) => [n, i]));
    overrides['problem_type'] = 'single_label_classification';
  }
  // Decoder classifiers pool the last non-padding token, so they must know the padding id.
  if (task !== 'causal-lm' && baseConfig['pad_token_id'] == null) overrides['pad_token_id'] = padId;
  const common = {
    backend,
    architecture: cls.architecture,
    ...(numLabels === undefined ? {} : { numLabels }),
    config: overrides,
  };
  if (cfg.from_scratch) return createModel(cfg.model, { ...common, seed: cfg.seed });
  return loadModel(cfg.model, {
    ...common,
    dtype: cfg.dtype,
    ...(task === 'causal-lm' ? {} : { newHead: { seed: cfg.seed, warn } }),
  });
}

/** The PEFT config of a VeRA or LoRA run; a classification head is trained in full (modules_to_save). */
function adapterConfig(cfg: TrainConfig, task: Task, modelType: string): AdapterConfig {
  const targets = cfg.target_modules;
  const common = {
    // GPT-2's Conv1D layers store W as [in, out]; PEFT users set this for it (PEFT warns otherwise).
    fan_in_fan_out: modelType === 'gpt2',
    task_type: task === 'causal-lm' ? 'CAUSAL_LM' : task === 'image-classification' ? null : 'SEQ_CLS',
    target_modules:
      targets === null ? null : targets.length === 1 && targets[0] === 'all-linear' ? 'all-linear' : targets,
    modules_to_save: task === 'image-classification' ? ['classifier'] : null,
  };
  if (cfg.method === 'vera') {
    // Only what differs from PEFT, so that a default run's config is PEFT's VeraConfig exactly.
    const experimental: VeraExperimental = {
      ...(cfg.vera_train_b ? {} : { train_b: false }),
      ...(cfg.vera_train_d ? {} : { train_d: false }),
      ...(cfg.vera_projection_init === 'kaiming_uniform' ? {} : { projection_init: cfg.vera_projection_init }),
    };
    return veraConfig({
      ...common,
      r: cfg.r ?? 256,
      projection_prng_key: cfg.projection_prng_key,
      save_projection: cfg.save_projection,
      vera_dropout: cfg.adapter_dropout,
      d_initial: cfg.vera_d_initial,
      ...(Object.keys(experimental).length > 0 ? { experimental } : {}),
    });
  }
  return loraConfig({ ...common, r: cfg.r ?? 8, lora_alpha: cfg.lora_alpha, lora_dropout: cfg.adapter_dropout });
}

/**
 * AdamW's groups: the adapter (or body) and the head at their own learning rates, each split into
 * parameters with weight decay and without. As transformers' Trainer: no decay on biases and on
 * LayerNorm/RMSNorm weights; every other weight (λ vectors, LoRA matrices, the head) decays.
 */
function paramGroups(
  cfg: TrainConfig,
  root: Module,
  isPeft: boolean,
  model: PreTrainedModel,
): { groups: ParamGroup[]; names: string[]; baseLrs: number[] } {
  const norms = new Set<Tensor>();
  for (const [, m] of root.namedModules())
    if (m instanceof LayerNorm || m instanceof RMSNorm) for (const p of m.parameters()) norms.add(p);
  const isHead = (name: string) => (isPeft ? name.includes('.modules_to_save.') : model.isHeadParameter(name));
  const lr = cfg.lr ?? defaultLr(cfg.method);
  const headLr = cfg.head_lr ?? lr;
  const buckets: { names: string[]; params: Tensor[]; lr: number; weightDecay: number }[] = [
    { names: [], params: [], lr, weightDecay: cfg.weight_decay },
    { names: [], params: [], lr, weightDecay: 0 },
    { names: [], params: [], lr: headLr, weightDecay: cfg.weight_decay },
    { names: [], params: [], lr: headLr, weightDecay: 0 },
  ];
  for (const [name, p] of root.trainableParameters()) {
    const decay = !(norms.has(p) || name.endsWith('.bias'));
    const b = buckets[(isHead(name) ? 2 : 0) + (decay ? 0 : 1)]!;
    b.names.push(name);
    b.params.push(p);
  }
  const used = buckets.filter((b) => b.params.length > 0);
  return {
    groups: used.map((b) => ({ params: b.params, lr: b.lr, weightDecay: b.weightDecay })),
    names: used.flatMap((b) => b.names),
    baseLrs: used.map((b) => b.lr),
  };
}
