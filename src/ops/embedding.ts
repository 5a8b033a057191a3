// Embedding lookup (a row gather by i32 ids) with its scatter-add backward; bf16 tables are read as stored.

import { record } from '../autograd/graph.js';
import { zerosLike } from '../tensor/creation.js';
import { DTypeError, ShapeError, fmtShape } from '../tensor/errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { contiguous } from './movement.js';
import { allocLike, expectDType, floatDType, sameBackend } from './util.js';

/**
 * weight[ids]: ids i32 of any shape, weight [V, C] → [...ids.shape, C]. A bf16 weight (a frozen table kept
 * in half the memory) gives f32 rows, widened exactly (bf16 rows, as stored, on a backend with bf16
 * activations); it cannot require grad.
 */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  expectDType('embedding', ids, 'i32', 'Ids');
  if (weight.dtype === 'bf16') {
    if (weight.requiresGrad)
      throw new DTypeError(
        `[embedding] The bf16 weight ${fmtShape(weight.shape)} requires grad; bf16 tables are frozen (train an f32 copy)`,
      );
  } else floatDType('embedding', weight);
  if (weight.rank !== 2) throw new ShapeError(`[embedding] Weight must be [V, C], got ${fmtShape(weight.shape)}`);
  const backend = sameBackend('embedding', ids, weight);
  const ic = contiguous(ids);
  const wc = contiguous(weight);
  const rows = weight.dtype === 'bf16' ? (backend.activationDType ?? 'f32') : weight.dtype;
  const out = allocLike(weight, [...ids.shape, weight.shape[1]!], rows);
  backend.embedding(out.view('embedding'), wc.view('embedding'), ic.view('embedding'));
  if (wc !== weight) wc.dispose();
  return record(
    'embedding',
    out,
    [weight],
    (dy) => {
      const g = contiguous(dy);
      const dw = zerosLike(weight);
      backend.embeddingBackward(dw.view('embedding'), g.view('embedding'), ic.view('embedding'));
      if (g !== dy) g.dispose();
      return [dw];
    },
    ic === ids ? [] : [ic],
    ic === ids ? [ids] : [],
  );
}
