// Scaled dot-product attention over the [B, T, H, D] layout that projections produce (no transposes),
// with causal, sliding-window and key-padding masks, grouped-query heads and dropout of the attention
// probabilities, on a fused kernel that saves only the per-row log-sum-exp for its backward. The
// dropout mask comes from the Philox stream like ops.dropout's, so the backward regenerates it and
// activation checkpointing replays it.

import { record } from '../autograd/graph.js';
import type { AttentionOpts } from '../backends/backend.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { dropoutStream } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { fused } from './kernels.js';
import { contiguous } from './movement.js';
import { alloc, allocLike, expectDType, floatDType, sameBackend, statsDType } from './util.js';

export interface AttentionOptions {
  /** Causal mask, aligned so the last query sees every key (generation with a KV cache). */
  causal?: boolean;
  /** Sliding window (Mistral): a query sees at most this many keys back, itself included. */
  window?: number;
  /** bool [B, Tk]: true = real token, false = padding (HF's attention_mask). */
  keyMask?: Tensor | null;
  /** Defaults to 1/√D. */
  scale?: number;
  /** Dropout probability of the attention probabilities (HF's attn_pdrop), in [0, 1); default 0. */
  dropout?: number;
  /** As ops.dropout's `training`: dropout applies only when true (the default). */
  training?: boolean;
  /** Allow bf16 rounding inside the kernel (AttentionOpts.lowPrecision): models with bf16 weights set it. */
  lowPrecision?: boolean;
}

/**
 * dropout(softmax(q·kᵀ·scale + mask))·v per head. q [B, Tq, Hq, D], k and v [B, Tk, Hkv, D] with Hq
 * a multiple of Hkv; returns [B, Tq, Hq, D]. Only the head axis must be contiguous. With dropout > 0
 * and training, B·Hq·Tq·Tk counters are drawn from the dropout stream; otherwise none are.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  floatDType('attention', q, k, v);
  const backend = sameBackend('attention', q, k, v, ...(opts.keyMask ? [opts.keyMask] : []));
  const bad = () =>
    new ShapeError(
      `[attention] Shapes q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} do not agree (expected q [B, Tq, Hq, D], k/v [B, Tk, Hkv, D], Hq a multiple of Hkv)`,
    );
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) throw bad();
  const [b, tq, hq, d] = q.shape as [number, number, number, number];
  const [bk, tk, hkv, dk] = k.shape as [number, number, number, number];
  if (bk !== b || dk !== d || v.shape.some((s, i) => s !== k.shape[i]) || hkv === 0 || hq % hkv !== 0) throw bad();
  const p = opts.dropout ?? 0;
  if (!(p >= 0 && p < 1)) throw new Error(`[attention] dropout = ${p} must be in [0, 1)`);
  let mask: Tensor | null = null;
  if (opts.keyMask) {
    expectDType('attention', opts.keyMask, 'bool', 'keyMask');
    if (opts.keyMask.rank !== 2 || opts.keyMask.shape[0] !== b || opts.keyMask.shape[1] !== tk) {
      throw new ShapeError(`[attention] keyMask ${fmtShape(opts.keyMask.shape)} must be [B, Tk] = (${b}, ${tk})`);
    }
    mask = contiguous(opts.keyMask);
  }
  const kernelOpts: AttentionOpts = {
    scale: opts.scale ?? 1 / Math.sqrt(d),
    causal: opts.causal ?? false,
    window: opts.window ?? 0,
    keyMask: mask ? mask.view('attention') : null,
    dropout: p > 0 && (opts.training ?? true) ? { p, ...dropoutStream.take(b * hq * tq * tk) } : null,
    ...(opts.lowPrecision ? { lowPrecision: true } : {}),
  };
  const headContiguous = (t: Tensor) => (t.strides[3] === 1 ? t : contiguous(t));
  const [qc, kc, vc] = [headContiguous(q), headContiguous(k), headContiguous(v)];
  const out = allocLike(q, [b, tq, hq, d]);
  const lse = alloc(backend, [b, hq, tq], statsDType(q));
  fused(backend).attention(
    out.view('attention'),
    lse.view('attention'),
    qc.view('attention'),
    kc.view('attention'),
    vc.view('attention'),
    kernelOpts,
  );
  const copies = [
    qc !== q ? qc : null,
    kc !== k ? kc : null,
    vc !== v ? vc : null,
    mask !== opts.keyMask ? mask : null,
  ];
  return record(
    'attention',
    out,
    [q, k, v],
    (dy) => {
      const g = contiguous(dy);
      const dq = allocLike(q, q.shape);
      const dkv = [allocLike(k, k.shape), allocLike(v, v.shape)];
      const view = (t: Tensor) => t.view('attention backward');
      fused(backend).attentionBackward(
        view(dq),
        view(dkv[0]!),
        view(dkv[1]!),
        view(g),
        view(qc),
        view(kc),
        view(vc),
        view(out),
        view(lse),
        {
          ...kernelOpts,
          keyMask: mask ? view(mask) : null,
        },
      );
      if (g !== dy) g.dispose();
      return [dq, dkv[0]!, dkv[1]!];
    },
    [lse, ...copies.filter((t): t is Tensor => t !== null)],
    mask && mask === opts.keyMask ? [mask] : [],
  );
}
