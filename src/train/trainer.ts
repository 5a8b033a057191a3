// The training loop: each step takes gradient_accumulation_steps micro-batches, forward + backward, clip,
// schedule, AdamW; then logging, evaluation (best checkpoint, early stopping) and atomic checkpoints from
// which --resume continues bit for bit (weights, optimizer moments, data position, dropout stream, counters).
// A step reads nothing back from the backend: losses and gradient norms wait in a StepLog until a read
// point (a logging step, or before an evaluation or a checkpoint), where the divergence check runs too.

import { cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { backward } from '../autograd/backward.js';
import { type Example, type SamplerState, collate } from '../data/index.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Checkpoint } from '../io/checkpoint.js';
import { SafetensorsReader, writeSafetensors } from '../io/safetensors.js';
import * as ops from '../ops/index.js';
import { clipGradNorm, gradNorm } from '../optim/clip.js';
import { dropoutStream, rngState, setRngState } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  CONFIG_FILE,
  OPTIMIZER_FILE,
  STATE_FILE,
  type TrainerState,
  newestCheckpoint,
  readCheckpointConfig,
  readTrainerState,
  recoverDirs,
  removeDir,
  saveCheckpoint,
  sleepMs,
  writeDirAtomic,
} from './checkpoint.js';
import { ConfigError, RUN_DEFINING, type TrainConfig, greaterIsBetter } from './config.js';
import { evaluate } from './evaluate.js';
import { lossInputs, lossItems, summedLoss } from './heads.js';
import { evaluateGeneration } from './generation-eval.js';
import { lockOutputDir } from './lock.js';
import { MetricsLog } from './log.js';
import { renderPlot } from './plot.js';
import { Progress, type Sink, statusText } from './progress.js';
import { lrFactor, warmupSteps } from './schedule.js';
import { type StepRecord, StepLog } from './step-log.js';
import { copyModelAssets } from '../models/assets.js';
import { vocabSizeOf } from '../models/text-inputs.js';
import { type Run, setUp } from './setup.js';
import { type Collective, allReduceViewSum, broadcastNumber, shardRange } from './distributed/collective.js';
import { processGroup } from './distributed/world.js';

export interface TrainOptions {
  config: TrainConfig;
  /** Where progress and log lines go (default: stderr; a progress bar when it is a terminal). */
  sink?: Sink;
  /** Aborting stops the run after the current step, with a checkpoint to resume from (Ctrl-C). */
  signal?: AbortSignal;
  /** Called after every optimizer step, before its evaluation and checkpoint (tests inject faults here). */
  onStep?: (step: number, run: Run) => void;
  /** Pause between the files of a checkpoint, in ms (lets tests kill a run in the middle of one). */
  checkpointDelayMs?: number;
  /**
   * The data-parallel process group this process trains in (default: the environment's, processGroup():
   * MPI_COMM_WORLD under mpirun, else this process alone). Every rank runs train() with the same config;
   * each global batch is split among them, and rank 0 writes the output directory.
   */
  collective?: Collective;
}

export interface TrainResult {
  status: 'completed' | 'early-stopped' | 'interrupted' | 'diverged';
  /** Steps completed (for a diverged run: the last step before the one that diverged). */
  step: number;
  totalSteps: number;
  best: TrainerState['best'];
  /** The final adapter (vera, lora) or model (head, full) directory; null when the run stopped early. */
  output: string | null;
  /** The newest checkpoint directory. */
  checkpoint: string | null;
  /** The last evaluation's metrics (eval_loss, eval_accuracy, …). */
  lastEval: Record<string, number> | null;
  /** Number of trained values (adapter vectors/matrices and any head trained in full). */
  trainableParameters: number;
  message: string;
}

/** Trains one run in its output directory, which it holds locked (lock.ts) until it returns. */
export async function train(opts: TrainOptions): Promise<TrainResult> {
  const group = opts.collective ?? processGroup();
  const cleanups: (() => void)[] = [];
  let release = () => {};
  try {
    // Rank 0 alone writes the output directory, so it alone holds the lock.
    if (group.rank === 0) release = lockOutputDir(opts.config.output_dir);
    return await trainLocked(opts, group, (fn) => cleanups.push(fn));
  } catch (e) {
    // The other ranks would wait in their next collective for ever: a failing rank ends the job.
    if (group.size > 1)
      group.abort(1, `vera: rank ${group.rank} of ${group.size} failed, stopping every rank: ${(e as Error).message}`);
    throw e;
  } finally {
    for (const fn of cleanups.reverse()) fn();
    release();
  }
}

