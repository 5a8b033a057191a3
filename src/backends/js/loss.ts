// Cross-entropy of the js backend (torch.nn.functional.cross_entropy per row, with ignore_index and
// label smoothing), forward and backward.

import type { CrossEntropyOpts, View } from '../backend.js';
import { contiguousStart, floats, ints, rowsOf } from './buffer.js';

function target(t: number, row: number, v: number, opts: CrossEntropyOpts, op: string): number {
  if (t === opts.ignoreIndex) return -1;
  if (t < 0 || t >= v) throw new Error(`[js ${op}] Target ${t} at row ${row} is out of range for ${v} classes`);
  return t;
}

export function crossEntropy(loss: View, lse: View, logits: View, targets: View, opts: CrossEntropyOpts): void {
  const [n, v] = rowsOf(logits);
  const x = floats(logits, 'crossEntropy');
  const xs = contiguousStart(logits, 'crossEntropy');
  const td = ints(targets, 'crossEntropy');
  const ts = contiguousStart(targets, 'crossEntropy');
  const ld = floats(loss, 'crossEntropy');
  const ls = contiguousStart(loss, 'crossEntropy');
  const sd = floats(lse, 'crossEntropy');
  const ss = contiguousStart(lse, 'crossEntropy');
  const eps = opts.labelSmoothing;
  for (let i = 0; i < n; i++) {
    const o = xs + i * v;
    let max = -Infinity;
    let sum = 0;
    for (let j = 0; j < v; j++) max = Math.max(max, x[o + j]!);
    for (let j = 0; j < v; j++) sum += Math.exp(x[o + j]! - max);
    const l = max + Math.log(sum);
    sd[ss + i] = l;
    const t = target(td[ts + i]!, i, v, opts, 'crossEntropy');
    if (t < 0) {
      ld[ls + i] = 0;
      continue;
    }
    let mean = 0;
    if (eps > 0) {
      for (let j = 0; j < v; j++) mean += x[o + j]!;
      mean /= v;
    }
    ld[ls + i] = l - (1 - eps) * x[o + t]! - eps * mean;
  }
}

export function crossEntropyBackward(
  dlogits: View,
  dloss: View,
  logits: View,
  lse: View,
  targets: View,
  opts: CrossEntropyOpts,
): void {
  const [n, v] = rowsOf(logits);
  const x = floats(logits, 'crossEntropyBackward');
  const xs = contiguousStart(logits, 'crossEntropyBackward');
  const g = floats(dlogits, 'crossEntropyBackward');
  const gs = contiguousStart(dlogits, 'crossEntropyBackward');
  const dl = floats(dloss, 'crossEntropyBackward');
  const dls = contiguousStart(dloss, 'crossEntropyBackward');
  const sd = floats(lse, 'crossEntropyBackward');
  const ss = contiguousStart(lse, 'crossEntropyBackward');
  const td = ints(targets, 'crossEntropyBackward');
  const ts = contiguousStart(targets, 'crossEntropyBackward');
  const eps = opts.labelSmoothing;
  for (let i = 0; i < n; i++) {
    const t = target(td[ts + i]!, i, v, opts, 'crossEntropyBackward');
    const scale = t < 0 ? 0 : dl[dls + i]!;
    const l = sd[ss + i]!;
    for (let j = 0; j < v; j++) {
      const p = Math.exp(x[xs + i * v + j]! - l);
      const q = (j === t ? 1 - eps : 0) + eps / v;
      g[gs + i * v + j] = t < 0 ? 0 : scale * (p - q);
    }
  }
}
