// Runs a Plan through the trainer API, one run per (row, seed), and caches each result as JSON under
// <out>/results/<key>.json, the key a hash of everything that defines the run: an interrupted sweep
// resumes where it stopped, identical rows of two sections train once, and the report needs no training.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { defaultBackend } from '../backends/registry.js';
import { writeSentimentData } from '../data/builtin.js';
import { parseDelimited } from '../data/csv.js';
import { writeFileAtomic } from '../io/atomic.js';
import { PACKAGE_ROOT } from '../io/package-root.js';
import { type TrainConfig, resolveConfig } from '../train/config.js';
import { readRecords } from '../train/log.js';
import { type TrainResult, train } from '../train/trainer.js';
import type { Plan, RunSpec, Section, TaskSpec } from './plan.js';
import type { BackendName } from '../backends/registry.js';

/** Where the machine that trained a run stands. */
export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  backend: string;
  threads: number | null;
  /** Runs trained at the same time (parallel shards; absent in the first records: 1). */
  parallel?: number;
}

/** One evaluation of a run (once per epoch and at the end). */
export interface EvalPoint {
  step: number;
  epoch: number;
  accuracy: number;
  loss: number;
}

/** The cached result of one run: what defined it and what it gave. Missing numbers are null. */
export interface RunRecord {
  version: 1;
  key: string;
  task: string;
  runId: string;
  label: string;
  method: string;
  options: Partial<TrainConfig>;
  epochs: number;
  seed: number;
  /** Training and validation examples (absent in the first records of the first sweep). */
  data?: { train: number; validation: number };
  status: TrainResult['status'];
  steps: number;
  /** Best validation accuracy over the evaluations (the checkpoint the trainer keeps in best/). */
  bestAccuracy: number | null;
  bestStep: number | null;
  /** Validation accuracy and loss after the last step. */
  finalAccuracy: number | null;
  finalLoss: number | null;
  evals: EvalPoint[];
  trainable: number;
  /** Bytes of the saved adapter file, or of the trained weights as float32 (head-only, full). */
  adapterBytes: number;
  /** Wall-clock seconds of train() (data loading, training, evaluations and checkpoints). */
  seconds: number;
  /** 1-minute load average when the run started (other work on the machine slows it). */
  loadBefore: number;
  machine: Machine;
  finishedAt: string;
}

export interface SweepOptions {
  /** Output folder: data/, results/ (the cache), work/ (a run's checkpoints while it trains). */
  out: string;
  /** Sections to run (default: all). */
  sections?: string[];
  threads?: number | null;
  backend?: BackendName | null;
  /** Keep each run's output directory (default: removed once its result is cached). */
  keepWork?: boolean;
  /** Progress lines (default: stdout). */
  log?: (line: string) => void;
  /** Trainer output (default: discarded). */
  verbose?: boolean;
  /** Only every count-th job of the plan, from the index-th (0-based): one of `count` parallel sweeps. */
  shard?: { index: number; count: number };
}

/** Parses "i/n" (1-based i, as written on the command line) into a 0-based shard. */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text);
  const [i, n] = m ? [Number(m[1]), Number(m[2])] : [0, 0];
  if (!m || n < 1 || i < 1 || i > n) throw new Error(`--shard must be i/n with 1 ≤ i ≤ n, got ${JSON.stringify(text)}`);
  return { index: i - 1, count: n };
}

/** One unit of work: a row of a section trained with one seed. */
export interface Job {
  run: RunSpec;
  seed: number;
  key: string;
  /** The task of the job's section. */
  task: TaskSpec;
}

/** A section's task: its own, else the plan's. */
export function taskOf(plan: Plan, section: Section): TaskSpec {
  return section.task ?? plan.task;
}

/** Where a task's CSVs go under `out`: data/ for the plan's task (as the documented commands say), data/<id>/ else. */
export function dataDir(out: string, plan: Plan, task: TaskSpec): string {
  return task.id === plan.task.id ? join(out, 'data') : join(out, 'data', task.id);
}

const stable = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : x,
  );

/**
 * Revision of the engine's training arithmetic, part of every run's key so that results of different
 * arithmetic never mix in one table: 2 = attention-probability dropout as transformers applies it (the
 * results before it did not apply `attn_pdrop`).
 */
export const ENGINE_REVISION = 2;

/** The cache key of a run: a hash of the task (model, data, shared settings), method, options, epochs, seed. */
export function runKey(task: TaskSpec, run: RunSpec, epochs: number, seed: number): string {
  const what = { task: task.id, model: task.model, data: task.data, common: task.common, engine: ENGINE_REVISION };
  const how = { method: run.method, options: run.options, epochs, seed };
  return createHash('sha256').update(stable({ what, how })).digest('hex').slice(0, 16);
}