async function trainLocked(
  opts: TrainOptions,
  group: Collective,
  atExit: (fn: () => void) => void,
): Promise<TrainResult> {
  const cfg = opts.config;
  const out = cfg.output_dir;
  const lead = group.rank === 0;
  const ranks = group.size;
  const progress = new Progress(lead ? (opts.sink ?? process.stderr) : { write: () => true });
  const say = (s: string) => progress.line(s);

  // ---- the output directory (rank 0's): resume, start over, or refuse to mix two runs
  let resumeStep = -1;
  if (lead) {
    recoverDirs(out);
    resumeStep = cfg.resume ? (newestCheckpoint(out)?.step ?? -1) : -1;
    if (!cfg.resume && newestCheckpoint(out)) {
      if (!cfg.overwrite_output_dir)
        throw new ConfigError(
          `${out} already holds checkpoints: pass --resume to continue that run or --overwrite_output_dir to start over`,
        );
      for (const name of ['adapter', 'model', 'best']) removeDir(join(out, name));
      for (const c of listOld(out)) removeDir(c);
    }
    mkdirSync(out, { recursive: true });
  }
  // Every rank resumes from the checkpoint rank 0 found.
  resumeStep = broadcastNumber(group, resumeStep);
  const resumeFrom = resumeStep >= 0 ? { step: resumeStep, dir: join(out, `checkpoint-${resumeStep}`) } : null;
  if (resumeFrom) checkSameRun(cfg, resumeFrom.dir);

  // ---- model, data, optimizer (identical for fresh and resumed runs)
  const run = setUp(cfg, (m) => say(`warning: ${m}`));
  const { model, peft, optimizer, sampler, totalSteps } = run;
  const accum = cfg.gradient_accumulation_steps;
  const schedule = {
    name: cfg.lr_scheduler,
    warmupSteps: warmupSteps(cfg.warmup_steps, cfg.warmup_ratio, totalSteps),
    totalSteps,
  };
  const evalEvery = cfg.eval_steps > 0 ? cfg.eval_steps : run.stepsPerEpoch;
  const saveEvery = cfg.save_steps > 0 ? cfg.save_steps : evalEvery;
  const trainable = run.params.map(([, p]) => p);
  // Room for the steps between two read points (every logging step is one); a full log forces a read.
  const stepLog = new StepLog(run.backend, Math.min(cfg.logging_steps, 1024), accum);
  atExit(() => stepLog.dispose());

  let st: TrainerState = {
    version: 1,
    step: 0,
    totalSteps,
    sampler: sampler.start(),
    rng: rngState(),
    optimizer: { step: 0, groups: [] },
    parameters: run.params.map(([n]) => n),
    best: null,
    badEvals: 0,
    examplesSeen: 0,
    tokensSeen: 0,
    trainSeconds: 0,
    labelNames: run.labelNames,
    logWindow: { lossSum: 0, steps: 0 },
  };
  if (resumeFrom) {
    st = restore(run, resumeFrom.dir);
    st.totalSteps = totalSteps;
  }
  const arena = optimizer.arena!; // setUp refuses a run with nothing to train
  // Every rank starts from rank 0's weights (they are built from the same seed; this makes sure).
  if (ranks > 1) {
    const all = arena.span('param', 0, arena.params.length, 'broadcast');
    const host = run.backend.download(all);
    if (!(host instanceof Float32Array) && !(host instanceof Float64Array))
      throw new Error(`[train] data-parallel training needs f32 or f64 trainable weights, not ${all.dtype}`);
    group.broadcast(host, 0);
    run.backend.upload(all.buf, all.dtype, all.offset, host);
  }
  const log: Pick<MetricsLog, 'records' | 'append'> = lead
    ? new MetricsLog(join(out, 'metrics.jsonl'), resumeFrom ? st.step : null)
    : { records: [], append: () => {} };
  say(describeRun(run, resumeFrom ? st.step : null, group));
  if (resumeFrom) log.append({ type: 'event', step: st.step, event: 'resume', checkpoint: resumeFrom.dir });

  const t0 = performance.now();
  const secondsBefore = st.trainSeconds;
  const stepAtStart = st.step;
  const tokensAtStart = st.tokensSeen;
  let lastEval: Record<string, number> | null = null;
  let lastCheckpoint = resumeFrom?.dir ?? null;
  /** The newest step read back from the step log (its loss is what the progress bar shows). */
  let lastRead: StepRecord | null = null;
  let stopped: TrainResult['status'] | null = cfg.patience > 0 && st.badEvals >= cfg.patience ? 'early-stopped' : null;

  const elapsed = () => secondsBefore + (performance.now() - t0) / 1000;
  const rate = () => {
    const secs = (performance.now() - t0) / 1000;
    return {
      steps: secs > 0 ? (st.step - stepAtStart) / secs : 0,
      tokens: secs > 0 ? (st.tokensSeen - tokensAtStart) / secs : 0,
    };
  };
  const epochOf = (s: SamplerState) => s.epoch + s.position / sampler.batchesPerEpoch;

  const writeTrainable = (dir: string) => {
    if (!lead) return;
    if (peft) peft.savePretrained(dir);
    else {
      model.savePretrained(dir);
      copyModelAssets(run.assetsDir, dir);
    }
  };
  const checkpoint = () => {
    st.rng = rngState();
    st.trainSeconds = elapsed();
    const sd = optimizer.stateDict();
    st.optimizer = { step: sd.step, groups: sd.groups };
    const pause = () => sleepMs(opts.checkpointDelayMs ?? 0);
    if (!lead) {
      lastCheckpoint = join(out, `checkpoint-${st.step}`);
      return;
    }
    lastCheckpoint = saveCheckpoint(out, st.step, cfg.save_total_limit, (tmp) => {
      writeTrainable(tmp);
      pause();
      const moments = new Map<string, Tensor>();
      sd.state.forEach((s, i) => {
        if (!s) return;
        moments.set(`exp_avg/${st.parameters[i]}`, s.m);
        moments.set(`exp_avg_sq/${st.parameters[i]}`, s.v);
      });
      writeSafetensors(join(tmp, OPTIMIZER_FILE), moments, { format: 'pt' });
      pause();
      writeFileAtomic(join(tmp, CONFIG_FILE), `${JSON.stringify(cfg, null, 2)}\n`);
      pause();
      // Last: a directory with trainer_state.json is complete (it is only renamed into place afterwards anyway).
      writeFileAtomic(join(tmp, STATE_FILE), `${JSON.stringify(st, null, 2)}\n`);
    });
  };
  const plot = () =>
    lead &&
    writeFileAtomic(
      join(out, 'plot.svg'),
      renderPlot(log.records, { metric: run.metric, title: `${cfg.method} · ${cfg.model} · ${run.task}` }),
    );

  /** The next step's micro-batches: up to gradient_accumulation_steps batches, never past an epoch's end. */
  function nextMicroBatches(from: SamplerState): { batches: Example[][]; after: SamplerState } {
    const batches: Example[][] = [];
    let after = from;
    for (const [indices, next] of sampler.iterate(from)) {
      batches.push(indices.map((i) => run.train.get(i)));
      after = next;
      if (batches.length === accum || next.position === 0) break;
    }
    return { batches, after };
  }

  /**
   * Forward and backward of each micro-batch. Each summed loss is divided by the item count of the whole
   * step (examples, or target tokens), so the gradients are those of one batch of all of them. The
   * summed losses stay on the backend, in the step log. With several ranks, over the same global item
   * count: when the rank count divides the step's micro-batches, rank r computes its contiguous share of
   * whole micro-batches (each exactly as one process computes it); otherwise each computes its shard of
   * every micro-batch (shardRange). reduceStep() then sums the gradients.
   */
  const vocabSize = vocabSizeOf(model.config);
  function forwardBackward(batches: Example[][]): { items: number; tokens: number } {
    const items = Math.max(
      1,
      batches.reduce((n, ex) => n + lossItems(ex, run.task), 0),
    );
    let tokens = 0;
    const wholeMicroBatches = batches.length % ranks === 0;
    const [first, end] = shardRange(batches.length, group.rank, ranks);
    for (let k = 0; k < batches.length; k++) {
      const whole = batches[k]!;
      let examples = whole;
      if (ranks > 1 && wholeMicroBatches) examples = k >= first && k < end ? whole : [];
      else if (ranks > 1) examples = whole.slice(...shardRange(whole.length, group.rank, ranks));
      if (examples.length === 0) {
        stepLog.putZeroLoss();
        continue;
      }
      scope(() => {
        const batch = collate(examples, {
          kind: run.task,
          padId: run.padId,
          paddingSide: cfg.padding_side,
          backend: run.backend,
          // Ids are checked here, on the host: a device backend would report a bad one only late.
          vocabSize,
        });
        tokens += batch.tokens;
        const out = run.forward(lossInputs(batch, model.modelType, run.task, cfg.label_smoothing));
        const loss = summedLoss(out, batch.labels, run.task, cfg.label_smoothing);
        backward(ops.mulScalar(loss, 1 / items));
        stepLog.putLoss(loss);
      });
    }
    return { items, tokens };
  }

  /**
   * Data-parallel ranks: sums the step's gradients over the ranks (in the arena's grad buffer, with
   * which parameters got one), and its token count and dropout draws; returns the global token count
   * and whether any rank was asked to stop. Each rank draws dropout masks from its own Philox key
   * (rank 0 the run's), and all continue from one stream position, so any rank count resumes the state.
   */
  function reduceStep(
    tokens: number,
    dropoutFrom: { seed: number; offset: number },
  ): { tokens: number; stop: boolean } {
    const stop = opts.signal?.aborted === true;
    // A device group (NCCL) reduces even alone, so one GPU runs the code path that several do.
    if (ranks === 1 && !group.allReduceViewSum) return { tokens, stop };
    const n = arena.params.length;
    for (let i = 0; i < n; i++) if (!arena.hasGrad(i)) run.backend.fill(arena.span('grad', i, i + 1, 'reduce'), 0);
    allReduceViewSum(group, run.backend, arena.span('grad', 0, n, 'reduce'));
    const scalars = new Float64Array(n + 3);
    for (let i = 0; i < n; i++) scalars[i] = arena.params[i]!.grad ? 1 : 0;
    scalars[n] = tokens;
    scalars[n + 1] = dropoutStream.offset - dropoutFrom.offset;
    scalars[n + 2] = stop ? 1 : 0;
    group.allReduce(scalars, 'sum');
    for (let i = 0; i < n; i++) arena.setHasGrad(i, scalars[i]! > 0);
    dropoutStream.restore({ seed: dropoutFrom.seed, offset: dropoutFrom.offset + scalars[n + 1]! });
    return { tokens: scalars[n]!, stop: scalars[n + 2]! > 0 };
  }

  /** Whether any rank's flag is set (this process's own flag when it trains alone). */
  const anyRank = (flag: boolean): boolean => {
    if (ranks === 1) return flag;
    const a = new Float64Array([flag ? 1 : 0]);
    group.allReduce(a, 'max');
    return a[0]! > 0;
  };

  /** Whether step `step` must read the step log: it logs, evaluates or checkpoints, or the log is full. */
  function readsAt(step: number, stopping: boolean): boolean {
    return (
      step % cfg.logging_steps === 0 ||
      step === totalSteps ||
      step % saveEvery === 0 ||
      (run.validation !== null && step % evalEvery === 0) ||
      stopping ||
      stepLog.pending + 1 >= stepLog.capacity
    );
  }

  /**
   * Reads the step log: each step's loss joins the logging window (as when every step was read), and
   * the first step with a non-finite loss or gradient norm, if any, is returned (steps after it are not
   * counted).
   */
  function readSteps(): StepRecord | null {
    const reduce = ranks > 1 ? (losses: Float64Array) => group.allReduce(losses, 'sum') : undefined;
    for (const r of stepLog.read(reduce)) {
      if (!Number.isFinite(r.loss) || (r.gradNorm !== null && !Number.isFinite(r.gradNorm))) return r;
      st.logWindow.lossSum += r.loss;
      st.logWindow.steps++;
      lastRead = r;
    }
    return null;
  }

  /** The progress bar (with the loss last read), and at logging steps a metrics.jsonl record (the mean loss since the last one). */
  function logStep(lr: number, due: boolean): void {
    const r = rate();
    const status = {
      step: st.step,
      totalSteps,
      epoch: epochOf(st.sampler),
      loss: lastRead?.loss ?? null,
      lr,
      stepsPerSec: r.steps,
      tokensPerSec: r.tokens,
    };
    progress.update(status);
    if (!due) return;
    const mean = st.logWindow.lossSum / st.logWindow.steps;
    log.append({
      type: 'train',
      step: st.step,
      epoch: round(status.epoch, 4),
      loss: mean,
      lr,
      grad_norm: lastRead?.step === st.step ? lastRead.gradNorm : null,
      steps_per_s: round(r.steps, 3),
      tokens_per_s: round(r.tokens, 1),
      elapsed_s: round(elapsed(), 2),
    });
    if (!progress.tty) say(statusText({ ...status, loss: mean }));
    st.logWindow = { lossSum: 0, steps: 0 };
  }

  /** Evaluates on the validation set; a better metric saves best/, `patience` evaluations without one stop the run. */
  /** BLEU, ROUGE-L, NIST and CIDEr of greedy responses to the validation prompts (eval mode; no RNG used). */
  function generationMetrics(): Record<string, number> {
    const wasTraining = run.root.training;
    run.root.eval();
    try {
      const s = evaluateGeneration(model, run.tokenizer!, run.generation!, {
        padTokenId: run.padId,
        batchSize: cfg.eval_batch_size ?? cfg.batch_size,
        maxNewTokens: cfg.generation_max_new_tokens,
        group,
      });
      return { bleu: s.bleu, rouge_l: s.rouge_l, nist: s.nist, cider: s.cider };
    } finally {
      if (wasTraining) run.root.train();
    }
  }

  function evaluateAndSelect(): void {
    const ev = evaluate(run.forward, run.root, run.validation!, {
      task: run.task,
      batchSize: cfg.eval_batch_size ?? cfg.batch_size,
      padId: run.padId,
      paddingSide: cfg.padding_side,
      backend: run.backend,
      modelType: model.modelType,
      ...(run.labelNames ? { numLabels: run.labelNames.length } : {}),
      group,
    });
    if (run.generation) Object.assign(ev.metrics, generationMetrics());
    lastEval = Object.fromEntries(Object.entries(ev.metrics).map(([k, v]) => [`eval_${k}`, v]));
    const metric = run.metric!;
    const value = ev.metrics[metric]!;
    const margin = cfg.early_stopping_threshold;
    const better =
      Number.isFinite(value) &&
      (st.best === null || (greaterIsBetter(metric) ? value > st.best.value + margin : value < st.best.value - margin));
    if (better) {
      st.best = { metric, value, step: st.step };
      st.badEvals = 0;
      const results = `${JSON.stringify({ step: st.step, ...lastEval }, null, 2)}\n`;
      if (lead)
        writeDirAtomic(join(out, 'best'), (tmp) => {
          writeTrainable(tmp);
          writeFileAtomic(join(tmp, 'eval_results.json'), results);
        });
    } else st.badEvals++;
    log.append({ type: 'eval', step: st.step, epoch: round(epochOf(st.sampler), 4), ...lastEval, best: better });
    const shown = Object.entries(ev.metrics).map(([k, v]) => `${k} ${fmt(v)}`);
    say(`eval step ${st.step}: ${shown.join('  ')}${better ? '  (best)' : ''}`);
    plot();
    if (cfg.patience > 0 && st.badEvals >= cfg.patience) {
      stopped = 'early-stopped';
      const best = st.best ? `best ${fmt(st.best.value)} at step ${st.best.step}` : 'no finite value';
      say(`early stopping: no ${metric} improvement in ${cfg.patience} evaluations (${best})`);
      log.append({ type: 'event', step: st.step, event: 'early_stop' });
    }
  }

  // ---- the loop
  while (st.step < totalSteps && stopped === null) {
    const { batches, after } = nextMicroBatches(st.sampler);
    const dropoutFrom = dropoutStream.state();
    if (group.rank > 0) dropoutStream.seed = rankDropoutSeed(dropoutFrom.seed, group.rank);
    const fb = forwardBackward(batches); // gradients accumulate in the optimizer's arena
    const { tokens, stop } = reduceStep(fb.tokens, dropoutFrom);
    const items = fb.items;
    const reads = readsAt(st.step + 1, stop);
    // The norm is computed when it clips, or when this step reads it for the log.
    const norm =
      cfg.max_grad_norm > 0 ? clipGradNorm(trainable, cfg.max_grad_norm) : reads ? gradNorm(trainable) : null;
    if (norm) {
      stepLog.putNorm(norm);
      norm.dispose();
    }
    stepLog.endStep(st.step + 1, items);
    if (reads) {
      const bad = readSteps();
      if (bad) return diverged(bad, st.step + 1, false);
    }
    const lr = lrFactor(schedule, st.step);
    optimizer.groups.forEach((g, i) => (g.lr = run.baseLrs[i]! * lr));
    optimizer.step();
    optimizer.zeroGrad();

    st.step++;
    st.sampler = after;
    st.examplesSeen += batches.reduce((n, b) => n + b.length, 0);
    st.tokensSeen += tokens;
    opts.onStep?.(st.step, run);
    const last = st.step === totalSteps;
    logStep(run.baseLrs[0]! * lr, st.step % cfg.logging_steps === 0 || last);
    if (run.validation && (st.step % evalEvery === 0 || last)) evaluateAndSelect();
    const interrupted = anyRank(opts.signal?.aborted === true);
    if (st.step % saveEvery === 0 || last || stopped !== null || interrupted) {
      // Read points come before these steps' updates; an abort from onStep may still leave steps unread.
      const bad = readSteps();
      if (bad) return diverged(bad, st.step, true);
      checkpoint();
    }
    if (interrupted && !last && stopped === null) {
      progress.done();
      log.append({ type: 'event', step: st.step, event: 'interrupted' });
      plot();
      return result('interrupted', null, `interrupted at step ${st.step}; continue with --resume (${lastCheckpoint})`);
    }
    // Let signal handlers (Ctrl-C) run between steps.
    await new Promise((resolve) => setImmediate(resolve));
  }
  progress.done();

  // ---- the final adapter (or model): the last step's, or with load_best_model_at_end a copy of best/
  const finalDir = join(out, peft ? 'adapter' : 'model');
  const bestDir = join(out, 'best');
  const fromBest = cfg.load_best_model_at_end && st.best !== null && existsSync(bestDir);
  if (!lead) {
    // rank 0 writes it
  } else if (fromBest) writeDirAtomic(finalDir, (tmp) => cpSync(bestDir, tmp, { recursive: true }));
  else writeDirAtomic(finalDir, writeTrainable);
  plot();
  const status = stopped ?? 'completed';
  const best = st.best
    ? fromBest
      ? `; it is the best evaluation's (${st.best.metric} ${fmt(st.best.value)} at step ${st.best.step})`
      : `; best ${st.best.metric} ${fmt(st.best.value)} at step ${st.best.step} in ${bestDir}`
    : '';
  return result(
    status,
    finalDir,
    `${status === 'completed' ? 'finished' : 'stopped early'} at step ${st.step}: ${finalDir}${best}`,
  );

  /**
   * Stops at a step whose loss or gradient norm is not finite, read back at step `at` (before its
   * update, or after it when `applied`). Read at the bad step itself, before its update: nothing of it
   * is applied. Read later (steps between read points are not read): the updates since were applied in
   * memory, but nothing from the bad step on is saved.
   */
  function diverged(bad: StepRecord, at: number, applied: boolean): TrainResult {
    optimizer.zeroGrad();
    progress.done();
    const what = Number.isFinite(bad.loss) ? `the gradient norm became ${bad.gradNorm}` : `the loss became ${bad.loss}`;
    log.append({
      type: 'event',
      step: bad.step,
      event: 'diverged',
      loss: bad.loss,
      ...(bad.gradNorm !== null ? { grad_norm: bad.gradNorm } : {}),
    });
    plot();
    const keep = lastCheckpoint ? `the last good checkpoint is ${lastCheckpoint}` : 'no checkpoint was written yet';
    const stop =
      bad.step === at && !applied
        ? 'stopped without applying that update'
        : `stopped at step ${at}, the next step that reads losses back, without saving any update from step ${bad.step} on`;
    st.step = bad.step - 1;
    return result(
      'diverged',
      null,
      `${what} at step ${bad.step}; ${stop} (${keep}; lower --lr or --max_grad_norm and --resume)`,
    );
  }

  function result(status: TrainResult['status'], output: string | null, message: string): TrainResult {
    const trainableParameters = run.params.reduce((n, [, t]) => n + t.numel, 0);
    return {
      status,
      step: st.step,
      totalSteps,
      best: st.best,
      output,
      checkpoint: lastCheckpoint,
      lastEval,
      trainableParameters,
      message,
    };
  }
}

