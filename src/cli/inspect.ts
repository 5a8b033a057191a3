// `vera inspect DIR`: what a directory holds, read from its files without building a model. A PEFT
// adapter: method, targets, rank, trainable parameters, bytes, config. A model: architecture and
// parameter count. A training output directory or checkpoint: progress, best metric, and its weights.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EXPERIMENTAL_KEY, type VeraExperimental } from '../adapters/vera/config.js';
import { Checkpoint } from '../io/checkpoint.js';
import { readJsonFile } from '../io/json.js';
import { STATE_FILE, newestCheckpoint, readTrainerState } from '../train/checkpoint.js';
import { parseArgs, parseCommandArgs, writeOut } from './common.js';

export const INSPECT_USAGE = `Usage: vera inspect DIR [--json]

Describes DIR from its files (no model is built):
  a PEFT adapter (adapter_config.json): method, target modules, r, trainable parameters, adapter bytes
    and the full config;
  a model (config.json): architecture, model type, parameters, dtype, labels;
  a vera train checkpoint or output directory: step, best metric, and the weights it holds.

Options:
  --json     One JSON object instead of aligned lines
`;

type Info = Record<string, unknown>;

export async function inspectCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs('inspect', () =>
    parseArgs({
      args,
      options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    }),
  );
  if (values.help) {
    await writeOut(INSPECT_USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new Error('Give exactly one directory (see vera inspect --help)');
  const info = inspectDir(positionals[0]!);
  await writeOut(values.json ? `${JSON.stringify(info)}\n` : render(info));
  return 0;
}

/** What `dir` holds, as a plain object (see the file comment). */
export function inspectDir(dir: string): Info {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`${dir}: not a directory`);
  if (existsSync(join(dir, STATE_FILE))) return { kind: 'checkpoint', ...trainingInfo(dir), weights: weightsInfo(dir) };
  const newest = newestCheckpoint(dir);
  if (newest) {
    const out: Info = { kind: 'training run', newest_checkpoint: newest.dir, ...trainingInfo(newest.dir) };
    for (const sub of ['adapter', 'model', 'best'])
      if (existsSync(join(dir, sub))) out[sub] = weightsInfo(join(dir, sub));
    return out;
  }
  return weightsInfo(dir);
}

function trainingInfo(dir: string): Info {
  const st = readTrainerState(dir);
  return {
    step: st.step,
    total_steps: st.totalSteps,
    best_metric: st.best,
    examples_seen: st.examplesSeen,
    tokens_seen: st.tokensSeen,
    train_seconds: Math.round(st.trainSeconds * 10) / 10,
    labels: st.labelNames,
  };
}

function weightsInfo(dir: string): Info {
  if (existsSync(join(dir, 'adapter_config.json'))) return adapterInfo(dir);
  if (existsSync(join(dir, 'config.json'))) return modelInfo(dir);
  throw new Error(`${dir}: neither an adapter (adapter_config.json) nor a model (config.json) nor a vera train run`);
}

function adapterInfo(dir: string): Info {
  const config = readJsonFile(join(dir, 'adapter_config.json')) as Record<string, unknown>;
  const file = join(dir, 'adapter_model.safetensors');
  let trainable = 0;
  let bytes = 0;
  let tensors = 0;
  // The VeRA paper's ablations (vera-ts only) store a λ they hold fixed: it is not trained either.
  const experimental = config[EXPERIMENTAL_KEY] as VeraExperimental | undefined;
  const fixed = [
    ...(experimental?.train_b === false ? ['vera_lambda_b'] : []),
    ...(experimental?.train_d === false ? ['vera_lambda_d'] : []),
  ];
  if (existsSync(file)) {
    const ckpt = Checkpoint.open(file);
    try {
      for (const name of ckpt.names()) {
        const info = ckpt.info(name);
        const n = info.shape.reduce((a, b) => a * b, 1);
        tensors++;
        bytes += info.dataOffsets[1] - info.dataOffsets[0];
        // VeRA's shared projections are frozen: stored (save_projection) but not trained.
        const frozen = /\.vera_[AB]$/.test(name) || /(^|\.)vera_[AB]\./.test(name);
        if (!frozen && !fixed.some((k) => name.endsWith(`.${k}`))) trainable += n;
      }
    } finally {
      ckpt.close();
    }
  }
  return {
    kind: 'adapter',
    method: config['peft_type'],
    task_type: config['task_type'] ?? null,
    base_model: config['base_model_name_or_path'] ?? null,
    target_modules: config['target_modules'] ?? null,
    modules_to_save: config['modules_to_save'] ?? null,
    r: config['r'] ?? null,
    trainable_parameters: trainable,
    tensors,
    adapter_bytes: bytes,
    file_bytes: existsSync(file) ? statSync(file).size : 0,
    config,
  };
}

function modelInfo(dir: string): Info {
  const config = readJsonFile(join(dir, 'config.json')) as Record<string, unknown>;
  const archs = config['architectures'];
  const out: Info = {
    kind: 'model',
    architecture: Array.isArray(archs) ? archs[0] : null,
    model_type: config['model_type'] ?? null,
    dtype: config['dtype'] ?? config['torch_dtype'] ?? null,
  };
  for (const key of ['hidden_size', 'n_embd', 'num_hidden_layers', 'n_layer', 'vocab_size', 'num_labels'])
    if (typeof config[key] === 'number') out[key] = config[key];
  const id2label = config['id2label'];
  if (id2label && typeof id2label === 'object') out['labels'] = Object.values(id2label);
  let params = 0;
  try {
    const ckpt = Checkpoint.open(dir);
    try {
      const names = ckpt.names();
      for (const name of names) params += ckpt.info(name).shape.reduce((a, b) => a * b, 1);
      // A tied output head stored next to its embedding is one parameter (transformers counts it once).
      const tied = config['tie_word_embeddings'] !== false && names.some((n) => /(^|\.)lm_head\.weight$/.test(n));
      const emb = names.find((n) => /(wte|embed_tokens|word_embeddings)\.weight$/.test(n));
      if (tied && emb) params -= ckpt.info(emb).shape.reduce((a, b) => a * b, 1);
    } finally {
      ckpt.close();
    }
    out['parameters'] = params;
  } catch {
    out['parameters'] = null; // a config-only directory (a from-scratch template)
  }
  return out;
}

/** Aligned "key  value" lines, nested objects indented (the adapter config last, as JSON). */
function render(info: Info, indent = ''): string {
  const entries = Object.entries(info).filter(([k]) => k !== 'config');
  const width = Math.max(...entries.map(([k]) => k.length), 6);
  let out = '';
  for (const [k, v] of entries) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && k !== 'best_metric') {
      out += `${indent}${k}:\n${render(v as Info, `${indent}  `)}`;
      continue;
    }
    const text =
      typeof v === 'number' && k.endsWith('bytes')
        ? `${v.toLocaleString('en-US')} (${(v / 1024).toFixed(1)} KiB)`
        : typeof v === 'number'
          ? v.toLocaleString('en-US')
          : typeof v === 'string'
            ? v
            : JSON.stringify(v);
    out += `${indent}${k.padEnd(width)}  ${text}\n`;
  }
  if (info['config'] !== undefined) out += `${indent}config:\n${indent}  ${JSON.stringify(info['config'])}\n`;
  return out;
}
