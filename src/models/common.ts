// Pieces every family uses: activations by their HF names, the key-padding mask, token pooling for
// classification heads, f32 logits, and a generator that skips random initialisation when weights will
// be loaded.

import type { UnaryGradOp, UnaryOp } from '../backends/backend.js';
import { full } from '../tensor/creation.js';
import { ShapeError, fmtShape } from '../tensor/errors.js';
import { Generator } from '../tensor/random.js';
import { scope } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import * as ops from '../ops/index.js';
import { Linear, type LinearLike } from '../nn/layers.js';
import type { ConfigReader } from './config-utils.js';
import type { LossTargets } from './pretrained.js';
import { positionRange } from './positions.js';

export type Activation = (x: Tensor) => Tensor;

const ACTIVATIONS: Record<string, Activation> = {
  gelu: ops.gelu,
  gelu_new: ops.geluTanh,
  gelu_pytorch_tanh: ops.geluTanh,
  gelu_fast: ops.geluTanh,
  quick_gelu: (x) => scope(() => ops.mul(x, ops.sigmoid(ops.mulScalar(x, 1.702)))),
  relu: ops.relu,
  silu: ops.silu,
  swish: ops.silu,
  tanh: ops.tanh,
  sigmoid: ops.sigmoid,
};

/** The activations with a fused derivative kernel, by function, for gatedMul. */
const FUSED_ACTIVATION = new Map<Activation, UnaryOp & UnaryGradOp>([
  [ops.silu, 'silu'],
  [ops.gelu, 'gelu'],
  [ops.geluTanh, 'gelu_tanh'],
  [ops.relu, 'relu'],
  [ops.tanh, 'tanh'],
  [ops.sigmoid, 'sigmoid'],
]);

/** act(gate) ⊙ up, saving only gate and up where act has a fused derivative (ops.gatedActivation). */
export function gatedMul(act: Activation, gate: Tensor, up: Tensor): Tensor {
  const op = FUSED_ACTIVATION.get(act);
  return op ? ops.gatedActivation(op, gate, up) : ops.mul(act(gate), up);
}

/**
 * A head's output as the model returns it: f32 when the backend kept activations in bf16 (as HF's
 * models upcast logits for the loss and for sampling), else as computed (f32, or f64 in gradient checks).
 */
export function floatLogits(t: Tensor): Tensor {
  return t.dtype === 'bf16' ? ops.cast(t, 'f32') : t;
}

/**
 * A causal LM's output for hidden states [B, T, C] through its head: the logits (f32, floatLogits), or
 * with `loss` the per-position cross-entropy [B, T] — through ops.linearCrossEntropy (row chunks, no
 * [B·T, V] logits) when the head is a plain Linear with a frozen weight and no bias (an adapted head
 * computes its logits).
 */
export function lmOutput(head: LinearLike, hidden: Tensor, loss: LossTargets | undefined): Tensor {
  if (!loss) return floatLogits(head.forward(hidden));
  const opts = { ignoreIndex: loss.ignoreIndex ?? -100, labelSmoothing: loss.labelSmoothing ?? 0 };
  if (head instanceof Linear && !head.bias && !head.weight.requiresGrad)
    return ops.linearCrossEntropy(hidden, head.weightOutIn(), loss.targets, opts);
  return ops.crossEntropy(floatLogits(head.forward(hidden)), loss.targets, { ...opts, reduction: 'none' });
}

/** The activation a config field names (transformers' ACT2FN keys); errors name the field. */
export function activation(cfg: ConfigReader, field: string, def?: string): Activation {
  const name = cfg.str(field, def);
  const fn = ACTIVATIONS[name];
  if (!fn)
    cfg.fail(
      field,
      `is ${JSON.stringify(name)}, which is not supported (supported: ${Object.keys(ACTIVATIONS).join(', ')})`,
    );
  return fn;
}

/**
 * bool [B, Tk] key mask (true = token) from HF's attention_mask (any int or bool dtype), or null;
 * contiguous, so the attention of every layer reads it as it is (a decoder passes a view of a longer mask).
 */
export function keyMask(attentionMask: Tensor | undefined): Tensor | null {
  if (!attentionMask) return null;
  if (attentionMask.rank !== 2)
    throw new ShapeError(`[model] attentionMask must be [B, T], got ${fmtShape(attentionMask.shape)}`);
  return attentionMask.dtype === 'bool' ? ops.contiguous(attentionMask) : ops.ne(attentionMask, 0);
}

/** Checks that input ids are i32 [B, T]; returns [B, T]. */
export function idsShape(ids: Tensor | undefined, model: string): [number, number] {
  if (!ids) throw new Error(`[${model}] forward needs inputIds`);
  if (ids.rank !== 2 || ids.dtype !== 'i32')
    throw new ShapeError(`[${model}] inputIds must be i32 [B, T], got ${ids.dtype} ${fmtShape(ids.shape)}`);
  return ids.shape as [number, number];
}

/** Row b of hidden [B, T, C] at position index[b], for an i32 [B] index on the device: [B, C] (differentiable through gather). */
export function poolAt(hidden: Tensor, index: Tensor): Tensor {
  const [b, , c] = hidden.shape as [number, number, number];
  return scope(() => {
    const idx = ops.contiguous(ops.expand(ops.reshape(index, [b, 1, 1]), [b, 1, c])); // (B, 1, C)
    return ops.reshape(ops.gather(hidden, 1, idx), [b, c]); // (B, C)
  });
}

/** The first token of each row: hidden [B, T, C] → [B, C] (BERT's pooler, RoBERTa's and ViT's heads). */
export function firstToken(hidden: Tensor): Tensor {
  const [b, , c] = hidden.shape as [number, number, number];
  return scope(() => ops.reshape(ops.slice(hidden, 1, 0, 1), [b, c]));
}

/**
 * transformers 5's sequence-classification pooling for decoders: per row, the rightmost position whose
 * id is not pad_token_id (0 when every token is padding); the last position when pad_token_id is unset,
 * which is an error for batches larger than 1. An i32 [B] tensor computed on the ids' backend, as
 * max over T of where(id ≠ pad, position, 0), so nothing is read back to the host.
 */
export function lastNonPadIndex(ids: Tensor, padTokenId: number | null, model: string): Tensor {
  const [b, t] = ids.shape as [number, number];
  const backend = ids.backend;
  if (padTokenId === null) {
    if (b !== 1)
      throw new Error(`[${model}] Cannot handle batch sizes > 1 if no padding token is defined (config pad_token_id)`);
    return full([1], t - 1, { dtype: 'i32', backend });
  }
  return scope(() => {
    const steps = ops.reshape(positionRange(backend, 0, t, 'f32'), [1, t]);
    const candidates = ops.where(ops.ne(ids, padTokenId), steps, full([], 0, { backend })); // (B, T)
    return ops.cast(ops.amax(candidates, 1), 'i32'); // (B)
  });
}

/** A generator whose draws are zeros: builds a model skeleton fast when every weight will be loaded. */
export class NoInitGenerator extends Generator {
  override uniform(n: number): Float32Array {
    return new Float32Array(n);
  }

  override normal(n: number): Float32Array {
    return new Float32Array(n);
  }
}