/** Restores trainable weights, optimizer, data position, RNG and counters from a checkpoint. */
function restore(run: Run, dir: string): TrainerState {
  const st = readTrainerState(dir);
  const names = run.params.map(([n]) => n);
  if (st.parameters.join('\n') !== names.join('\n'))
    throw new Error(
      `[train] ${dir}: its trainable parameters differ from this run's (was the model or method changed?)`,
    );
  if (run.peft) {
    const reader = SafetensorsReader.open(join(dir, 'adapter_model.safetensors'));
    try {
      for (const [key, t] of run.peft.adapterStateDict()) {
        const src = reader.tensor(key, { dtype: t.dtype, backend: t.backend });
        t.backend.copy(t.view('resume'), src.view('resume'));
        src.dispose();
      }
    } finally {
      reader.close();
    }
  } else {
    const ckpt = Checkpoint.open(dir);
    try {
      run.model.loadCheckpoint(ckpt, dir);
    } finally {
      ckpt.close();
    }
  }
  const reader = SafetensorsReader.open(join(dir, OPTIMIZER_FILE));
  const have = new Set(reader.names());
  const loaded: Tensor[] = [];
  try {
    const state = run.params.map(([name, p]) => {
      if (!have.has(`exp_avg/${name}`)) return null;
      const get = (k: string) => {
        const t = reader.tensor(k, { dtype: p.dtype, backend: p.backend });
        loaded.push(t);
        return t;
      };
      return { m: get(`exp_avg/${name}`), v: get(`exp_avg_sq/${name}`) };
    });
    run.optimizer.loadStateDict({ step: st.optimizer.step, groups: st.optimizer.groups, state });
  } finally {
    for (const t of loaded) t.dispose();
    reader.close();
  }
  setRngState(st.rng);
  return st;
}

