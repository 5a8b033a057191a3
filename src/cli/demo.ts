// `vera demo`, the README's main job: fine-tune the shipped base model (assets/base-model: a 4-layer
// GPT-2 pretrained by this project on public-domain text) on an offline labelled task — the UCI
// sentiment sentences (Kotzias et al. 2015, CC BY 4.0) — with VeRA, LoRA and head-only training, and
// print one table: trainable parameters, adapter bytes, validation accuracy and training time.

import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeSentimentData } from '../data/builtin.js';
import { BASE_MODEL, DEMO_COMMON, demoMethod } from '../experiments/demo-recipe.js';
import { resolveConfig, type Method } from '../train/config.js';
import { train } from '../train/trainer.js';
import { BACKEND_NAMES, type BackendName, DEVICE_NAMES, type DeviceName } from '../backends/registry.js';
import {
  backendFlags,
  backendHelp,
  deviceHelp,
  dtypeFlag,
  dtypeHelp,
  intFlag,
  parseArgs,
  parseCommandArgs,
  selectBackend,
  threadsHelp,
  writeOut,
} from './common.js';

export const DEMO_USAGE = `Usage: vera demo [--methods vera,lora,head] [--epochs N] [--seed N] [--out DIR] [--dtype f32|bf16] [--verbose]
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
${dtypeHelp(18)}${backendHelp(18)}${deviceHelp(18)}${threadsHelp(18)}`;

/** `vera demo ARGS`: parses the flags and runs the demo; returns the exit status. */
export async function demoCommand(args: string[]): Promise<number> {
  const s = { type: 'string' } as const;
  const { values } = parseCommandArgs('demo', () =>
    parseArgs({
      args,
      options: {
        methods: s,
        epochs: s,
        seed: s,
        out: s,
        verbose: { type: 'boolean', default: false },
        backend: s,
        device: s,
        threads: s,
        dtype: s,
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }),
  );
  if (values.help) {
    await writeOut(DEMO_USAGE);
    return 0;
  }
  const methods = (values.methods ?? 'vera,lora,head').split(',').map((m) => m.trim());
  for (const m of methods)
    if (!['vera', 'lora', 'head', 'full'].includes(m))
      throw new Error(`--methods: unknown method "${m}" (vera, lora, head, full)`);
  const named = backendFlags(values.backend, values.device);
  const threads = values.threads === undefined ? undefined : intFlag('threads', values.threads, 1);
  selectBackend(named.backend, undefined, named.device); // a backend that cannot load fails before any run
  await runDemo({
    methods: methods as Method[],
    epochs: values.epochs === undefined ? 4 : intFlag('epochs', values.epochs, 0),
    seed: values.seed === undefined ? 0 : intFlag('seed', values.seed, 0),
    out: values.out ?? 'runs/demo',
    verbose: values.verbose,
    backend: named.backend,
    device: named.device,
    threads,
    dtype: dtypeFlag(values.dtype),
  });
  return 0;
}

export interface DemoOptions {
  methods: Method[];
  epochs: number;
  seed: number;
  out: string;
  backend?: BackendName | undefined;
  /** cpu (native when built, else js) or cuda; must agree with `backend` when both are given. */
  device?: DeviceName | undefined;
  threads?: number | undefined;
  verbose?: boolean;
  /** bf16: the frozen base stored in bf16, its GEMMs computed in bf16 (full fine-tuning refuses it). */
  dtype?: 'f32' | 'bf16';
}

/** Per method: what the paper's comparison reports. */
interface Row {
  method: string;
  trainable: number;
  adapterBytes: number;
  accuracy: number;
  seconds: number;
}

export async function runDemo(opts: DemoOptions): Promise<Row[]> {
  const log = (s: string) => void process.stdout.write(`${s}\n`); // flushed before exit (exitFlushed)
  const data = writeSentimentData(join(opts.out, 'data'), opts.seed);
  log(
    `vera demo: fine-tuning a 4.2M-parameter GPT-2 pretrained by vera-ts (assets/base-model) on ${data.count} UCI sentiment sentences`,
  );
  log(
    `methods: ${opts.methods.join(', ')}; ${opts.epochs} epochs each; validation: ${Math.round(data.count / 10)} held-out sentences`,
  );
  const rows: Row[] = [];
  for (const method of opts.methods) {
    const out = join(opts.out, method);
    const config = resolveConfig({
      model: BASE_MODEL,
      train_file: data.train,
      validation_file: data.validation,
      ...DEMO_COMMON,
      epochs: opts.epochs,
      seed: opts.seed,
      output_dir: out,
      overwrite_output_dir: true,
      backend: opts.backend ?? null,
      device: opts.device ?? null,
      threads: opts.threads ?? null,
      ...demoMethod(method),
      ...(opts.dtype === 'bf16' ? { dtype: 'bf16' as const } : {}),
    });
    const started = performance.now();
    const quiet = { write: (s: string) => (opts.verbose ? process.stderr.write(s) : true) };
    const result = await train({ config, sink: quiet });
    const seconds = (performance.now() - started) / 1000;
    if (result.status !== 'completed' && result.status !== 'early-stopped')
      throw new Error(`${method} run ${result.status}: ${result.message}`);
    const trainable = result.trainableParameters;
    const accuracy = result.best?.value ?? result.lastEval?.['eval_accuracy'] ?? NaN;
    const row = { method, trainable, adapterBytes: savedBytes(result.output, trainable), accuracy, seconds };
    rows.push(row);
    log(
      `  ${method.padEnd(5)} done in ${seconds.toFixed(0)} s: validation accuracy ${(row.accuracy * 100).toFixed(1)}%`,
    );
  }
  log('');
  log(table(rows));
  log('');
  log(
    `Adapters (PEFT format) and logs are in ${opts.out}/<method>/. VeRA trains one b (out) and one d (r) vector per adapted layer plus the head.`,
  );
  const tried = opts.methods.find((m) => m !== 'head');
  if (tried)
    log(
      `Try it: node bin/vera.js classify --model assets/base-model --adapter ${join(opts.out, tried, 'adapter')} --label_names negative,positive --text "What a great movie, I loved it"`,
    );
  return rows;
}

/** Bytes a run's result takes on disk: the adapter file, or the trained head's values (head-only). */
function savedBytes(output: string | null, trainable: number): number {
  const adapter = output ? join(output, 'adapter_model.safetensors') : '';
  return adapter && existsSync(adapter) ? statSync(adapter).size : trainable * 4;
}

function table(rows: Row[]): string {
  const head = ['method', 'trainable params', 'adapter bytes', 'val. accuracy', 'train time'];
  const body = rows.map((r) => [
    r.method,
    r.trainable.toLocaleString('en-US'),
    r.adapterBytes.toLocaleString('en-US'),
    `${(r.accuracy * 100).toFixed(1)}%`,
    `${r.seconds.toFixed(0)} s`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(head), rule, ...body.map(line)].join('\n');
}
