// The run configuration of `vera train`: one typed object with defaults and validation, described by a
// schema that also gives every field its command-line flag (--field_name or --field-name) and its help
// line. A run reads a JSON file (--config) and then the flags, which override the file.

import { readFileSync } from 'node:fs';
import {
  BACKEND_DEVICE,
  BACKEND_NAMES,
  type BackendName,
  DEVICE_NAMES,
  type DeviceName,
} from '../backends/registry.js';
import { parseJsonText } from '../io/json.js';
import { closeNames, didYouMean } from '../io/suggest.js';

export type Method = 'vera' | 'lora' | 'head' | 'full';
export type Task = 'classification' | 'regression' | 'causal-lm' | 'image-classification';
export type ScheduleName = 'linear' | 'cosine' | 'constant';
export type DataFormat = 'auto' | 'csv' | 'tsv' | 'jsonl' | 'text' | 'instructions' | 'images' | 'idx';

export interface TrainConfig {
  // Model and method
  model: string;
  tokenizer: string | null;
  architecture: string | null;
  task: Task | null;
  method: Method;
  from_scratch: boolean;
  dtype: 'f32' | 'bf16';
  gradient_checkpointing: boolean;
  // Data
  train_file: string;
  train_labels_file: string | null;
  validation_file: string | null;
  validation_labels_file: string | null;
  validation_fraction: number;
  data_format: DataFormat;
  text_column: string;
  pair_column: string | null;
  label_column: string;
  label_names: string[] | null;
  prompt_key: string;
  response_key: string;
  messages_key: string;
  max_length: number | null;
  block_size: number | null;
  on_bad_row: 'error' | 'skip';
  bucket_by_length: boolean;
  padding_side: 'left' | 'right';
  // Adapter
  r: number | null;
  target_modules: string[] | null;
  adapter_dropout: number;
  vera_d_initial: number;
  vera_train_b: boolean;
  vera_train_d: boolean;
  vera_projection_init: 'kaiming_uniform' | 'kaiming_normal' | 'uniform_0_0.1';
  projection_prng_key: number;
  save_projection: boolean;
  lora_alpha: number;
  // Optimisation
  lr: number | null;
  head_lr: number | null;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  lr_scheduler: ScheduleName;
  warmup_steps: number;
  warmup_ratio: number;
  epochs: number;
  max_steps: number;
  batch_size: number;
  eval_batch_size: number | null;
  gradient_accumulation_steps: number;
  max_grad_norm: number;
  label_smoothing: number;
  seed: number;
  // Evaluation and checkpoints
  eval_steps: number;
  metric: string | null;
  patience: number;
  early_stopping_threshold: number;
  load_best_model_at_end: boolean;
  generation_max_new_tokens: number;
  save_steps: number;
  save_total_limit: number;
  logging_steps: number;
  output_dir: string;
  resume: boolean;
  overwrite_output_dir: boolean;
  // Runtime
  backend: BackendName | null;
  device: DeviceName | null;
  threads: number | null;
}

type Kind =
  | { t: 'string' }
  | { t: 'path' }
  | { t: 'int'; min: number }
  | { t: 'number'; min?: number; max?: number; open?: boolean }
  | { t: 'bool' }
  | { t: 'enum'; values: readonly string[] }
  | { t: 'list' };

interface Field {
  kind: Kind;
  nullable?: boolean;
  default: unknown;
  group: string;
  help: string;
}

const str: Kind = { t: 'string' };
const path: Kind = { t: 'path' };
const int = (min: number): Kind => ({ t: 'int', min });
const num = (min?: number, max?: number, open = false): Kind => ({ t: 'number', min, max, open });
const bool: Kind = { t: 'bool' };
const oneOf = (...values: string[]): Kind => ({ t: 'enum', values });
const list: Kind = { t: 'list' };

/** Every field: its type, default and help line, in the order `vera train --help` lists them. */
/** Metrics of generated responses (instruction data): a causal LM's validation prompts are continued and scored. */
export const GENERATION_METRICS = ['bleu', 'rouge_l', 'nist', 'cider'] as const;

