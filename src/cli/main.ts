// `vera` command-line entry: dispatches to one file per subcommand. Errors print one line (the
// message names the op, file or key at fault) and exit with status 1; --help works everywhere.

import { parseArgs } from 'node:util';
import { BACKEND_NAMES, DEVICE_NAMES } from '../backends/registry.js';
import type { Method } from '../train/config.js';
import { backendFlags, backendHelp, deviceHelp, dtypeFlag, dtypeHelp, selectBackend, threadsHelp } from './common.js';
import { runDemo } from './demo.js';
import { LOGITS_USAGE, logitsJson } from './logits.js';

const USAGE = `Usage: vera <command> [options]

Commands:
  demo      Fine-tune the shipped base model on UCI sentiment with VeRA, LoRA and head-only; print a table
  logits    Print the logits of one example (a model, optionally with a PEFT adapter) as JSON
  generate  Generate text with a causal LM (optionally with a PEFT adapter), streamed to stdout
  classify  Classify a text or an image, printing labels with probabilities
  train     Fine-tune a model (VeRA, LoRA, head or full) with checkpoints and --resume
  eval      Evaluate a model (optionally with a PEFT adapter) on labelled data, printing metrics as JSON
  merge     Merge a PEFT adapter into its base model and save a plain model directory
  inspect   Describe an adapter, model, checkpoint or training run directory
  serve     Serve many adapters on one base model over HTTP, mixed-adapter batches
  help      Show this help

Global options:
${backendHelp(28)}${deviceHelp(28)}${threadsHelp(28)}  -h, --help                Show help for a command
`;

const DEMO_USAGE = `Usage: vera demo [--methods vera,lora,head] [--epochs N] [--seed N] [--out DIR] [--dtype f32|bf16] [--verbose]
                 [--backend ${BACKEND_NAMES.join('|')}] [--device ${DEVICE_NAMES.join('|')}] [--threads N]

Fine-tunes the base model that ships with vera-ts (assets/base-model: a 4-layer GPT-2 pretrained by
this project on public-domain text) on the UCI sentiment sentences (npm package sentiment, CC BY 4.0)
with each method, then prints trainable parameters, adapter bytes, validation accuracy and time.
About a minute on 2 cores (AVX-512).

Options:
  --methods LIST  Methods to compare (default vera,lora,head; also full)
  --epochs N      Epochs per method (default 4)
  --seed N        Seed of data split, initialisation and order (default 0)
  --out DIR       Where data, adapters and logs go (default runs/demo)
  --verbose       Show each run's progress and evaluations on stderr
${dtypeHelp(18)}${deviceHelp(18)}`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === 'demo') {
    const { values } = parseArgs({
      args: rest,
      options: {
        methods: { type: 'string' },
        epochs: { type: 'string' },
        seed: { type: 'string' },
        out: { type: 'string' },
        verbose: { type: 'boolean', default: false },
        backend: { type: 'string' },
        device: { type: 'string' },
        threads: { type: 'string' },
        dtype: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      process.stdout.write(DEMO_USAGE);
      return 0;
    }
    const methods = (values.methods ?? 'vera,lora,head').split(',').map((m) => m.trim());
    for (const m of methods)
      if (!['vera', 'lora', 'head', 'full'].includes(m))
        throw new Error(`--methods: unknown method "${m}" (vera, lora, head, full)`);
    const named = backendFlags(values.backend, values.device);
    selectBackend(named.backend, undefined, named.device); // a backend that cannot load fails before any run
    await runDemo({
      methods: methods as Method[],
      epochs: intOption('epochs', values.epochs, 4),
      seed: intOption('seed', values.seed, 0),
      out: values.out ?? 'runs/demo',
      verbose: values.verbose,
      backend: named.backend,
      device: named.device,
      threads: values.threads === undefined ? undefined : intOption('threads', values.threads, 1),
      dtype: dtypeFlag(values.dtype),
    });
    return 0;
  }
  if (command === 'logits') {
    const { values } = parseArgs({
      args: rest,
      options: {
        model: { type: 'string' },
        adapter: { type: 'string' },
        merge: { type: 'boolean', default: false },
        ids: { type: 'string' },
        pixels: { type: 'string' },
        dtype: { type: 'string' },
        backend: { type: 'string' },
        device: { type: 'string' },
        threads: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
    if (values.help) {
      process.stdout.write(LOGITS_USAGE);
      return 0;
    }
    if (!values.model) throw new Error('--model is required (see vera logits --help)');
    const dtype = dtypeFlag(values.dtype);
    selectBackend(values.backend, values.threads, values.device);
    process.stdout.write(
      `${logitsJson({ model: values.model, adapter: values.adapter, merge: values.merge, ids: values.ids, pixels: values.pixels, dtype })}\n`,
    );
    return 0;
  }
  // Loaded on demand: tokenizers, chat templates and image decoding stay out of the other commands' start-up.
  if (command === 'generate') return (await import('./generate.js')).generateCommand(rest);
  if (command === 'classify') return (await import('./classify.js')).classifyCommand(rest);
  if (command === 'train') return (await import('./train.js')).trainCommand(rest);
  if (command === 'eval') return (await import('./eval.js')).evalCommand(rest);
  if (command === 'merge') return (await import('./merge.js')).mergeCommand(rest);
  if (command === 'inspect') return (await import('./inspect.js')).inspectCommand(rest);
  if (command === 'serve') return (await import('./serve.js')).serveCommand(rest);
  process.stderr.write(`vera: unknown command "${command}"\n\n${USAGE}`);
  return 2;
}

function intOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`vera: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env['VERA_DEBUG']) console.error(e);
    process.exit(1);
  },
);
