// `vera logits`: the logits of one example, as one JSON object on stdout — the stable contract other
// checks use. Causal LMs print [seq, vocab], classifiers [num_labels].

import { PeftModel } from '../adapters/peft-model.js';
import { noGrad } from '../autograd/graph.js';
import { SafetensorsReader } from '../io/safetensors.js';
import { loadModel } from '../models/auto.js';
import type { ModelInputs } from '../models/pretrained.js';
import { vocabSizeOf } from '../models/text-inputs.js';
import { checkTokenIds } from '../io/token-ids.js';
import * as ops from '../ops/index.js';
import { tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import { BACKEND_NAMES, DEVICE_NAMES } from '../backends/registry.js';
import { backendHelp, deviceHelp, dtypeHelp, threadsHelp } from './common.js';

export const LOGITS_USAGE = `Usage: vera logits --model DIR [--adapter DIR] [--merge] [--dtype f32|bf16]
                   [--backend ${BACKEND_NAMES.join('|')}] [--device ${DEVICE_NAMES.join('|')}] [--threads N]
                   (--ids 1,2,3 | --pixels FILE.safetensors)

Prints exactly one JSON object {"shape":[...],"data":[...]}: the logits of one example
(causal LM: [seq, vocab]; sequence or image classification: [num_labels]).

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

/** Computes the logits of one example; returns the JSON line. */
export function logitsJson(opts: LogitsOptions): string {
  if ((opts.ids === undefined) === (opts.pixels === undefined))
    throw new Error('Give exactly one of --ids and --pixels');
  if (opts.merge && !opts.adapter) throw new Error('--merge needs --adapter');
  const base = loadModel(opts.model, { dtype: opts.dtype ?? 'f32' });
  const model = opts.adapter ? PeftModel.fromPretrained(base, opts.adapter) : null;
  if (model && opts.merge) model.merge();
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
      const logits = (model ?? base).forward(inputs as never);
      const one = ops.squeeze(logits, 0); // drop the batch axis
      return JSON.stringify({ shape: one.shape, data: one.toNumbers() });
    }),
  );
}