export const FIELDS: Record<keyof TrainConfig, Field> = {
  model: { kind: path, default: undefined, group: 'Model', help: 'Base model directory (config.json [+ weights])' },
  tokenizer: {
    kind: path,
    nullable: true,
    default: null,
    group: 'Model',
    help: 'Tokenizer directory (default: --model)',
  },
  architecture: {
    kind: str,
    nullable: true,
    default: null,
    group: 'Model',
    help: "transformers class to load as (default: the config's, or its classification class for a classification task)",
  },
  task: {
    kind: oneOf('classification', 'regression', 'causal-lm', 'image-classification'),
    nullable: true,
    default: null,
    group: 'Model',
    help: "classification|regression|causal-lm|image-classification (default: classification for .csv/.tsv data, else the model's task)",
  },
  method: {
    kind: oneOf('vera', 'lora', 'head', 'full'),
    default: 'vera',
    group: 'Model',
    help: 'vera|lora (adapters; a classification head trains in full), head (only the head), full (every weight)',
  },
  from_scratch: {
    kind: bool,
    default: false,
    group: 'Model',
    help: "Random weights from --model's config.json (pretraining; needs --method full)",
  },
  dtype: {
    kind: oneOf('f32', 'bf16'),
    default: 'f32',
    group: 'Model',
    help: "bf16: the frozen base's linear and embedding weights stored in bf16 and their GEMMs computed in bf16 with f32 accumulation (torch.autocast's arithmetic): half the memory, about 2× faster GEMMs with AVX-512 BF16 or AMX; trained tensors stay f32 (vera, lora, head)",
  },

  gradient_checkpointing: {
    kind: bool,
    default: false,
    group: 'Model',
    help: "Recompute each block's activations in the backward instead of keeping them: about one more forward per step for much less memory (transformers' gradient checkpointing)",
  },

  train_file: {
    kind: path,
    default: undefined,
    group: 'Data',
    help: 'CSV/TSV/JSONL table, .txt text (causal LM), JSONL instructions, image folder, IDX images, or builtin:uci-sentiment',
  },
  train_labels_file: { kind: path, nullable: true, default: null, group: 'Data', help: 'IDX labels of --train_file' },
  validation_file: {
    kind: path,
    nullable: true,
    default: null,
    group: 'Data',
    help: 'Validation data, same format (default: split off --validation_fraction of the training data)',
  },
  validation_labels_file: {
    kind: path,
    nullable: true,
    default: null,
    group: 'Data',
    help: 'IDX labels of --validation_file',
  },
  validation_fraction: {
    kind: num(0, 1, true),
    default: 0.1,
    group: 'Data',
    help: 'Fraction of the training data held out when there is no --validation_file (0: no evaluation)',
  },
  data_format: {
    kind: oneOf('auto', 'csv', 'tsv', 'jsonl', 'text', 'instructions', 'images', 'idx'),
    default: 'auto',
    group: 'Data',
    help: 'auto (by extension and task) or csv|tsv|jsonl|text|instructions|images|idx',
  },
  text_column: { kind: str, default: 'text', group: 'Data', help: 'Column/key of the text' },
  pair_column: {
    kind: str,
    nullable: true,
    default: null,
    group: 'Data',
    help: 'Column/key of the second text of a pair',
  },
  label_column: { kind: str, default: 'label', group: 'Data', help: 'Column/key of the label' },
  label_names: {
    kind: list,
    nullable: true,
    default: null,
    group: 'Data',
    help: 'Class names in id order, comma-separated (default: from the data)',
  },
  prompt_key: { kind: str, default: 'prompt', group: 'Data', help: 'Instruction data: key of the prompt' },
  response_key: { kind: str, default: 'response', group: 'Data', help: 'Instruction data: key of the response' },
  messages_key: { kind: str, default: 'messages', group: 'Data', help: 'Instruction data: key of a chat conversation' },
  max_length: {
    kind: int(1),
    nullable: true,
    default: null,
    group: 'Data',
    help: "Truncate examples to N tokens (default: the tokenizer's model_max_length)",
  },
  block_size: {
    kind: int(2),
    nullable: true,
    default: null,
    group: 'Data',
    help: "Causal LM on plain text: tokens per example (default: 128, or the model's positions if fewer)",
  },
  on_bad_row: { kind: oneOf('error', 'skip'), default: 'error', group: 'Data', help: 'error|skip malformed rows' },
  bucket_by_length: {
    kind: bool,
    default: false,
    group: 'Data',
    help: 'Batch examples of similar length (less padding)',
  },
  padding_side: { kind: oneOf('left', 'right'), default: 'right', group: 'Data', help: 'left|right' },

  r: { kind: int(1), nullable: true, default: null, group: 'Adapter', help: 'Rank (default: vera 256, lora 8)' },
  target_modules: {
    kind: list,
    nullable: true,
    default: null,
    group: 'Adapter',
    help: "Modules to adapt, comma-separated, or all-linear (default: PEFT's for the model type)",
  },
  adapter_dropout: { kind: num(0, 1, true), default: 0, group: 'Adapter', help: 'vera_dropout / lora_dropout' },
  vera_d_initial: { kind: num(), default: 0.1, group: 'Adapter', help: 'VeRA: initial value of λ_d' },
  // The VeRA paper's ablations (Table 6); saved in adapter_config.json under a key PEFT ignores.
  vera_train_b: {
    kind: bool,
    default: true,
    group: 'Adapter',
    help: 'VeRA: train λ_b; off fixes it at ones (ablation "only d"; experimental, not PEFT)',
  },
  vera_train_d: {
    kind: bool,
    default: true,
    group: 'Adapter',
    help: 'VeRA: train λ_d; off fixes it at ones (ablation "only b"; experimental, not PEFT)',
  },
  vera_projection_init: {
    kind: oneOf('kaiming_uniform', 'kaiming_normal', 'uniform_0_0.1'),
    default: 'kaiming_uniform',
    group: 'Adapter',
    help: 'VeRA: kaiming_uniform (PEFT) or, experimental, kaiming_normal|uniform_0_0.1 (needs --save_projection)',
  },
  projection_prng_key: {
    kind: int(0),
    default: 0,
    group: 'Adapter',
    help: "VeRA: seed of the shared projections (PEFT's default, 0; adapters loaded or served together must share it)",
  },
  save_projection: {
    kind: bool,
    default: true,
    group: 'Adapter',
    help: 'VeRA: store the projections in the adapter file (PEFT default)',
  },
  lora_alpha: { kind: num(0, undefined, true), default: 8, group: 'Adapter', help: 'LoRA: alpha (scale alpha/r)' },

  lr: {
    kind: num(0, undefined, true),
    nullable: true,
    default: null,
    group: 'Optimisation',
    help: 'Learning rate of the adapter / trained weights (default: vera 1e-2, lora 5e-4, head 1e-3, full 5e-5)',
  },
  head_lr: {
    kind: num(0, undefined, true),
    nullable: true,
    default: null,
    group: 'Optimisation',
    help: 'Learning rate of the classification head (default: --lr)',
  },
  weight_decay: {
    kind: num(0),
    default: 0,
    group: 'Optimisation',
    help: 'AdamW decoupled weight decay, on every weight but biases and LayerNorm/RMSNorm weights',
  },
  adam_beta1: { kind: num(0, 1, true), default: 0.9, group: 'Optimisation', help: 'AdamW β1' },
  adam_beta2: { kind: num(0, 1, true), default: 0.999, group: 'Optimisation', help: 'AdamW β2' },
  adam_epsilon: { kind: num(0, undefined, true), default: 1e-8, group: 'Optimisation', help: 'AdamW ε' },
  lr_scheduler: {
    kind: oneOf('linear', 'cosine', 'constant'),
    default: 'linear',
    group: 'Optimisation',
    help: 'linear|cosine|constant (after warmup)',
  },
  warmup_steps: {
    kind: int(0),
    default: 0,
    group: 'Optimisation',
    help: 'Linear warmup steps (wins over --warmup_ratio)',
  },
  warmup_ratio: { kind: num(0, 1), default: 0, group: 'Optimisation', help: 'Warmup as a fraction of the steps' },
  epochs: { kind: num(0, undefined, true), default: 3, group: 'Optimisation', help: 'Training epochs' },
  max_steps: { kind: int(0), default: 0, group: 'Optimisation', help: 'Optimizer steps (> 0 overrides --epochs)' },
  batch_size: { kind: int(1), default: 8, group: 'Optimisation', help: 'Examples per micro-batch' },
  eval_batch_size: {
    kind: int(1),
    nullable: true,
    default: null,
    group: 'Optimisation',
    help: 'Examples per evaluation batch (default: --batch_size)',
  },
  gradient_accumulation_steps: {
    kind: int(1),
    default: 1,
    group: 'Optimisation',
    help: 'Micro-batches per optimizer step',
  },
  max_grad_norm: { kind: num(0), default: 1, group: 'Optimisation', help: 'Clip the gradient norm (0: off)' },
  label_smoothing: {
    kind: num(0, 1, true),
    default: 0,
    group: 'Optimisation',
    help: 'Label smoothing ε of the cross-entropy',
  },
  seed: { kind: int(0), default: 42, group: 'Optimisation', help: 'Seed of initialisation, dropout and data order' },

  eval_steps: {
    kind: int(0),
    default: 0,
    group: 'Evaluation and checkpoints',
    help: 'Evaluate every N steps (0: once per epoch), and at the end',
  },
  metric: {
    kind: oneOf('loss', 'accuracy', 'f1', 'mcc', 'pearson', 'spearman', 'perplexity', ...GENERATION_METRICS),
    nullable: true,
    default: null,
    group: 'Evaluation and checkpoints',
    help: 'Metric that picks the best checkpoint (default: accuracy, pearson, perplexity by task; bleu, rouge_l, nist, cider score generated responses to {prompt, response} validation data)',
  },
  generation_max_new_tokens: {
    kind: int(1),
    default: 64,
    group: 'Evaluation and checkpoints',
    help: 'With --metric bleu|rouge_l|nist|cider: new tokens per generated validation response at most',
  },
  patience: {
    kind: int(0),
    default: 0,
    group: 'Evaluation and checkpoints',
    help: 'Stop after N evaluations without improvement (0: never)',
  },
  early_stopping_threshold: {
    kind: num(0),
    default: 0,
    group: 'Evaluation and checkpoints',
    help: 'Smallest change of the metric that counts as an improvement',
  },
  load_best_model_at_end: {
    kind: bool,
    default: false,
    group: 'Evaluation and checkpoints',
    help: 'The final adapter/ (or model/) is the best evaluation’s, not the last step’s (best/ is kept either way)',
  },
  save_steps: {
    kind: int(0),
    default: 0,
    group: 'Evaluation and checkpoints',
    help: 'Checkpoint every N steps (0: at each evaluation)',
  },
  save_total_limit: {
    kind: int(1),
    default: 2,
    group: 'Evaluation and checkpoints',
    help: 'Checkpoints kept (the newest ones)',
  },
  logging_steps: {
    kind: int(1),
    default: 10,
    group: 'Evaluation and checkpoints',
    help: 'Log every N steps (losses are read back, and checked for NaN/inf, at these steps and before evaluations and checkpoints)',
  },
  output_dir: {
    kind: path,
    default: undefined,
    group: 'Evaluation and checkpoints',
    help: 'Where checkpoints, adapter/, best/, metrics.jsonl and plot.svg go',
  },
  resume: {
    kind: bool,
    default: false,
    group: 'Evaluation and checkpoints',
    help: "Continue from output_dir's newest complete checkpoint",
  },
  overwrite_output_dir: {
    kind: bool,
    default: false,
    group: 'Evaluation and checkpoints',
    help: 'Start over in an output_dir that holds checkpoints',
  },

  backend: {
    kind: oneOf(...BACKEND_NAMES),
    nullable: true,
    default: null,
    group: 'Runtime',
    help: `${BACKEND_NAMES.join('|')} (default: native when built)`,
  },
  device: {
    kind: oneOf(...DEVICE_NAMES),
    nullable: true,
    default: null,
    group: 'Runtime',
    help: `${DEVICE_NAMES.join('|')}: cpu (default) or cuda (an NVIDIA GPU; VERA_DEVICE=cuda sets the default)`,
  },
  threads: {
    kind: int(1),
    nullable: true,
    default: null,
    group: 'Runtime',
    help: 'Native backend threads (default: all cores)',
  },
};

