// `vera logits`: the logits of one example, as one JSON object on stdout — the stable contract other
// checks use. Causal LMs print [seq, vocab], classifiers [num_labels]. The model and adapter load as
// `vera classify` loads them (adapters/load.ts: a classification adapter trained on a causal-LM base
// gets the family's classifier).

import { loadTrained } from '../adapters/load.js';
import { noGrad } from '../autograd/graph.js';
import { SafetensorsReader } from '../io/safetensors.js';
import type { ModelInputs } from '../models/pretrained.js';
import { vocabSizeOf } from '../models/text-inputs.js';
import { checkTokenIds } from '../io/token-ids.js';
import * as ops from '../ops/index.js';
import { tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import { BACKEND_NAMES, DEVICE_NAMES } from '../backends/registry.js';
import {
  backendHelp,
  deviceHelp,
  dtypeFlag,
  dtypeHelp,
  parseArgs,
  parseCommandArgs,
  selectBackend,
  threadsHelp,
  writeOut,
} from './common.js';

export const LOGITS_USAGE = `Usage: vera logits --model DIR [--adapter DIR] [--merge] [--dtype f32|bf16]
                   [--backend ${BACKEND_NAMES.join('|')}] [--device ${DEVICE_NAMES.join('|')}] [--threads N]
                   (--ids 1,2,3 | --pixels FILE.safetensors)

Prints exactly one JSON object {"shape":[...],"data":[...]}: the logits of one example
(causal LM: [seq, vocab]; sequence or image classification: [num_labels]). An adapter loads as in
vera classify: one that vera train made for classification on a causal-LM base runs on that base's
classifier class.

Options:
  --model DIR          A Hugging Face model directory (config.json + model.safetensors)
  --adapter DIR        A PEFT adapter directory (adapter_config.json + adapter_model.safetensors)
  --merge              Merge the adapter into the weights before the forward pass
  --ids LIST           Comma-separated token ids
  --pixels FILE        A safetensors file with "pixel_values" [1, 3, H, W], already preprocessed
${backendHelp(23)}${deviceHelp(23)}${threadsHelp(23)}${dtypeHelp(23)}`;

export interface LogitsOptions {
  model: string;
  adapter?: string | undefined;
  merge: boolean;
  ids?: string | undefined;
  pixels?: string | undefined;
  dtype?: 'f32' | 'bf16';
}

export function parseIds(text: string): number[] {
  const ids = text.split(',').map((s) => s.trim());
  if (ids.length === 0 || ids.some((s) => !/^\d+$/.test(s)))
    throw new Error(`--ids must be comma-separated non-negative integers, got "${text}"`);
  return ids.map(Number);
}

/** `vera logits ARGS`: parses the flags, prints the JSON object; returns the exit status. */
export async function logitsCommand(args: string[]): Promise<number> {
  const s = { type: 'string' } as const;
  const { values } = parseCommandArgs('logits', () =>
    parseArgs({
      args,
      options: {
        model: s,
        adapter: s,
        merge: { type: 'boolean', default: false },
        ids: s,
        pixels: s,
        dtype: s,
        backend: s,
        device: s,
        threads: s,
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }),
  );
  if (values.help) {
    await writeOut(LOGITS_USAGE);
    return 0;
  }
  if (!values.model) throw new Error('--model is required (see vera logits --help)');
  const dtype = dtypeFlag(values.dtype);
  selectBackend(values.backend, values.threads, values.device);
  const { model, adapter, merge, ids, pixels } = values;
  await writeOut(`${logitsJson({ model, adapter, merge, ids, pixels, dtype })}\n`);
  return 0;
}

/** Computes the logits of one example; returns the JSON line. */
export function logitsJson(opts: LogitsOptions): string {
  if ((opts.ids === undefined) === (opts.pixels === undefined))
    throw new Error('Give exactly one of --ids and --pixels');
  if (opts.merge && !opts.adapter) throw new Error('--merge needs --adapter');
  const { model: base, peft } = loadTrained(opts.model, opts.adapter ?? null, {
    merge: opts.merge,
    dtype: opts.dtype ?? 'f32',
  });
  const inputs: ModelInputs = {};
  if (opts.ids !== undefined) {
    if (base.task === 'image-classification')
      throw new Error(`${opts.model} is an image classifier: pass --pixels, not --ids`);
    const ids = parseIds(opts.ids);
    checkTokenIds(ids, vocabSizeOf(base.config), '--ids');
    inputs.inputIds = tensor(Int32Array.from(ids), { dtype: 'i32', shape: [1, ids.length] });
  } else {
    if (base.task !== 'image-classification')
      throw new Error(`${opts.model} takes token ids: pass --ids, not --pixels`);
    const reader = SafetensorsReader.open(opts.pixels!);
    try {
      inputs.pixelValues = reader.tensor('pixel_values', { dtype: 'f32' });
    } finally {
      reader.close();
    }
    if (inputs.pixelValues.rank !== 4 || inputs.pixelValues.shape[0] !== 1 || inputs.pixelValues.shape[1] !== 3) {
      throw new Error(
        `${opts.pixels}: "pixel_values" must be [1, 3, H, W], got [${inputs.pixelValues.shape.join(', ')}]`,
      );
    }
  }
  return noGrad(() =>
    scope(() => {
      const logits = (peft ?? base).forward(inputs as never);
      const one = ops.squeeze(logits, 0); // drop the batch axis
      return JSON.stringify({ shape: one.shape, data: one.toNumbers() });
    }),
  );
}
