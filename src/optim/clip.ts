// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_) without a host read: the norm is a
// backend scalar and the clip coefficient min(1, maxNorm / (norm + 1e-6)) multiplies the gradients
// as one, as torch does. Parameters in an optimizer's arena (arena.ts) are covered by one span per
// run of consecutive parameters, so a whole arena costs a fixed handful of launches; any other
// parameter costs its own.

import { noGrad } from '../autograd/graph.js';
import { add, clamp, div, sqrt, square } from '../ops/elementwise.js';
import { sum } from '../ops/reduce.js';
import { full } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { ParamArena } from './arena.js';

/** Squares of at most this many elements exist at once (a full fine-tune's arena is summed in pieces). */
const CHUNK = 1 << 22;

/** The global L2 norm of the gradients of `params`, a 0-d backend tensor (0 when none has a gradient). */
export function gradNorm(params: readonly Tensor[]): Tensor {
  return noGrad(() => scope(() => normOf(params, gradSpans(params))));
}

/**
 * Scales the gradients of `params` in place so that their global L2 norm is at most maxNorm, and
 * returns the norm before clipping as a 0-d backend tensor: nothing is read back to the host.
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): Tensor {
  if (Number.isNaN(maxNorm)) throw new RangeError('[clipGradNorm] maxNorm is NaN');
  return noGrad(() =>
    scope(() => {
      const spans = gradSpans(params);
      const norm = normOf(params, spans);
      if (spans.length === 0) return norm;
      const b = norm.backend;
      const max = full([], maxNorm, { dtype: norm.dtype, backend: b });
      const c = clamp(div(max, add(norm, 1e-6)), -Infinity, 1).view('clipGradNorm');
      for (const s of spans) {
        const out = s.view('clipGradNorm');
        b.binary('mul', out, out, { ...c, shape: out.shape, strides: out.shape.map(() => 0) });
      }
      return norm;
    }),
  );
}

function normOf(params: readonly Tensor[], spans: readonly Tensor[]): Tensor {
  if (spans.length === 0) {
    const p = params[0];
    return full([], 0, p ? { dtype: p.dtype, backend: p.backend } : {});
  }
  const partials: Tensor[] = [];
  for (const s of spans) {
    for (let at = 0; at < s.numel; at += CHUNK) {
      const n = Math.min(CHUNK, s.numel - at);
      const piece = n === s.numel ? s : new Tensor(s.storage, [n], [1], s.offset + at);
      partials.push(sum(square(piece)));
    }
  }
  return sqrt(partials.reduce((a, b) => add(a, b)));
}

/**
 * Tensors covering the gradients of `params` that have one, without overlap: for arena parameters a
 * flat span per run of consecutive arena positions, for the others their .grad.
 */
function gradSpans(params: readonly Tensor[]): Tensor[] {
  const byArena = new Map<ParamArena, Set<number>>();
  const spans: Tensor[] = [];
  for (const p of new Set(params)) {
    const home = ParamArena.of(p);
    if (!home) {
      if (p.grad && !p.grad.disposed) spans.push(p.grad);
      continue;
    }
    let chosen = byArena.get(home.arena);
    if (!chosen) byArena.set(home.arena, (chosen = new Set()));
    chosen.add(home.index);
  }
  for (const [arena, chosen] of byArena)
    for (const [from, to] of arena.gradRuns(0, arena.params.length, (i) => chosen.has(i)))
      spans.push(arena.spanTensor('grad', from, to));
  return spans;
}