const NAMES = Object.keys(FIELDS) as (keyof TrainConfig)[];

/**
 * Fields that shape the run (model, data, method, optimizer, seed): a resumed run must keep them, or it
 * would not continue the same run. The others (step counts, logging, evaluation cadence, paths) may change.
 */
export const RUN_DEFINING: readonly (keyof TrainConfig)[] = [
  'model',
  'tokenizer',
  'architecture',
  'task',
  'method',
  'from_scratch',
  'dtype',
  'gradient_checkpointing',
  'train_file',
  'train_labels_file',
  'validation_file',
  'validation_labels_file',
  'validation_fraction',
  'data_format',
  'text_column',
  'pair_column',
  'label_column',
  'label_names',
  'prompt_key',
  'response_key',
  'messages_key',
  'max_length',
  'block_size',
  'on_bad_row',
  'bucket_by_length',
  'padding_side',
  'r',
  'target_modules',
  'adapter_dropout',
  'vera_d_initial',
  'vera_train_b',
  'vera_train_d',
  'vera_projection_init',
  'projection_prng_key',
  'save_projection',
  'lora_alpha',
  'weight_decay',
  'adam_beta1',
  'adam_beta2',
  'adam_epsilon',
  'batch_size',
  'gradient_accumulation_steps',
  'seed',
];

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** How one source names a field in its errors: `--lr` for a flag, `run.json: "lr"` for a file. */
type Namer = (key: string) => string;