/** Every job of the chosen sections, seed by seed (a sweep cut short still covers each row), without repeats. */
export function jobsOf(plan: Plan, sections?: readonly string[]): Job[] {
  const chosen = plan.sections.filter((s) => !sections || sections.includes(s.id));
  const unknown = (sections ?? []).filter((id) => !plan.sections.some((s) => s.id === id));
  if (unknown.length > 0)
    throw new Error(`unknown section ${unknown.join(', ')} (sections: ${plan.sections.map((s) => s.id).join(', ')})`);
  const jobs: Job[] = [];
  const seen = new Set<string>();
  for (const seed of plan.seeds)
    for (const section of chosen)
      for (const run of section.runs) {
        const task = taskOf(plan, section);
        const key = runKey(task, run, plan.epochs, seed);
        if (seen.has(key)) continue;
        seen.add(key);
        jobs.push({ run, seed, key, task });
      }
  return jobs;
}

/** Paths of a task's CSVs under `dir` (as written by prepareData). */
export function dataPaths(dir: string): { train: string; validation: string } {
  return { train: join(dir, 'train.csv'), validation: join(dir, 'validation.csv') };
}

/** Writes the task's train/validation CSVs (the demo's split, cut to the spec's limits). */
export function prepareData(task: TaskSpec, dir: string): { train: string; validation: string; counts: number[] } {
  const paths = writeSentimentData(dir, task.data.splitSeed, task.data.holdout);
  const counts: number[] = [];
  for (const [file, limit] of [
    [paths.train, task.data.trainLimit],
    [paths.validation, task.data.validationLimit],
  ] as const) {
    const records = parseDelimited(readFileSync(file, 'utf8'), ',');
    const rows = records.slice(1, limit === undefined ? undefined : limit + 1);
    if (limit !== undefined) {
      const quote = (f: string) => (/[",\n\r]/.test(f) ? `"${f.replaceAll('"', '""')}"` : f);
      const lines = [records[0]!, ...rows].map((r) => r.fields.map(quote).join(','));
      writeFileAtomic(file, `${lines.join('\n')}\n`);
    }
    counts.push(rows.length);
  }
  return { ...dataPaths(dir), counts };
}

/**
 * What the seed sets besides --seed: VeRA's projection_prng_key, so that the seeds vary the shared
 * projections too (the trainer's default is PEFT's fixed 0, which lets adapters share one model).
 */
function seedOptions(run: RunSpec, seed: number | string): Record<string, unknown> {
  return run.method === 'vera' ? { projection_prng_key: seed } : {};
}

/** Writes the data of every task of the plan (the plan's own first) under `out`. */
export function prepareAll(plan: Plan, out: string): ReturnType<typeof prepareData>[] {
  const tasks = new Map([plan.task, ...plan.sections.map((s) => taskOf(plan, s))].map((t) => [t.id, t]));
  return [...tasks.values()].map((t) => prepareData(t, dataDir(out, plan, t)));
}

/** The run's full configuration (paths absolute). */
export function runConfig(
  plan: Plan,
  run: RunSpec,
  seed: number,
  paths: { train: string; validation: string; output: string },
  opts: Pick<SweepOptions, 'threads' | 'backend'> = {},
  task: TaskSpec = plan.task,
): TrainConfig {
  return resolveConfig({
    model: resolve(PACKAGE_ROOT, task.model),
    train_file: paths.train,
    validation_file: paths.validation,
    output_dir: paths.output,
    overwrite_output_dir: true,
    ...task.common,
    method: run.method,
    ...seedOptions(run, seed),
    ...run.options,
    epochs: plan.epochs,
    seed,
    threads: opts.threads ?? null,
    backend: opts.backend ?? null,
  });
}

/** The `vera train` command line of a run (paths relative to the repository root; the seed as given). */
export function trainCommand(
  plan: Plan,
  run: RunSpec,
  seed: number | string,
  out = 'runs/experiments',
  task: TaskSpec = plan.task,
): string {
  const data = dataDir(out, plan, task);
  const fields: [string, unknown][] = [
    ['model', task.model],
    ['train_file', `${data}/train.csv`],
    ['validation_file', `${data}/validation.csv`],
    ...Object.entries(task.common),
    ['method', run.method],
    ...Object.entries({ ...seedOptions(run, seed), ...run.options }),
    ['epochs', plan.epochs],
    ['seed', seed],
    ['output_dir', `${out}/work/${run.id}-s${seed}`],
    ['overwrite_output_dir', true],
  ];
  const value = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));
  return ['node bin/vera.js train', ...fields.map(([k, v]) => `--${k} ${value(v)}`)].join(' ');
}

export function cacheFile(out: string, key: string): string {
  return join(out, 'results', `${key}.json`);
}

