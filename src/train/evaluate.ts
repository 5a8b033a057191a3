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
import { lossItems, modelInputs, predictions, summedLoss } from './heads.js';

export interface EvalOptions {
  task: Task;
  batchSize: number;
  padId: number;
  paddingSide: 'left' | 'right';
  backend: Backend;
  modelType: string | null;
  /** Classes of a classification head (picks binary or macro F1). */
  numLabels?: number;
}

export interface EvalResult {
  /** Mean loss per item (example, or target token for causal LM). */
  loss: number;
  /** "loss" and the task's metrics. */
  metrics: Record<string, number>;
  examples: number;
}

/** Evaluates `forward` on every example of `ds`; `root` is switched to eval mode and back. */
export function evaluate(
  forward: (inputs: ModelInputs) => Tensor,
  root: Module,
  ds: Dataset,
  o: EvalOptions,
): EvalResult {
  const wasTraining = root.training;
  root.eval();
  let items = 0;
  let lossSum = 0;
  let predicted: number[];
  const gold: number[] = [];
  // One backend buffer receives each batch's summed loss, then every prediction (class ids are exact
  // in a float buffer), and is read once at the end; the losses are then summed on the host in batch
  // order, exactly as reading every batch did.
  const batches = Math.ceil(ds.length / o.batchSize);
  const predicts = o.task !== 'causal-lm';
  const out: { results: Tensor | null } = { results: null };
  const put = (into: Tensor, at: number, t: Tensor) =>
    o.backend.copy(
      { ...into.view('evaluate'), offset: at, shape: t.shape, strides: contiguousStrides(t.shape) },
      t.view('evaluate'),
    );
  try {
    noGrad(() => {
      for (let b = 0, start = 0; start < ds.length; b++, start += o.batchSize) {
        const examples: Example[] = [];
        for (let i = start; i < Math.min(ds.length, start + o.batchSize); i++) examples.push(ds.get(i));
        scope(() => {
          const batch = collate(examples, {
            kind: o.task,
            padId: o.padId,
            paddingSide: o.paddingSide,
            backend: o.backend,
          });
          const logits = forward(modelInputs(batch, o.modelType));
          const loss = summedLoss(logits, batch.labels, o.task);
          out.results ??= keep(
            empty([batches + (predicts ? ds.length : 0)], {
              dtype: loss.dtype === 'f64' ? 'f64' : 'f32',
              backend: o.backend,
            }),
          );
          put(out.results, b, loss);
          items += lossItems(examples, o.task);
          if (predicts) {
            put(out.results, batches + start, predictions(logits, o.task));
            gold.push(...examples.map((ex) => ex.label!));
          }
        });
      }
    });
    const host = out.results?.toNumbers() ?? [];
    for (let b = 0; b < Math.min(batches, host.length); b++) lossSum += host[b]!;
    predicted = host.slice(batches);
  } finally {
    root.train(wasTraining);
    out.results?.dispose();
  }
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
