// What each task computes from a model's output: the summed loss of a batch (cross-entropy with label
// smoothing for classes, squared error for regression, next-token cross-entropy for causal LM) and
// how many items it sums over, so that micro-batches of any size average exactly like one big batch.

import type { Batch, Example } from '../data/index.js';
import { IGNORE_INDEX } from '../data/index.js';
import type { ModelInputs } from '../models/pretrained.js';
import * as ops from '../ops/index.js';
import { full } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Task } from './config.js';

/** The inputs a model's forward takes from a batch (token types only for BERT, whose embeddings use them). */
export function modelInputs(batch: Batch, modelType: string | null): ModelInputs {
  const inputs: ModelInputs = {};
  if (batch.inputIds) inputs.inputIds = batch.inputIds;
  if (batch.attentionMask) inputs.attentionMask = batch.attentionMask;
  if (batch.tokenTypeIds && modelType === 'bert') inputs.tokenTypeIds = batch.tokenTypeIds;
  if (batch.pixelValues) inputs.pixelValues = batch.pixelValues;
  return inputs;
}

/**
 * A causal LM's targets: the labels [B, T] shifted by one (position t's target is token t + 1; the last
 * position counts nothing). The labels move instead of the logits, so the [B, T, V] logits are read in
 * place (slicing them off by one made a contiguous copy and, in the backward, a zero-filled [B, T, V]
 * gradient around it).
 */
export function causalTargets(labels: Tensor): Tensor {
  const b = labels.shape[0]!;
  return ops.concat(
    [ops.slice(labels, 1, 1), full([b, 1], IGNORE_INDEX, { dtype: 'i32', backend: labels.backend })],
    1,
  ); // (B, T)
}

/**
 * The inputs of a training or evaluation forward: modelInputs, and for a causal LM its loss targets, so
 * that the model returns its per-position loss [B, T] (from the LM head in row chunks where it can)
 * instead of the [B, T, V] logits; summedLoss takes either.
 */
export function lossInputs(batch: Batch, modelType: string | null, task: Task, labelSmoothing = 0): ModelInputs {
  const inputs = modelInputs(batch, modelType);
  if (task === 'causal-lm' && batch.labels)
    inputs.lossTargets = { targets: causalTargets(batch.labels), ignoreIndex: IGNORE_INDEX, labelSmoothing };
  return inputs;
}

/**
 * The loss of a batch summed over its items (a scalar): logits [B, L] against class ids, [B, 1] against
 * regression targets, or for a causal LM either [B, T, V] logits against token labels [B, T] shifted by
 * one (position t predicts token t + 1; −100 counts nothing) or the per-position losses [B, T] a model
 * returned for lossInputs' targets, as transformers' heads compute it before their mean.
 */
export function summedLoss(logits: Tensor, labels: Tensor, task: Task, labelSmoothing = 0): Tensor {
  switch (task) {
    case 'classification':
    case 'image-classification':
      return ops.crossEntropy(logits, labels, { reduction: 'sum', labelSmoothing });
    case 'regression': {
      const b = logits.shape[0]!;
      if (logits.numel !== b)
        throw new Error(
          `[train] regression needs a model with one output (num_labels 1), got logits (${logits.shape.join(', ')})`,
        );
      return ops.sum(ops.square(ops.sub(ops.reshape(logits, [b]), labels)));
    }
    case 'causal-lm': {
      if (logits.rank === 2) return ops.sum(logits); // the model's per-position losses
      return ops.crossEntropy(logits, causalTargets(labels), {
        reduction: 'sum',
        labelSmoothing,
        ignoreIndex: IGNORE_INDEX,
      });
    }
  }
}

/** How many items summedLoss adds up for these examples: examples, or target tokens after the shift. */
export function lossItems(examples: readonly Example[], task: Task): number {
  if (task !== 'causal-lm') return examples.length;
  let n = 0;
  for (const ex of examples) {
    const labels = ex.labels ?? ex.inputIds ?? [];
    for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) n++;
  }
  return n;
}

/** Predictions of a classification ([B] class ids, i32) or regression ([B] values) batch, on the backend. */
export function predictions(logits: Tensor, task: Task): Tensor {
  if (task === 'regression') return ops.reshape(logits, [logits.shape[0]!]);
  return ops.argmax(logits);
}
