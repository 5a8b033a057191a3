// Collating examples into a batch of tensors: token ids padded to the longest example (right or left)
// with an attention mask, labels per task (class ids, regression values, or −100-padded token targets),
// and image pixel values stacked to [B, 3, H, W].

import type { Backend } from '../backends/backend.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkTokenIds } from '../io/token-ids.js';
import { type Example, IGNORE_INDEX, type TaskKind } from './example.js';

export interface Batch {
  /** i32 [B, T]. */
  inputIds?: Tensor;
  /** i32 [B, T]: 1 for real tokens, 0 for padding. */
  attentionMask?: Tensor;
  /** i32 [B, T], when the examples have token type ids (sentence pairs). */
  tokenTypeIds?: Tensor;
  /** i32 [B] (classes) | f32 [B] (regression) | i32 [B, T] (causal LM, −100 at padding and masked tokens). */
  labels: Tensor;
  /** f32 [B, 3, H, W]. */
  pixelValues?: Tensor;
  /** Examples in the batch (B). */
  size: number;
  /** Real (non-padding) input tokens in the batch; 0 for images. */
  tokens: number;
}

export interface CollateOpts {
  kind: TaskKind;
  /** Id that fills padded positions of inputIds. */
  padId: number;
  /** Where padding goes (default 'right'). */
  paddingSide?: 'left' | 'right';
  backend?: Backend;
  /** [3, H, W] of pixelValues; default square (H = W = √(length / 3)). */
  imageShape?: [number, number, number];
  /**
   * Ids the model embeds (config vocab_size): when given, input ids, the pad id and causal-LM labels
   * outside it are errors naming the example, here on the host (a device kernel reports them late).
   */
  vocabSize?: number;
}

function name(ex: Example, i: number): string {
  return ex.source ?? `example ${i} of the batch`;
}

/** Collates examples into tensors (see Batch). Throws naming the example's source when one does not fit the task. */
export function collate(examples: Example[], opts: CollateOpts): Batch {
  const B = examples.length;
  if (B === 0) throw new RangeError('[collate] empty batch');
  const create = (data: Int32Array | Float32Array, shape: number[]) =>
    tensor(data, {
      dtype: data instanceof Int32Array ? 'i32' : 'f32',
      shape,
      ...(opts.backend ? { backend: opts.backend } : {}),
    });
  if (opts.kind === 'image-classification') return collateImages(examples, opts, create);

  if (!Number.isInteger(opts.padId)) throw new RangeError(`[collate] padId must be a token id, got ${opts.padId}`);
  const left = (opts.paddingSide ?? 'right') === 'left';
  let T = 0;
  let tokens = 0;
  examples.forEach((ex, i) => {
    if (!ex.inputIds) throw new Error(`[collate] ${name(ex, i)} has no inputIds (a ${opts.kind} batch is text)`);
    T = Math.max(T, ex.inputIds.length);
    tokens += ex.inputIds.length;
  });
  const withTypes = examples.every((ex) => ex.tokenTypeIds !== undefined);
  const ids = new Int32Array(B * T).fill(opts.padId);
  const mask = new Int32Array(B * T);
  const types = withTypes ? new Int32Array(B * T) : null;
  const lm = opts.kind === 'causal-lm';
  const tokenLabels = lm ? new Int32Array(B * T).fill(IGNORE_INDEX) : null;
  if (opts.vocabSize !== undefined) checkTokenIds([opts.padId], opts.vocabSize, '[collate] padId');
  examples.forEach((ex, i) => {
    const row = ex.inputIds!;
    if (opts.vocabSize !== undefined) checkTokenIds(row, opts.vocabSize, `[collate] ${name(ex, i)}: inputIds`);
    const at = i * T + (left ? T - row.length : 0);
    ids.set(row, at);
    mask.fill(1, at, at + row.length);
    if (types) {
      if (ex.tokenTypeIds!.length !== row.length)
        throw new Error(`[collate] ${name(ex, i)}: ${ex.tokenTypeIds!.length} tokenTypeIds for ${row.length} inputIds`);
      types.set(ex.tokenTypeIds!, at);
    }
    if (tokenLabels) {
      const lab = ex.labels ?? row;
      if (lab.length !== row.length)
        throw new Error(`[collate] ${name(ex, i)}: ${lab.length} labels for ${row.length} inputIds`);
      const v = opts.vocabSize;
      if (v !== undefined)
        lab.forEach((t, j) => {
          if (t !== IGNORE_INDEX && !(Number.isInteger(t) && t >= 0 && t < v))
            throw new RangeError(
              `[collate] ${name(ex, i)}: label ${t} at position ${j} is neither ${IGNORE_INDEX} nor a token id (vocab_size ${v})`,
            );
        });
      tokenLabels.set(lab, at);
    }
  });
  const shape = [B, T];
  return {
    inputIds: create(ids, shape),
    attentionMask: create(mask, shape),
    ...(types ? { tokenTypeIds: create(types, shape) } : {}),
    labels: tokenLabels ? create(tokenLabels, shape) : create(sequenceLabels(examples, opts.kind), [B]),
    size: B,
    tokens,
  };
}

/** Class ids (i32) or regression values (f32), one per example. */
function sequenceLabels(examples: Example[], kind: TaskKind): Int32Array | Float32Array {
  const out = kind === 'regression' ? new Float32Array(examples.length) : new Int32Array(examples.length);
  examples.forEach((ex, i) => {
    const v = ex.label;
    if (v === undefined || !Number.isFinite(v))
      throw new Error(`[collate] ${name(ex, i)} has no label (a ${kind} batch needs one per example)`);
    if (kind !== 'regression' && (!Number.isInteger(v) || v < 0))
      throw new Error(`[collate] ${name(ex, i)}: class label ${v} is not a class id`);
    out[i] = v;
  });
  return out;
}

function collateImages(
  examples: Example[],
  opts: CollateOpts,
  create: (data: Int32Array | Float32Array, shape: number[]) => Tensor,
): Batch {
  const first = examples[0]!.pixelValues;
  if (!first) throw new Error(`[collate] ${name(examples[0]!, 0)} has no pixelValues (an image batch)`);
  let shape = opts.imageShape;
  if (shape === undefined) {
    const side = Math.round(Math.sqrt(first.length / 3));
    if (3 * side * side !== first.length)
      throw new Error(`[collate] ${first.length} pixel values are not a square RGB image; pass imageShape [3, H, W]`);
    shape = [3, side, side];
  }
  const per = shape[0] * shape[1] * shape[2];
  const B = examples.length;
  const data = new Float32Array(B * per);
  examples.forEach((ex, i) => {
    const px = ex.pixelValues;
    if (!px) throw new Error(`[collate] ${name(ex, i)} has no pixelValues (an image batch)`);
    if (px.length !== per)
      throw new Error(
        `[collate] ${name(ex, i)}: ${px.length} pixel values, imageShape [${shape.join(', ')}] needs ${per}`,
      );
    data.set(px, i * per);
  });
  return {
    pixelValues: create(data, [B, ...shape]),
    labels: create(sequenceLabels(examples, 'image-classification'), [B]),
    size: B,
    tokens: 0,
  };
}
