// `vera classify`: sequence classification of a text (or text pair) and image classification of a PNG/JPEG,
// printing config.json's id2label names with softmax probabilities, best first, or one JSON object.

import { noGrad } from '../autograd/graph.js';
import { imageToTensor, loadImageProcessorConfig, readImage } from '../io/image.js';
import { Tokenizer } from '../io/tokenizer.js';
import type { ModelInputs, PreTrainedModel } from '../models/pretrained.js';
import { vocabSizeOf } from '../models/text-inputs.js';
import { checkTokenIds } from '../io/token-ids.js';
import * as ops from '../ops/index.js';
import { tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import { labelNames, rankLabels } from '../serve/labels.js';
import {
  backendHelp,
  deviceHelp,
  dtypeHelp,
  dtypeFlag,
  intFlag,
  parseArgs,
  parseCommandArgs as usage,
  progressLogger,
  selectBackend,
  threadsHelp,
  writeOut,
} from './common.js';
import { loadWithAdapter } from './generate.js';

export const CLASSIFY_USAGE = `Usage: vera classify --model DIR (--text TEXT [--pair TEXT] | --image FILE) [options]

Classifies one text (BERT, RoBERTa, GPT-2, Llama, Mistral, Qwen2 sequence classifiers; the tokenizer
comes from the model directory) or one PNG/JPEG image (ViT; preprocessed per the directory's
preprocessor_config.json), and prints config.json's id2label names with their softmax
probabilities, best first, one per line.

Input (one of):
  --text TEXT          The text to classify
  --pair TEXT          A second text, for sentence-pair models (with --text)
  --image FILE         A PNG or JPEG image

Options:
  --model DIR          A Hugging Face model directory
  --adapter DIR        A PEFT adapter directory (adapter_config.json + adapter_model.safetensors)
  --merge              Merge the adapter into the weights first
  --label_names A,B    Class names in id order (default: config.json's id2label; an adapter trained
                       by vera train on a base without labels needs them, as vera eval does)
  --top N              Print the N most likely labels only (default: all)
  --json               Print one JSON object {"labels":[{"label","id","score"}],"logits":[...]}
  --verbose            Loading and timing lines on stderr (default: only when stderr is a terminal)
${backendHelp(23)}${deviceHelp(23)}${threadsHelp(23)}${dtypeHelp(23)}`;

export async function classifyCommand(args: string[]): Promise<number> {
  const { values } = usage('classify', () =>
    parseArgs({
      args,
      options: {
        model: { type: 'string' },
        adapter: { type: 'string' },
        merge: { type: 'boolean', default: false },
        text: { type: 'string' },
        pair: { type: 'string' },
        image: { type: 'string' },
        label_names: { type: 'string' },
        top: { type: 'string' },
        json: { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        backend: { type: 'string' },
        threads: { type: 'string' },
        device: { type: 'string' },
        dtype: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }),
  );
  if (values.help) {
    await writeOut(CLASSIFY_USAGE);
    return 0;
  }
  if (!values.model) throw new Error('--model is required (see vera classify --help)');
  if ((values.text === undefined) === (values.image === undefined))
    throw new Error('Give exactly one of --text and --image');
  if (values.pair !== undefined && values.text === undefined) throw new Error('--pair needs --text');
  if (values.merge && !values.adapter) throw new Error('--merge needs --adapter');
  const top = values.top === undefined ? Infinity : intFlag('top', values.top, 1);
  const dtype = dtypeFlag(values.dtype);
  const log = progressLogger(values.verbose);

  selectBackend(values.backend, values.threads, values.device);
  const t0 = performance.now();
  const model = loadWithAdapter(values.model, values.adapter, values.merge, dtype);
  log(`vera: loaded ${model.architecture} from ${values.model} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  const logits = noGrad(() => scope(() => forwardOne(model, values.model!, values)));
  const names = values.label_names?.split(',').map((x) => x.trim()) ?? labelNames(model.config, logits.length);
  if (names.length !== logits.length)
    throw new Error(`--label_names gives ${names.length} names for a head of ${logits.length} labels`);
  const ranked = rankLabels(logits, names).slice(0, top);
  if (values.json) {
    await writeOut(`${JSON.stringify({ labels: ranked, logits })}\n`);
  } else {
    const width = Math.max(...ranked.map((r) => r.label.length));
    await writeOut(ranked.map((r) => `${r.label.padEnd(width)}  ${r.score.toFixed(4)}\n`).join(''));
  }
  log(`vera: classified in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  return 0;
}

/** Most tokens the model's learned position embeddings cover (null: rotary, no table). */
function positionLimit(model: PreTrainedModel): number | null {
  const c = model.config;
  const num = (k: string) => (typeof c[k] === 'number' ? (c[k] as number) : null);
  if (model.modelType === 'gpt2') return num('n_positions');
  const max = num('max_position_embeddings');
  if (max === null) return null;
  // RoBERTa numbers positions from pad_token_id + 1.
  if (model.modelType === 'roberta') return max - (num('pad_token_id') ?? 1) - 1;
  if (model.modelType === 'bert') return max;
  return null;
}

/** The logits [num_labels] of the one input the flags give. */
function forwardOne(
  model: PreTrainedModel,
  dir: string,
  values: { text?: string | undefined; pair?: string | undefined; image?: string | undefined },
): number[] {
  const inputs: ModelInputs = {};
  if (model.task === 'causal-lm')
    throw new Error(
      `${dir} holds a ${model.architecture} (causal LM); vera classify needs a sequence or image classifier (try vera generate)`,
    );
  if (values.text !== undefined) {
    if (model.task !== 'sequence-classification')
      throw new Error(`${dir} holds an image classifier (${model.architecture}): pass --image, not --text`);
    const tokenizer = Tokenizer.fromDir(dir);
    const enc = tokenizer.encode(values.text, values.pair === undefined ? {} : { pair: values.pair });
    if (enc.ids.length === 0) throw new Error('The text encodes to no tokens');
    checkTokenIds(enc.ids, vocabSizeOf(model.config), 'The text');
    const limit = positionLimit(model);
    if (limit !== null && enc.ids.length > limit)
      throw new Error(`The input is ${enc.ids.length} tokens; ${model.architecture} takes at most ${limit}`);
    const i32 = (v: number[]) => tensor(Int32Array.from(v), { dtype: 'i32', shape: [1, v.length] });
    inputs.inputIds = i32(enc.ids);
    // Only BERT's tokenizer returns token_type_ids (RoBERTa has one type, GPT-2 would add them to the embeddings).
    if (model.modelType === 'bert') inputs.tokenTypeIds = i32(enc.tokenTypeIds);
  } else {
    if (model.task !== 'image-classification')
      throw new Error(`${dir} holds a text classifier (${model.architecture}): pass --text, not --image`);
    const config = loadImageProcessorConfig(dir);
    inputs.pixelValues = imageToTensor(readImage(values.image!), config);
  }
  return ops.squeeze(model.forward(inputs), 0).toNumbers();
}
