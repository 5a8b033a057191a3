// Cross-entropy from logits (torch.nn.functional.cross_entropy): ignore_index, label smoothing and
// mean/sum/none reductions, on a fused kernel that never materialises the softmax in the forward.

import { record } from '../autograd/graph.js';
import type { CrossEntropyOpts } from '../backends/backend.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast, div, ne } from './elementwise.js';
import { fused } from './kernels.js';
import { contiguous, reshape } from './movement.js';
import { sum } from './reduce.js';
import { alloc, expectDType, floatDType, sameBackend, statsDType } from './util.js';

export interface CrossEntropyOptions {
  /** Target value whose rows contribute nothing (torch's default −100). */
  ignoreIndex?: number;
  /** ε in (1 − ε)·onehot + ε/V. */
  labelSmoothing?: number;
  /** 'mean' averages over non-ignored rows (torch's default). */
  reduction?: 'mean' | 'sum' | 'none';
}

/** Loss of logits [..., V] against i32 targets [...]. */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  floatDType('crossEntropy', logits);
  expectDType('crossEntropy', targets, 'i32', 'Targets');
  const backend = sameBackend('crossEntropy', logits, targets);
  const v = logits.shape[logits.rank - 1]!;
  const lead = logits.shape.slice(0, -1);
  if (targets.rank !== lead.length || targets.shape.some((d, i) => d !== lead[i])) {
    throw new ShapeError(
      `[crossEntropy] Targets ${fmtShape(targets.shape)} do not match logits ${fmtShape(logits.shape)} without the class axis`,
    );
  }
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new Error(`[crossEntropy] labelSmoothing = ${eps} must be in [0, 1]`);
  const kopts: CrossEntropyOpts = { ignoreIndex: opts.ignoreIndex ?? -100, labelSmoothing: eps };
  const n = targets.numel;
  const x = contiguous(reshape(logits, [n, v]));
  const t = contiguous(reshape(targets, [n]));
  // bf16 logits give f32 losses (the kernel computes in f32; torch upcasts logits for the loss).
  const ld = statsDType(logits);
  const rowLoss = alloc(backend, [n], ld);
  const lse = alloc(backend, [n], ld);
  fused(backend).crossEntropy(
    rowLoss.view('crossEntropy'),
    lse.view('crossEntropy'),
    x.view('crossEntropy'),
    t.view('crossEntropy'),
    kopts,
  );
  const perRow = record(
    'crossEntropy',
    rowLoss,
    [x],
    (dy) => {
      const g = contiguous(dy);
      const dx = alloc(backend, [n, v], logits.dtype);
      fused(backend).crossEntropyBackward(
        dx.view('crossEntropy'),
        g.view('crossEntropy'),
        x.view('crossEntropy'),
        lse.view('crossEntropy'),
        t.view('crossEntropy'),
        kopts,
      );
      if (g !== dy) g.dispose();
      return [dx];
    },
    [lse],
    [t],
  );
  const reduction = opts.reduction ?? 'mean';
  let loss: Tensor;
  if (reduction === 'none') loss = reshape(perRow, lead);
  else if (reduction === 'sum') loss = sum(perRow);
  else {
    // Mean over rows that count, computed on the device (no host read of the targets).
    loss = scope(() => div(sum(perRow), sum(cast(ne(t, kopts.ignoreIndex), ld)))); // NaN if none count, as torch
  }
  if (loss !== perRow) perRow.dispose();
  x.dispose();
  t.dispose();
  return loss;
}
