// `vera merge`: folds a PEFT adapter into its base model (mergeAndUnload) and saves a plain Hugging Face
// model directory (config.json + model.safetensors, plus the base's tokenizer files) that transformers
// and every vera command load without PEFT.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defaultBackend } from '../backends/registry.js';
import { copyModelAssets } from '../models/assets.js';
import { writeDirAtomic } from '../train/checkpoint.js';
import { loadTrained } from '../adapters/load.js';
import { padIdFor } from '../models/text-inputs.js';
import { readJsonFile } from '../io/json.js';
import { Tokenizer } from '../io/tokenizer.js';
import { asConfigObject } from '../models/config-utils.js';
import {
  backendHelp,
  deviceHelp,
  parseArgs,
  parseCommandArgs,
  selectBackend,
  threadsHelp,
  writeOut,
} from './common.js';

export const MERGE_USAGE = `Usage: vera merge --model DIR --adapter DIR --out DIR [--label_names A,B] [--dtype f32|bf16]

Merges a VeRA or LoRA adapter into its base model's weights (PEFT's merge_and_unload; a trained
classification head is kept) and saves the result as a Hugging Face model directory: config.json,
model.safetensors and the base's tokenizer files. The directory is written atomically.

Options:
  --model DIR          The base model the adapter was trained on
  --adapter DIR        The PEFT adapter directory (e.g. a vera train run's adapter/ or best/)
  --out DIR            Where the merged model goes (replaced if it exists)
  --label_names A,B    Class names for config.json's id2label (classification)
  --dtype f32|bf16     Storage of the Linear/Embedding weights merged into and saved (default f32;
                       bf16 halves memory and file, and rounds W + ΔW to bf16 exactly as PEFT does)
${backendHelp(23)}${deviceHelp(23)}${threadsHelp(23)}`;

export async function mergeCommand(args: string[]): Promise<number> {
  const s = { type: 'string' } as const;
  const { values } = parseCommandArgs('merge', () =>
    parseArgs({
      args,
      options: {
        model: s,
        adapter: s,
        out: s,
        label_names: s,
        dtype: s,
        backend: s,
        threads: s,
        device: s,
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }),
  );
  if (values.help) {
    await writeOut(MERGE_USAGE);
    return 0;
  }
  for (const key of ['model', 'adapter', 'out'] as const)
    if (!values[key]) throw new Error(`--${key} is required (see vera merge --help)`);
  selectBackend(values.backend, values.threads, values.device);
  const backend = defaultBackend();
  const modelDir = values.model!;
  const configFile = join(modelDir, 'config.json');
  const baseConfig = asConfigObject(readJsonFile(configFile), configFile);
  const hasTokenizer = ['tokenizer.json', 'vocab.txt', 'vocab.json'].some((f) => existsSync(join(modelDir, f)));
  const padId = padIdFor(baseConfig, hasTokenizer ? Tokenizer.fromDir(modelDir) : null);
  const dtype = values.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'bf16') throw new Error(`--dtype must be f32 or bf16, got "${dtype}"`);
  const { model } = loadTrained(modelDir, values.adapter!, { backend, merge: true, padTokenId: padId, dtype });
  if (values.label_names !== undefined) {
    const names = values.label_names.split(',').map((x) => x.trim());
    const n = Object.keys((model.config['id2label'] as object | undefined) ?? {}).length;
    if (names.length !== n) throw new Error(`--label_names gives ${names.length} names for a head of ${n} labels`);
    model.config['id2label'] = Object.fromEntries(names.map((x, i) => [String(i), x]));
    model.config['label2id'] = Object.fromEntries(names.map((x, i) => [x, i]));
  }
  writeDirAtomic(values.out!, (tmp) => {
    model.savePretrained(tmp);
    copyModelAssets(modelDir, tmp);
  });
  await writeOut(
    `${JSON.stringify({ out: values.out, architecture: model.architecture, parameters: model.numParameters() })}\n`,
  );
  return 0;
}
