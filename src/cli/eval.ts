// `vera eval`: a model (optionally with a PEFT adapter) on a labelled data file; prints the loss and the
// task's metrics as one JSON object.

import { join } from 'node:path';
import { defaultBackend } from '../backends/registry.js';
import { readJsonFile } from '../io/json.js';
import { Tokenizer } from '../io/tokenizer.js';
import { asConfigObject } from '../models/config-utils.js';
import { resolveModelClass } from '../models/registry.js';
import { type DataFormat, FIELDS, type Task } from '../train/config.js';
import { evaluate } from '../train/evaluate.js';
import { adapterHead, loadTrained } from '../adapters/load.js';
import { defaultMaxLength, padIdFor } from '../models/text-inputs.js';
import { imageProcessor, loadDataset } from '../train/setup.js';
import { writeFileAtomic } from '../io/atomic.js';
import { evaluateGeneration, readGenerationExamples } from '../train/generation-eval.js';
import {
  dtypeFlag,
  backendHelp,
  deviceHelp,
  dtypeHelp,
  parseArgs,
  intFlag,
  parseCommandArgs,
  progressLogger,
  selectBackend,
  threadsHelp,
  writeOut,
} from './common.js';

const DATA_FORMATS: readonly DataFormat[] = ['auto', 'csv', 'tsv', 'jsonl', 'text', 'instructions', 'images', 'idx'];

export const EVAL_USAGE = `Usage: vera eval --model DIR [--adapter DIR] --data FILE [options]

Evaluates a model, or a model with a PEFT adapter (as vera train writes them), on labelled data and
prints one JSON object: {"examples": N, "loss": …, and the task's metrics} (classification: accuracy,
f1, mcc; regression: pearson, spearman; causal LM: perplexity).

With --generate (a causal LM and {prompt, response} JSON Lines), each prompt is continued greedily and
scored against every response given for it, as the VeRA paper scores E2E: {"examples", "bleu",
"rouge_l", "nist", "cider", "samples"} (BLEU as sacreBLEU, ROUGE-L F as rouge-score, both 0–100).

Options:
  --model DIR          A Hugging Face model directory (the base model when --adapter is given)
  --adapter DIR        A PEFT adapter directory (adapter_config.json + adapter_model.safetensors)
  --data FILE          Data in any format vera train reads (CSV/TSV/JSONL table, .txt, instructions,
                       image folder, IDX images, builtin:uci-sentiment)
  --labels_file FILE   IDX labels of --data
  --task T             ${FIELDS.task.help}
  --label_names A,B    Class names in id order (default: the model's id2label, else from the data)
  --batch_size N       Examples per batch (default 16)
  --generate           Score generated responses (see above)
  --max_new_tokens N   With --generate: new tokens per response at most (default 64)
  --predictions FILE   With --generate: also write every {prompt, output, references} as JSON Lines
  --data_format, --text_column, --pair_column, --label_column, --prompt_key, --response_key,
  --messages_key, --max_length, --block_size, --padding_side, --on_bad_row: as for vera train
${backendHelp(23)}${deviceHelp(23)}${threadsHelp(23)}${dtypeHelp(23)}`;