/** A resumed run must be the same run: the fields that define it must equal the checkpoint's. */
function checkSameRun(cfg: TrainConfig, dir: string): void {
  let saved: Partial<TrainConfig>;
  try {
    saved = readCheckpointConfig(dir);
  } catch {
    return;
  }
  for (const key of RUN_DEFINING) {
    if (JSON.stringify(saved[key] ?? null) !== JSON.stringify(cfg[key] ?? null))
      throw new ConfigError(
        `--${key} is ${JSON.stringify(cfg[key])} but the run in ${dir} used ${JSON.stringify(saved[key])}; a resumed run must keep it (or start over with --overwrite_output_dir)`,
      );
  }
}

/** checkpoint-* directories (complete or not) of an output directory. */
function listOld(out: string): string[] {
  return existsSync(out)
    ? readdirSync(out)
        .filter((n) => /^checkpoint-\d+$/.test(n))
        .map((n) => join(out, n))
    : [];
}

/** Rank r's Philox key for dropout masks (rank 0 keeps the run's: one rank draws what a single process does). */
function rankDropoutSeed(seed: number, rank: number): number {
  return (seed ^ Math.imul(rank, 0x9e3779b9)) >>> 0;
}

function describeRun(run: Run, resumedAt: number | null, group: Collective): string {
  const ranks = group.size;
  const n = run.params.reduce((s, [, p]) => s + p.numel, 0);
  const all = run.model.numParameters();
  const what = run.peft
    ? run.peft.trainableParametersSummary()
    : `trainable params: ${n.toLocaleString('en-US')} || all params: ${all.toLocaleString('en-US')}`;
  const data = `${run.train.length} training examples${run.validation ? `, ${run.validation.length} validation` : ''}`;
  const head = resumedAt === null ? 'training' : `resuming at step ${resumedAt} of`;
  const dp =
    ranks > 1 || group.kind === 'nccl'
      ? `; ${ranks} data-parallel rank${ranks > 1 ? 's share' : ' takes'} each global batch of ${run.cfg.batch_size * run.cfg.gradient_accumulation_steps} (${group.kind === 'nccl' ? 'NCCL' : 'MPI'})`
      : '';
  return `${head} ${run.model.architecture} (${run.cfg.method}, ${run.task}) for ${run.totalSteps} steps; ${data}; ${what}${dp}`;
}

function round(v: number, digits: number): number {
  return Number.isFinite(v) ? Number(v.toFixed(digits)) : v;
}

function fmt(v: number): string {
  return Number.isFinite(v) ? String(Number(v.toPrecision(5))) : String(v);
}