/** Converts and checks one value; `name` says where it came from. Strings (from flags) are parsed. */
function coerce(key: keyof TrainConfig, raw: unknown, name: string): unknown {
  const f = FIELDS[key];
  const got = typeof raw === 'string' ? JSON.stringify(raw) : (JSON.stringify(raw) ?? String(raw));
  const bad = (what: string): never => {
    throw new ConfigError(`${name} must be ${what}${f.nullable ? ' (or null)' : ''}, got ${got}`);
  };
  if (raw === null || (typeof raw === 'string' && raw === 'null' && f.kind.t !== 'string' && f.kind.t !== 'path')) {
    if (f.nullable) return null;
    return bad(describe(f.kind));
  }
  const k = f.kind;
  switch (k.t) {
    case 'string':
    case 'path':
      if (typeof raw !== 'string' || raw === '') return bad('a non-empty string');
      return raw;
    case 'bool':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1') return true;
      if (raw === 'false' || raw === '0') return false;
      return bad('true or false');
    case 'enum':
      if (typeof raw !== 'string' || !k.values.includes(raw)) return bad(`one of ${k.values.join(', ')}`);
      return raw;
    case 'list': {
      let v: unknown = raw;
      if (typeof v === 'string') v = v.startsWith('[') ? tryJson(v) : v.split(',').map((s) => s.trim());
      if (!Array.isArray(v) || v.length === 0 || v.some((s) => typeof s !== 'string' || s === ''))
        return bad('a non-empty list of names (comma-separated on the command line)');
      return v;
    }
    case 'int':
    case 'number': {
      const n = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
      if (typeof n !== 'number' || !Number.isFinite(n)) return bad(describe(k));
      if (k.t === 'int' && (!Number.isSafeInteger(n) || n < k.min)) return bad(describe(k));
      if (k.t === 'number') {
        const lowOk = k.min === undefined || (k.open && k.max === undefined ? n > k.min : n >= k.min);
        const highOk = k.max === undefined || (k.open ? n < k.max : n <= k.max);
        if (!lowOk || !highOk) return bad(describe(k));
      }
      return n;
    }
  }
}

function tryJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}

function describe(k: Kind): string {
  switch (k.t) {
    case 'string':
    case 'path':
      return 'a non-empty string';
    case 'bool':
      return 'true or false';
    case 'enum':
      return `one of ${k.values.join(', ')}`;
    case 'list':
      return 'a list of names';
    case 'int':
      return k.min === 0 ? 'a non-negative integer' : `an integer ≥ ${k.min}`;
    case 'number':
      if (k.min !== undefined && k.max !== undefined) return `a number in [${k.min}, ${k.max}${k.open ? ')' : ']'}`;
      if (k.min !== undefined) return k.open ? `a number > ${k.min}` : `a number ≥ ${k.min}`;
      return 'a number';
  }
}

/** Validates a partial config object (from a file or flags): known keys, each value of its type. */
export function checkPartial(obj: Record<string, unknown>, namer: Namer): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (const [key, raw] of Object.entries(obj)) {
    if (!(key in FIELDS)) throw new ConfigError(`${namer(key)} is not a training option${didYouMean(key, NAMES)}`);
    out[key] = coerce(key as keyof TrainConfig, raw, namer(key));
  }
  return out as Partial<TrainConfig>;
}

/** Reads a JSON run file (an object of fields; unknown keys are errors naming the file). */
export function readConfigFile(file: string): Partial<TrainConfig> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`${file}: cannot read the run config (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  const json = parseJsonText(text, file, '[config]');
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new ConfigError(`${file}: the run config must be a JSON object of options`);
  return checkPartial(json as Record<string, unknown>, (k) => `${file}: "${k}"`);
}

/**
 * Parses command-line flags: --name value, --name=value, bare booleans (--resume, --no-resume), with
 * '-' or '_' in names. Returns the options given (validated) and --config's value. Unknown flags are errors.
 */
export function parseFlags(args: readonly string[]): {
  given: Partial<TrainConfig>;
  config: string | null;
  help: boolean;
} {
  const raw: Record<string, unknown> = {};
  let config: string | null = null;
  let help = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument "${arg}" (options are --name value)`);
    const eq = arg.indexOf('=');
    let name = (eq < 0 ? arg.slice(2) : arg.slice(2, eq)).replaceAll('-', '_');
    let value: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    if (name === 'config') {
      value ??= args[++i];
      if (value === undefined) throw new ConfigError('--config needs a file');
      config = value;
      continue;
    }
    let negated = false;
    if (!(name in FIELDS) && name.startsWith('no_') && name.slice(3) in FIELDS) {
      name = name.slice(3);
      negated = true;
    }
    if (!(name in FIELDS)) {
      const close = closeNames(name, NAMES);
      const hint = close.length > 0 ? ` (did you mean ${close.map((c) => `--${c}`).join(' or ')}?)` : '';
      throw new ConfigError(`unknown option --${name}${hint} (see vera train --help)`);
    }
    const field = FIELDS[name as keyof TrainConfig];
    if (field.kind.t === 'bool') {
      if (negated) {
        if (value !== undefined) throw new ConfigError(`--no-${name} takes no value`);
        value = 'false';
      } else if (value === undefined) {
        // A bare boolean flag, unless the next argument is an explicit true/false.
        const next = args[i + 1];
        if (next === 'true' || next === 'false') value = args[++i]!;
        else value = 'true';
      }
    } else if (negated) {
      throw new ConfigError(`--no-${name}: only boolean options can be negated`);
    } else if (value === undefined) {
      value = args[++i];
      if (value === undefined) throw new ConfigError(`--${name} needs a value`);
    }
    raw[name] = value;
  }
  return { given: checkPartial(raw, (k) => `--${k}`), config, help };
}

