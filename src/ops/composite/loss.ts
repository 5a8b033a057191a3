// Per-row cross-entropy from logits (ignore_index, label smoothing), forward and backward, from
// primitives. Ignored rows read class 0 (so the gather stays in range) and are zeroed with where();
// a target out of range fails in the gather / scatter-add, reported under the fused kernel's name.

import type { Backend, CrossEntropyOpts, View } from '../../backends/backend.js';
import { type Scratch, asKernel, perRow, reshaped, rowsOf, withScratch } from './scratch.js';

interface Targets {
  /** bool [N, 1]: the row counts (its target is not ignoreIndex). */
  counts: View;
  /** i32 [N, 1]: the target, 0 for ignored rows. */
  index: View;
}

function targetsOf(s: Scratch, op: string, targets: View, n: number, opts: CrossEntropyOpts): Targets {
  const b = s.backend;
  const t = reshaped(op, 'targets', targets, [n, 1]);
  const counts = s.tmp('bool', [n, 1]);
  b.scalar('ne_s', counts, t, opts.ignoreIndex);
  const index = s.tmp('i32', [n, 1]);
  b.where(index, counts, t, s.constant('i32', 0, [n, 1]));
  return { counts, index };
}

/** backend.crossEntropy's semantics: loss [N] (0 for ignored rows) and lse [N]. */
export function crossEntropy(
  b: Backend,
  loss: View,
  lse: View,
  logits: View,
  targets: View,
  opts: CrossEntropyOpts,
): void {
  const op = 'crossEntropy';
  const [n, v] = rowsOf(logits);
  const x = reshaped(op, 'logits', logits, [n, v]);
  const out = reshaped(op, 'loss', loss, [n, 1]);
  const l = reshaped(op, 'lse', lse, [n, 1]);
  const dt = logits.dtype;
  withScratch(b, (s) => {
    const { counts, index } = targetsOf(s, op, targets, n, opts);
    // lse = max + log Σ exp(x − max)
    const max = s.tmp(dt, [n, 1]);
    b.reduce('max', max, x, [1]);
    const e = s.tmp(dt, [n, v]);
    b.binary('sub', e, x, perRow(max, n, v));
    b.unary('exp', e, e);
    b.reduce('sum', l, e, [1]);
    b.unary('log', l, l);
    b.binary('add', l, l, max);
    // loss = lse − (1 − ε)·x[t] − ε·mean(x)
    const picked = s.tmp(dt, [n, 1]);
    asKernel(op, () => b.gather(picked, x, index, 1));
    b.scalar('mul_s', picked, picked, 1 - opts.labelSmoothing);
    b.binary('sub', out, l, picked);
    if (opts.labelSmoothing > 0) {
      b.reduce('sum', picked, x, [1]);
      b.scalar('mul_s', picked, picked, opts.labelSmoothing / v);
      b.binary('sub', out, out, picked);
    }
    b.where(out, counts, out, s.constant(dt, 0, [n, 1]));
  });
}

/** backend.crossEntropyBackward's semantics: dlogits = dloss·(softmax − target distribution), 0 for ignored rows. */
export function crossEntropyBackward(
  b: Backend,
  dlogits: View,
  dloss: View,
  logits: View,
  lse: View,
  targets: View,
  opts: CrossEntropyOpts,
): void {
  const op = 'crossEntropyBackward';
  const [n, v] = rowsOf(logits);
  const x = reshaped(op, 'logits', logits, [n, v]);
  const g = reshaped(op, 'dlogits', dlogits, [n, v]);
  const dl = perRow(reshaped(op, 'dloss', dloss, [n, 1]), n, v);
  const l = perRow(reshaped(op, 'lse', lse, [n, 1]), n, v);
  const dt = logits.dtype;
  const eps = opts.labelSmoothing;
  withScratch(b, (s) => {
    const { counts, index } = targetsOf(s, op, targets, n, opts);
    // p − q with q = (1 − ε)·onehot(t) + ε/V
    b.binary('sub', g, x, l);
    b.unary('exp', g, g);
    if (eps > 0) b.scalar('add_s', g, g, -eps / v);
    const hit = s.tmp(dt, [n, 1]);
    b.fill(hit, -(1 - eps));
    asKernel(op, () => b.scatterAdd(g, index, hit, 1));
    b.binary('mul', g, g, dl);
    b.where(g, perRow(counts, n, v), g, s.constant(dt, 0, [n, v]));
  });
}
