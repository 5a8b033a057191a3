// `vera demo`, the README's main job: fine-tune the shipped base model (assets/base-model: a 4-layer
// GPT-2 pretrained by this project on public-domain text) on an offline labelled task — the UCI
// sentiment sentences (Kotzias et al. 2015, CC BY 4.0) — with VeRA, LoRA and head-only training, and
// print one table: trainable parameters, adapter bytes, validation accuracy and training time.

import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UCI_SOURCES, type UciSource, uciSentimentDir } from '../data/builtin.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Generator } from '../tensor/random.js';
import { resolveConfig, type Method, type TrainConfig } from '../train/config.js';
import { train } from '../train/trainer.js';
import type { BackendName } from '../backends/registry.js';

const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../..');
export const BASE_MODEL = join(ROOT, 'assets/base-model');

export interface DemoOptions {
  methods: Method[];
  epochs: number;
  seed: number;
  out: string;
  backend?: BackendName | undefined;
  threads?: number | undefined;
  verbose?: boolean;
}

/** Per method: what the paper's comparison reports. */
interface Row {
  method: string;
  trainable: number;
  adapterBytes: number;
  accuracy: number;
  seconds: number;
}

/** Settings per method (learning rates as the paper's recipes scale them for a small model). */
function methodConfig(method: Method): Partial<TrainConfig> {
  const attention = ['attn.c_attn', 'attn.c_proj']; // the attention projections (not mlp.c_proj)
  // Seed-only VeRA adapters: the projections regenerate bit-exactly from projection_prng_key (PEFT too).
  if (method === 'vera')
    return { method, r: 256, target_modules: attention, save_projection: false, lr: 3e-2, head_lr: 5e-3 };
  if (method === 'lora') return { method, r: 16, lora_alpha: 32, target_modules: attention, lr: 2e-3, head_lr: 5e-3 };
  return { method, lr: 5e-3 };
}

/**
 * Writes the UCI sentences as train/validation CSVs: a seeded 90/10 split of all three sources, or with
 * `holdout` one source (IMDb, Yelp or Amazon) for validation and the other two for training.
 */
export function writeSentimentData(
  dir: string,
  seed: number,
  holdout?: UciSource,
): { train: string; validation: string; count: number } {
  const rows: [string, string, UciSource][] = [];
  for (const source of UCI_SOURCES) {
    const items = JSON.parse(readFileSync(join(uciSentimentDir(), `${source}.json`), 'utf8')) as {
      text?: string;
      class?: number;
    }[];
    for (const it of items) {
      if (typeof it.text === 'string' && it.text.trim() !== '' && (it.class === 0 || it.class === 1)) {
        rows.push([it.text.trim(), it.class === 1 ? 'positive' : 'negative', source]);
      }
    }
  }
  const g = new Generator(seed);
  for (let i = rows.length - 1; i > 0; i--) {
    const j = g.nextU32() % (i + 1);
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  const csv = (part: [string, string, UciSource][]) =>
    `text,label\n${part.map(([t, l]) => `"${t.replaceAll('"', '""')}",${l}\n`).join('')}`;
  const nValid = Math.round(rows.length / 10);
  const [validation, train] =
    holdout === undefined
      ? [rows.slice(0, nValid), rows.slice(nValid)]
      : [rows.filter((r) => r[2] === holdout), rows.filter((r) => r[2] !== holdout)];
  mkdirSync(dir, { recursive: true });
  const paths = { train: join(dir, 'train.csv'), validation: join(dir, 'validation.csv') };
  // Atomic: parallel experiment sweeps write the same files while others read them.
  writeFileAtomic(paths.validation, csv(validation));
  writeFileAtomic(paths.train, csv(train));
  return { ...paths, count: rows.length };
}

export async function runDemo(opts: DemoOptions): Promise<Row[]> {
  const log = (s: string) => process.stdout.write(`${s}\n`);
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
      task: 'classification',
      label_names: ['negative', 'positive'],
      max_length: 64,
      batch_size: 32,
      epochs: opts.epochs,
      lr_scheduler: 'linear',
      warmup_ratio: 0.06,
      weight_decay: 0,
      seed: opts.seed,
      bucket_by_length: true,
      metric: 'accuracy',
      output_dir: out,
      overwrite_output_dir: true,
      save_total_limit: 1,
      backend: opts.backend ?? null,
      threads: opts.threads ?? null,
      ...methodConfig(method),
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