/** Defaults, then the file, then the flags; then checks the fields together. */
export function resolveConfig(...layers: Partial<TrainConfig>[]): TrainConfig {
  const out: Record<string, unknown> = {};
  for (const key of NAMES) out[key] = FIELDS[key].default;
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) if (v !== undefined) out[k] = v;
    // A layer that picks only a backend or only a device replaces an earlier layer's other choice when
    // the two disagree (a run resumed with --device cuda drops the checkpoint's "backend": "native").
    const backend = out['backend'] as BackendName | null;
    const device = out['device'] as DeviceName | null;
    if (backend !== null && device !== null && BACKEND_DEVICE[backend] !== device) {
      if (layer.device != null && layer.backend == null) out['backend'] = null;
      else if (layer.backend != null && layer.device == null) out['device'] = null;
    }
  }
  const c = out as unknown as TrainConfig;
  validate(c);
  return c;
}

function validate(c: TrainConfig): void {
  const need = (key: keyof TrainConfig) => {
    if (c[key] === undefined || c[key] === null)
      throw new ConfigError(`--${key} is required (in the run config or as a flag; see vera train --help)`);
  };
  need('model');
  need('train_file');
  need('output_dir');
  if (c.dtype === 'bf16' && c.method === 'full')
    throw new ConfigError(
      `--dtype bf16 keeps the base frozen in bf16: it is for --method vera, lora or head, not ${c.method} (which trains base weights)`,
    );
  if (c.from_scratch && c.method !== 'full')
    throw new ConfigError(`--from_scratch trains every weight: it needs --method full, not ${c.method}`);
  if (c.backend !== null && c.device !== null && BACKEND_DEVICE[c.backend] !== c.device)
    throw new ConfigError(
      `--backend ${c.backend} and --device ${c.device} disagree: the ${c.backend} backend runs on ${BACKEND_DEVICE[c.backend]} (give one of the two)`,
    );
  if (c.resume && c.overwrite_output_dir)
    throw new ConfigError('--resume and --overwrite_output_dir contradict each other; pick one');
  if (c.method !== 'lora' && c.method !== 'vera') {
    for (const key of ['r', 'target_modules'] as const)
      if (c[key] !== null) throw new ConfigError(`--${key} is an adapter option; --method ${c.method} has no adapter`);
  }
  if (c.vera_projection_init !== 'kaiming_uniform' && !c.save_projection)
    throw new ConfigError(
      `--vera_projection_init ${c.vera_projection_init} needs --save_projection: PEFT regenerates only Kaiming-uniform projections from the seed`,
    );
  if (c.metric !== null && (GENERATION_METRICS as readonly string[]).includes(c.metric) && c.validation_file === null)
    throw new ConfigError(
      `--metric ${c.metric} scores generated responses: it needs --validation_file with {prompt, response} JSON Lines`,
    );
  if (c.metric !== null && c.task !== null && !metricsFor(c.task).includes(c.metric))
    throw new ConfigError(
      `--metric ${c.metric} does not apply to task ${c.task} (use one of ${metricsFor(c.task).join(', ')})`,
    );
}

