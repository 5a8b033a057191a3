// Evaluation: a model's mean loss on a dataset (in order, no gradients, dropout off) and the task's
// metrics: accuracy, F1 (binary for two classes, else macro) and Matthews' correlation for
// classification; Pearson and Spearman for regression; perplexity for causal LM.

import { noGrad } from '../autograd/graph.js';
import type { Backend } from '../backends/backend.js';
import { type Dataset, type Example, collate } from '../data/index.js';
import { accuracy, f1, matthewsCorrcoef } from '../metrics/classification.js';
import { pearson, spearman } from '../metrics/correlation.js';
import { perplexity } from '../metrics/perplexity.js';
import type { ModelInputs } from '../models/pretrained.js';
import type { Module } from '../nn/module.js';
import { empty } from '../tensor/creation.js';
import { keep, scope } from '../tensor/scope.js';
import { contiguousStrides } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Task } from './config.js';
import { type Collective, allGatherJson } from './distributed/collective.js';
import { lossInputs, lossItems, predictions, summedLoss } from './heads.js';

export interface EvalOptions {
  task: Task;
  batchSize: number;
  padId: number;
  paddingSide: 'left' | 'right';
  backend: Backend;
  modelType: string | null;
  /** Classes of a classification head (picks binary or macro F1). */
  numLabels?: number;
  /** Data-parallel ranks that share the batches (default: this process alone). */
  group?: Collective;
}

export interface EvalResult {
  /** Mean loss per item (example, or target token for causal LM). */
  loss: number;
  /** "loss" and the task's metrics. */
  metrics: Record<string, number>;
  examples: number;
}

/** One evaluation batch as computed by one process: its index, summed loss, item count and predictions. */
interface BatchResult {
  b: number;
  loss: number;
  items: number;
  preds: number[];
}

/**
 * Evaluates `forward` on every example of `ds`; `root` is switched to eval mode and back. With a
 * process group of several ranks (`o.group`), rank r computes the batches b with b mod size = r (each
 * batch as one process would make it) and the results are gathered, so every rank returns the same
 * numbers as one process.
 */
export function evaluate(
  forward: (inputs: ModelInputs) => Tensor,
  root: Module,
  ds: Dataset,
  o: EvalOptions,
): EvalResult {
  const group = o.group ?? null;
  const rank = group?.rank ?? 0;
  const size = group?.size ?? 1;
  const wasTraining = root.training;
  root.eval();
  const predicts = o.task !== 'causal-lm';
  const batches = Math.ceil(ds.length / o.batchSize);
  const mine: number[] = [];
  for (let b = rank; b < batches; b += size) mine.push(b);
  const mineExamples = mine.reduce((n, b) => n + Math.min(o.batchSize, ds.length - b * o.batchSize), 0);
  // One backend buffer receives each batch's summed loss, then every prediction (class ids are exact
  // in a float buffer), and is read once at the end; the losses are then summed on the host in batch
  // order, exactly as reading every batch did.
  const out: { results: Tensor | null } = { results: null };
  const put = (into: Tensor, at: number, t: Tensor) =>
    o.backend.copy(
      { ...into.view('evaluate'), offset: at, shape: t.shape, strides: contiguousStrides(t.shape) },
      t.view('evaluate'),
    );
  const parts: BatchResult[] = [];
  const gold: number[] = [];
  try {
    const itemCounts: number[] = [];
    const sizes: number[] = [];
    noGrad(() => {
      let predAt = mine.length;
      mine.forEach((b, j) => {
        const start = b * o.batchSize;
        const examples: Example[] = [];
        for (let i = start; i < Math.min(ds.length, start + o.batchSize); i++) examples.push(ds.get(i));
        scope(() => {
          const batch = collate(examples, {
            kind: o.task,
            padId: o.padId,
            paddingSide: o.paddingSide,
            backend: o.backend,
          });
          const logits = forward(lossInputs(batch, o.modelType, o.task));
          const loss = summedLoss(logits, batch.labels, o.task);
          out.results ??= keep(
            empty([mine.length + (predicts ? mineExamples : 0)], {
              dtype: loss.dtype === 'f64' ? 'f64' : 'f32',
              backend: o.backend,
            }),
          );
          put(out.results, j, loss);
          itemCounts.push(lossItems(examples, o.task));
          sizes.push(examples.length);
          if (predicts) {
            put(out.results, predAt, predictions(logits, o.task));
            predAt += examples.length;
          }
        });
      });
    });
    const host = out.results?.toNumbers() ?? [];
    let predAt = mine.length;
    mine.forEach((b, j) => {
      const preds = predicts ? host.slice(predAt, predAt + sizes[j]!) : [];
      predAt += sizes[j]!;
      parts.push({ b, loss: host[j]!, items: itemCounts[j]!, preds });
    });
  } finally {
    root.train(wasTraining);
    out.results?.dispose();
  }
  const all = group && size > 1 ? allGatherJson(group, parts).flat() : parts;
  all.sort((x, y) => x.b - y.b);
  let items = 0;
  let lossSum = 0;
  const predicted: number[] = [];
  for (const p of all) {
    lossSum += p.loss;
    items += p.items;
    predicted.push(...p.preds);
  }
  if (predicts) for (let i = 0; i < ds.length; i++) gold.push(ds.get(i).label!);
  const loss = items > 0 ? lossSum / items : NaN;
  return {
    loss,
    metrics: { loss, ...taskMetrics(o.task, predicted, gold, loss, o.numLabels) },
    examples: ds.length,
  };
}

/** The task's metrics from predictions and gold labels (or, for causal LM, the mean token loss). */
export function taskMetrics(
  task: Task,
  preds: number[],
  gold: number[],
  loss: number,
  numLabels?: number,
): Record<string, number> {
  switch (task) {
    case 'causal-lm':
      return { perplexity: perplexity(loss) };
    case 'regression':
      return {
        pearson: preds.length >= 2 ? pearson(preds, gold) : NaN,
        spearman: preds.length >= 2 ? spearman(preds, gold) : NaN,
      };
    default: {
      const binary = (numLabels ?? Math.max(2, ...gold, ...preds) + 1) === 2;
      return {
        accuracy: accuracy(preds, gold),
        f1: f1(preds, gold, { average: binary ? 'binary' : 'macro' }),
        mcc: matthewsCorrcoef(preds, gold),
      };
    }
  }
}
