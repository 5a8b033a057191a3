// Recording the tape: gradient mode (noGrad / enableGrad) and record(), which every differentiable op
// calls after computing its output. An output joins the graph only when grad mode is on and some input
// requires grad; the rule later receives which inputs need a gradient, so frozen weights cost nothing.

import { type BackwardFn, GradNode, type MultiBackwardFn } from '../tensor/grad-node.js';
import type { Tensor } from '../tensor/tensor.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn without recording a graph (inference, evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn);
}

/** Runs fn with recording on, even inside noGrad (used by activation checkpointing). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn);
}

/**
 * Attaches a backward rule to `out` when any input requires grad. The node holds the inputs, the
 * output and `saved` (other tensors the rule reads) until backward frees it. `owned` lists
 * intermediates the op made only for the rule (LayerNorm's mean and rstd, contiguous copies): record
 * disposes them, so their storage lives exactly as long as the node.
 */
export function record(
  op: string,
  out: Tensor,
  inputs: readonly Tensor[],
  backward: BackwardFn,
  owned: readonly Tensor[] = [],
  saved: readonly Tensor[] = [],
): Tensor {
  recordMulti(op, [out], inputs, (dys, needs) => backward(dys[0]!, needs), owned, saved);
  return out;
}

/**
 * record() for a rule that reads only `reads` (any of the inputs, the output or other tensors) and the
 * others' shapes and dtypes: the node holds just those (and `owned`), as torch saves only what a
 * backward needs, so a frozen linear keeps its weight and not its input, and an add keeps nothing.
 */
export function recordReads(
  op: string,
  out: Tensor,
  inputs: readonly Tensor[],
  backward: BackwardFn,
  reads: readonly (Tensor | null | false | undefined)[],
  owned: readonly Tensor[] = [],
): Tensor {
  const held = reads.filter((t): t is Tensor => Boolean(t));
  recordMulti(op, [out], inputs, (dys, needs) => backward(dys[0]!, needs), owned, held, false);
  return out;
}

/** record() for an op with several outputs (split): the rule receives one gradient per output. */
export function recordMulti(
  op: string,
  outs: readonly Tensor[],
  inputs: readonly Tensor[],
  backward: MultiBackwardFn,
  owned: readonly Tensor[] = [],
  saved: readonly Tensor[] = [],
  holdIO = true,
): void {
  const needs = inputs.map((t) => t.requiresGrad);
  if (gradEnabled && needs.some(Boolean)) {
    const node = new GradNode(
      op,
      inputs,
      needs,
      outs.map((o) => o.shape),
      backward,
      holdIO ? [...inputs, ...outs, ...owned, ...saved] : [...owned, ...saved],
    );
    outs.forEach((o, i) => {
      o.requiresGrad = true;
      o.gradFn = node;
      o.gradOutput = i;
    });
  }
  for (const t of owned) t.dispose();
}