/** Metrics each task reports (the first is its default for picking the best checkpoint). */
export function metricsFor(task: Task): string[] {
  switch (task) {
    case 'classification':
    case 'image-classification':
      return ['accuracy', 'f1', 'mcc', 'loss'];
    case 'regression':
      return ['pearson', 'spearman', 'loss'];
    case 'causal-lm':
      return ['perplexity', 'loss', ...GENERATION_METRICS];
  }
}

/** Whether a larger value of the metric is better. */
export function greaterIsBetter(metric: string): boolean {
  return !['loss', 'perplexity'].includes(metric);
}

/** The learning rate a method uses when none is given. */
export function defaultLr(method: Method): number {
  return { vera: 1e-2, lora: 5e-4, head: 1e-3, full: 5e-5 }[method];
}

/** The help text of `vera train`, generated from the schema. */
export function trainUsage(): string {
  const lines = [
    'Usage: vera train --config run.json [--option value ...]',
    '       vera train --model DIR --train_file FILE --output_dir DIR [--option value ...]',
    '',
    'Fine-tunes a Hugging Face model with VeRA, LoRA, a new head or in full. Every option can be given in',
    'the JSON run file (as "batch_size": 8) or as a flag (--batch_size 8 or --batch-size 8); flags override',
    'the file. Checkpoints are atomic; --resume continues from the newest one to the same result.',
    '',
  ];
  let group = '';
  for (const key of NAMES) {
    const f = FIELDS[key];
    if (f.group !== group) {
      group = f.group;
      lines.push(`${group}:`);
    }
    const value = placeholder(key, f.kind);
    const def =
      f.default === undefined
        ? ' (required)'
        : f.default === null || f.default === false
          ? ''
          : f.default === true
            ? ` [true; --no-${key} turns it off]`
            : ` [${String(f.default)}]`;
    lines.push(`  --${key}${value}`.padEnd(34) + f.help + def);
  }
  lines.push('  --config FILE'.padEnd(34) + 'The JSON run file');
  lines.push(
    '  --nproc N'.padEnd(34) +
      'Data-parallel ranks on this machine, started with mpirun (Open MPI; each global batch is split among them)',
  );
  lines.push('');
  return `${lines.join('\n')}\n`;
}

/** The value a flag takes in the help: DIR, FILE, NAME, A,B, N, X (one of the listed values), or none. */
function placeholder(key: string, k: Kind): string {
  switch (k.t) {
    case 'bool':
      return '';
    case 'path':
      return key === 'model' || key === 'tokenizer' || key.endsWith('_dir') ? ' DIR' : ' FILE';
    case 'string':
      return ' NAME';
    case 'list':
      return ' A,B';
    case 'enum':
      return ' X';
    default:
      return ' N';
  }
}