/** Every cached result under `out`, by key (files that do not parse are skipped). */
export function loadResults(out: string): Map<string, RunRecord> {
  const dir = join(out, 'results');
  const found = new Map<string, RunRecord>();
  if (!existsSync(dir)) return found;
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.json'))) {
    try {
      const r = JSON.parse(readFileSync(join(dir, name), 'utf8')) as RunRecord;
      if (r.version === 1 && typeof r.key === 'string') found.set(r.key, r);
    } catch {
      // A file cut short: its run trains again.
    }
  }
  return found;
}

export function machine(threads: number | null, parallel = 1): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${platform()} ${release()}`,
    node: process.version,
    backend: defaultBackend().name,
    threads,
    parallel,
  };
}

/** Data rows of a CSV (its records less the header). */
function rowCount(file: string): number {
  return parseDelimited(readFileSync(file, 'utf8'), ',').length - 1;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Trains one job and caches its record (atomically: a killed sweep leaves no half-written result). */
export async function runJob(plan: Plan, job: Job, opts: SweepOptions): Promise<RunRecord> {
  const data = dataPaths(dataDir(opts.out, plan, job.task));
  const output = join(opts.out, 'work', job.key);
  const config = runConfig(plan, job.run, job.seed, { ...data, output }, opts, job.task);
  const loadBefore = loadavg()[0]!;
  const started = performance.now();
  const sink = { write: (s: string) => (opts.verbose ? process.stderr.write(s) : true) };
  const result = await train({ config, sink });
  const seconds = (performance.now() - started) / 1000;
  const evals = readRecords(join(output, 'metrics.jsonl'))
    .filter((r) => r.type === 'eval')
    .map((r) => ({
      step: r.step,
      epoch: Number(r['epoch']),
      accuracy: Number(r['eval_accuracy']),
      loss: Number(r['eval_loss']),
    }));
  const adapter = result.output ? join(result.output, 'adapter_model.safetensors') : '';
  const record: RunRecord = {
    version: 1,
    key: job.key,
    task: job.task.id,
    runId: job.run.id,
    label: job.run.label,
    method: job.run.method,
    options: job.run.options,
    epochs: plan.epochs,
    seed: job.seed,
    data: { train: rowCount(data.train), validation: rowCount(data.validation) },
    status: result.status,
    steps: result.step,
    bestAccuracy: num(result.best?.value),
    bestStep: result.best?.step ?? null,
    finalAccuracy: num(result.lastEval?.['eval_accuracy']),
    finalLoss: num(result.lastEval?.['eval_loss']),
    evals,
    trainable: result.trainableParameters,
    adapterBytes: adapter && existsSync(adapter) ? statSync(adapter).size : result.trainableParameters * 4,
    seconds,
    loadBefore,
    machine: machine(config.threads, opts.shard?.count ?? 1),
    finishedAt: new Date().toISOString(),
  };
  mkdirSync(join(opts.out, 'results'), { recursive: true });
  writeFileAtomic(cacheFile(opts.out, job.key), `${JSON.stringify(record, null, 2)}\n`);
  if (!opts.keepWork) rmSync(output, { recursive: true, force: true });
  return record;
}

/** Runs every job not yet cached; returns the records of all the chosen jobs. */
export async function sweep(plan: Plan, opts: SweepOptions): Promise<RunRecord[]> {
  const log = opts.log ?? ((s: string) => void process.stdout.write(`${s}\n`));
  const shard = opts.shard ?? { index: 0, count: 1 };
  // Sharded by position in the full job list, so that parallel sweeps split the same list the same way.
  const jobs = jobsOf(plan, opts.sections).filter((_, i) => i % shard.count === shard.index);
  const cached = loadResults(opts.out);
  const todo = jobs.filter((j) => !cached.has(j.key));
  const [{ counts }] = prepareAll(plan, opts.out);
  const of = shard.count > 1 ? ` (shard ${shard.index + 1}/${shard.count})` : '';
  log(
    `experiments${of}: ${jobs.length} runs (${jobs.length - todo.length} cached, ${todo.length} to train); data: ${counts[0]} training, ${counts[1]} validation sentences`,
  );
  const t0 = performance.now();
  for (const [i, job] of todo.entries()) {
    const r = await runJob(plan, job, opts);
    cached.set(job.key, r);
    const spent = (performance.now() - t0) / 1000;
    const eta = (spent / (i + 1)) * (todo.length - i - 1);
    const acc = r.bestAccuracy === null ? r.status : `${(r.bestAccuracy * 100).toFixed(1)}%`;
    log(
      `[${i + 1}/${todo.length}] ${job.run.id} seed ${job.seed}: ${acc} in ${r.seconds.toFixed(0)} s (load ${r.loadBefore.toFixed(1)}); about ${Math.round(eta / 60)} min left`,
    );
  }
  return jobs.map((j) => cached.get(j.key)!);
}