export async function evalCommand(args: string[]): Promise<number> {
  const s = { type: 'string' } as const;
  const { values } = parseCommandArgs('eval', () =>
    parseArgs({
      args,
      options: {
        model: s,
        adapter: s,
        data: s,
        labels_file: s,
        task: s,
        label_names: s,
        batch_size: s,
        data_format: s,
        text_column: s,
        pair_column: s,
        label_column: s,
        prompt_key: s,
        response_key: s,
        messages_key: s,
        max_length: s,
        block_size: s,
        padding_side: s,
        on_bad_row: s,
        generate: { type: 'boolean', default: false },
        max_new_tokens: s,
        predictions: s,
        backend: s,
        threads: s,
        device: s,
        dtype: s,
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }),
  );
  if (values.help) {
    await writeOut(EVAL_USAGE);
    return 0;
  }
  if (!values.model) throw new Error('--model is required (see vera eval --help)');
  if (!values.data) throw new Error('--data is required (see vera eval --help)');
  const pick = <T extends string>(name: string, v: string | undefined, allowed: readonly T[], def: T): T => {
    if (v === undefined) return def;
    if (!allowed.includes(v as T)) throw new Error(`--${name} must be one of ${allowed.join(', ')}, got "${v}"`);
    return v as T;
  };
  const dtype = dtypeFlag(values.dtype);
  selectBackend(values.backend, values.threads, values.device);
  const backend = defaultBackend();

  const adapter = values.adapter ?? null;
  const configFile = join(values.model, 'config.json');
  const baseConfig = asConfigObject(readJsonFile(configFile), configFile);
  const head = adapter ? adapterHead(adapter) : null;
  const baseTask = resolveModelClass(baseConfig, undefined, configFile).task;
  const classes = head?.numLabels ?? labelCount(baseConfig);
  const inferred: Task =
    head !== null || baseTask === 'sequence-classification'
      ? classes === 1 || baseConfig['problem_type'] === 'regression'
        ? 'regression'
        : 'classification'
      : baseTask === 'causal-lm'
        ? 'causal-lm'
        : 'image-classification';
  const task = pick<Task>(
    'task',
    values.task,
    ['classification', 'regression', 'causal-lm', 'image-classification'],
    inferred,
  );
  const tokenizer = task === 'image-classification' ? null : Tokenizer.fromDir(values.model);
  const padId = padIdFor(baseConfig, tokenizer);
  const { model, peft } = loadTrained(values.model, adapter, { backend, padTokenId: padId, dtype });
  if (values.generate) {
    if (task !== 'causal-lm' || !tokenizer)
      throw new Error(
        `--generate needs a causal LM; ${values.model}${adapter ? ` with ${adapter}` : ''} is a ${model.architecture}`,
      );
    const examples = readGenerationExamples(values.data, {
      promptKey: values.prompt_key ?? 'prompt',
      responseKey: values.response_key ?? 'response',
    });
    const log = progressLogger(false);
    const scores = evaluateGeneration(model, tokenizer, examples, {
      padTokenId: padId,
      batchSize: values.batch_size ? intFlag('batch_size', values.batch_size, 1) : 16,
      maxNewTokens: values.max_new_tokens ? intFlag('max_new_tokens', values.max_new_tokens, 1) : 64,
      onBatch: (done) => log(`vera eval: ${done}/${examples.length} prompts`),
    });
    const { outputs, ...metrics } = scores;
    if (values.predictions)
      writeFileAtomic(
        values.predictions,
        examples
          .map((e, i) => `${JSON.stringify({ prompt: e.prompt, output: outputs[i], references: e.references })}\n`)
          .join(''),
      );
    const samples = examples.slice(0, 3).map((e, i) => ({ prompt: e.prompt, output: outputs[i] }));
    await writeOut(`${JSON.stringify({ ...metrics, samples })}\n`);
    return 0;
  }
  const labelNames = values.label_names?.split(',').map((x) => x.trim()) ?? configLabelNames(model.config);
  const positions = defaultMaxLength(baseConfig, null);
  const ds = loadDataset(
    {
      data_format: pick('data_format', values.data_format, DATA_FORMATS, 'auto'),
      text_column: values.text_column ?? 'text',
      pair_column: values.pair_column ?? null,
      label_column: values.label_column ?? 'label',
      prompt_key: values.prompt_key ?? 'prompt',
      response_key: values.response_key ?? 'response',
      messages_key: values.messages_key ?? 'messages',
      on_bad_row: pick('on_bad_row', values.on_bad_row, ['error', 'skip'] as const, 'error'),
    },
    task,
    values.data,
    values.labels_file ?? null,
    task === 'regression' || task === 'causal-lm' ? null : labelNames,
    tokenizer,
    {
      maxLength: values.max_length
        ? intFlag('max_length', values.max_length, 1)
        : defaultMaxLength(baseConfig, tokenizer),
      blockSize: values.block_size ? intFlag('block_size', values.block_size, 2) : Math.min(128, positions ?? 128),
    },
    task === 'image-classification' ? imageProcessor(values.model) : null,
  );
  const forward = peft ? peft.forward.bind(peft) : model.forward.bind(model);
  const numLabels = task === 'classification' || task === 'image-classification' ? labelCount(model.config) : NaN;
  const r = evaluate(forward, peft ?? model, ds, {
    task,
    batchSize: values.batch_size ? intFlag('batch_size', values.batch_size, 1) : 16,
    padId,
    paddingSide: pick('padding_side', values.padding_side, ['left', 'right'] as const, 'right'),
    backend,
    modelType: model.modelType,
    ...(Number.isFinite(numLabels) ? { numLabels } : {}),
  });
  await writeOut(`${JSON.stringify({ examples: r.examples, ...r.metrics })}\n`);
  return 0;
}

/** id2label's names in id order, unless they are transformers' LABEL_i placeholders. */
function configLabelNames(config: Record<string, unknown>): string[] | null {
  const map = config['id2label'];
  if (map === null || typeof map !== 'object') return null;
  const names = Object.entries(map as Record<string, unknown>)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([, v]) => String(v));
  return names.every((n, i) => n === `LABEL_${i}`) ? null : names;
}

/** num_labels, else the size of id2label (NaN for a model without labels). */
function labelCount(config: Record<string, unknown>): number {
  if (typeof config['num_labels'] === 'number') return config['num_labels'];
  const map = config['id2label'];
  return map !== null && typeof map === 'object' ? Object.keys(map).length : NaN;
}
