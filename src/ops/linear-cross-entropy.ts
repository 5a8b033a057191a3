// Cross-entropy of a frozen LM head's logits without the [tokens, vocab] logits: the head's GEMM, the
// loss and its gradient run over chunks of rows in the forward (as Liger's fused linear cross-entropy
// does), keeping per row only the loss and d(loss)/d(hidden). The backward scales that saved gradient
// by each row's incoming gradient — exact, because a row's gradient is linear in its dloss and a frozen
// head gets none. A causal LM's [B·T, V] f32 logits, their bf16 copy and their gradient (Llama-1B at
// 8×1024: ≈ 3 GiB) become one [B·T, H] tensor in the hidden states' dtype.

import { isGradEnabled, noGrad, recordReads } from '../autograd/graph.js';
import type { CrossEntropyOpts } from '../backends/backend.js';
import { DTypeError, ShapeError, fmtShape } from '../tensor/errors.js';
import { scope } from '../tensor/scope.js';
import { numel } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { mul } from './elementwise.js';
import { fused } from './kernels.js';
import { linear, matmul } from './matmul.js';
import { contiguous, reshape, slice } from './movement.js';
import { alloc, expectDType, floatDType, sameBackend, statsDType } from './util.js';

export interface LinearCrossEntropyOptions {
  /** Target value whose rows contribute nothing (torch's default −100). */
  ignoreIndex?: number;
  /** ε in (1 − ε)·onehot + ε/V. */
  labelSmoothing?: number;
  /** Rows per chunk; default: as many as keep one chunk's logits near 2^24 elements (64 MiB in f32). */
  chunkRows?: number;
}

/**
 * Per-row cross-entropy of hidden·weightᵀ against targets, as crossEntropy(linear(hidden, weight),
 * targets, { reduction: 'none' }) computes it: hidden [..., H], weight [V, H] (frozen: it may not
 * require grad), targets i32 [...] (hidden's shape without H) → loss [...] (f32, or f64 on f64 hidden).
 */
export function linearCrossEntropy(
  hidden: Tensor,
  weight: Tensor,
  targets: Tensor,
  opts: LinearCrossEntropyOptions = {},
): Tensor {
  floatDType('linearCrossEntropy', hidden);
  expectDType('linearCrossEntropy', targets, 'i32', 'Targets');
  if (weight.requiresGrad)
    throw new DTypeError(
      `[linearCrossEntropy] The head weight ${fmtShape(weight.shape)} requires grad; the fused loss is for a frozen head (use linear and crossEntropy)`,
    );
  const backend = sameBackend('linearCrossEntropy', hidden, weight, targets);
  const h = hidden.shape[hidden.rank - 1]!;
  const lead = hidden.shape.slice(0, -1);
  if (weight.rank !== 2 || weight.shape[1] !== h)
    throw new ShapeError(
      `[linearCrossEntropy] Weight ${fmtShape(weight.shape)} does not fit hidden ${fmtShape(hidden.shape)} (expected [V, ${h}])`,
    );
  if (targets.rank !== lead.length || targets.shape.some((d, i) => d !== lead[i]))
    throw new ShapeError(
      `[linearCrossEntropy] Targets ${fmtShape(targets.shape)} do not match hidden ${fmtShape(hidden.shape)} without its last axis`,
    );
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new Error(`[linearCrossEntropy] labelSmoothing = ${eps} must be in [0, 1]`);
  const kopts: CrossEntropyOpts = { ignoreIndex: opts.ignoreIndex ?? -100, labelSmoothing: eps };
  const v = weight.shape[0]!;
  const n = numel(lead);
  if (opts.chunkRows !== undefined && !(Number.isInteger(opts.chunkRows) && opts.chunkRows >= 1))
    throw new Error(`[linearCrossEntropy] chunkRows = ${opts.chunkRows} must be an integer ≥ 1`);
  const chunk = Math.max(1, Math.min(n, opts.chunkRows ?? Math.floor(2 ** 24 / Math.max(v, 1))));
  const wants = hidden.requiresGrad && isGradEnabled();
  const ld = statsDType(hidden);
  const loss = alloc(backend, [n], ld);
  const dh = wants ? alloc(backend, [n, h], hidden.dtype) : null;
  noGrad(() =>
    scope(() => {
      const x = reshape(contiguous(hidden), [n, h]);
      const t = reshape(contiguous(targets), [n]);
      const k = fused(backend);
      // Each row's loss enters with weight 1: the backward scales the saved gradient by the real dloss.
      const ones = dh ? alloc(backend, [chunk], ld) : null;
      if (ones) backend.fill(ones.view('linearCrossEntropy'), 1);
      for (let r0 = 0; r0 < n; r0 += chunk) {
        scope(() => {
          const rows = Math.min(chunk, n - r0);
          const xc = slice(x, 0, r0, r0 + rows);
          const tc = contiguous(slice(t, 0, r0, r0 + rows));
          const logits = linear(xc, weight); // [rows, V], bf16 under bf16 activations
          const lse = alloc(backend, [rows], ld);
          const lc = slice(loss, 0, r0, r0 + rows);
          k.crossEntropy(
            lc.view('linearCrossEntropy'),
            lse.view('linearCrossEntropy'),
            logits.view('linearCrossEntropy'),
            tc.view('linearCrossEntropy'),
            kopts,
          );
          if (!dh || !ones) return;
          const dlogits = alloc(backend, [rows, v], logits.dtype);
          k.crossEntropyBackward(
            dlogits.view('linearCrossEntropy'),
            slice(ones, 0, 0, rows).view('linearCrossEntropy'),
            logits.view('linearCrossEntropy'),
            lse.view('linearCrossEntropy'),
            tc.view('linearCrossEntropy'),
            kopts,
          );
          // d(loss_row)/d(hidden_row) = dlogits_row · W, into this chunk's rows of dh.
          const g = matmul(dlogits, weight); // [rows, V]·[V, H]
          backend.copy(slice(dh, 0, r0, r0 + rows).view('linearCrossEntropy'), g.view('linearCrossEntropy'));
        });
      }
    }),
  );
  const out = reshape(loss, lead);
  loss.dispose();
  if (!dh) return out;
  return recordReads(
    'linearCrossEntropy',
    out,
    [hidden],
    (dy) => scope(() => [reshape(mul(dh, reshape(dy, [n, 1])), hidden.shape)]),
    [],
    [dh],
  );
}
