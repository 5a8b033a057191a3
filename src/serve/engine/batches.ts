// Classification and embedding batches: inputs of several requests (each on its own adapter) stacked into
// one forward, read back asynchronously. Texts are right-padded with their attention mask (and BERT's
// token types); images of one size are stacked. (Moved from AdapterServer's #classifyInputs and
// #classifyBatch.) An embedding is the pooled last hidden state of the model's trunk (pooling.ts: mean
// over the real tokens, or the first token), scaled to unit length.

import { noGrad } from '../../autograd/graph.js';
import type { Module } from '../../nn/module.js';
import * as ops from '../../ops/index.js';
import type { ModelInputs, PreTrainedModel } from '../../models/pretrained.js';
import { tensor } from '../../tensor/creation.js';
import { scope } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { type Pooling, poolingWeights, unitLength } from '../pooling.js';

export interface TextOrImage {
  ids: number[];
  typeIds: number[];
  pixels?: Float32Array;
  size?: [number, number];
}

/** Requests that can share a batch: texts together, images of one size together. */
export function batchKey(r: TextOrImage): string {
  return r.pixels && r.size ? `image ${r.size.join('x')}` : 'text';
}

/** The batch's model inputs: stacked pixel values, or right-padded ids with their mask (and BERT's types). */
export function batchInputs(model: PreTrainedModel, rows: readonly TextOrImage[], padId: number): ModelInputs {
  const backend = model.parameters()[0]!.backend;
  const first = rows[0]!;
  if (first.pixels && first.size) {
    const one = first.pixels.length;
    const all = new Float32Array(one * rows.length);
    rows.forEach((j, i) => all.set(j.pixels!, i * one));
    return { pixelValues: tensor(all, { shape: [rows.length, 3, ...first.size], backend }) };
  }
  const width = Math.max(...rows.map((r) => r.ids.length));
  const padded = (pick: (r: TextOrImage) => number[], fill: number) =>
    Int32Array.from(rows.flatMap((r) => [...pick(r), ...new Array<number>(width - pick(r).length).fill(fill)]));
  const i32 = (values: Int32Array) => tensor(values, { dtype: 'i32', shape: [rows.length, width], backend });
  return {
    inputIds: i32(padded((r) => r.ids, padId)),
    attentionMask: i32(padded((r) => r.ids.map(() => 1), 0)),
    // Only BERT takes token types (RoBERTa has one type; GPT-2 would add them to its embeddings).
    ...(model.modelType === 'bert' ? { tokenTypeIds: i32(padded((r) => r.typeIds, 0)) } : {}),
  };
}

type Around = <T>(names: readonly string[], fn: () => T) => T;

/** Each row's logits ([numLabels] per row), the rows on their adapters. */
export async function classifyBatch(
  model: PreTrainedModel,
  rows: readonly (TextOrImage & { adapter: string })[],
  padId: number,
  around: Around,
): Promise<number[][]> {
  const out = noGrad(() =>
    scope(() =>
      around(
        rows.map((r) => r.adapter),
        () => model.forward(batchInputs(model, rows, padId)),
      ),
    ),
  );
  const read = out.data();
  out.dispose();
  const logits = (await read) as Float32Array;
  const n = logits.length / rows.length;
  return rows.map((_, i) => Array.from(logits.subarray(i * n, (i + 1) * n)));
}

/** The module computing the last hidden states (B, T, C) of each family: the model without its head. */
export function trunkOf(model: PreTrainedModel): { forward(inputs: ModelInputs): Tensor } {
  const field = { gpt2: 'transformer', bert: 'bert', roberta: 'roberta' }[model.modelType] ?? 'model';
  const trunk = (model as unknown as Record<string, Module | undefined>)[field] as
    { forward(inputs: ModelInputs): Tensor } | undefined;
  if (model.modelType === 'vit' || !trunk || typeof trunk.forward !== 'function')
    throw new Error(`${model.architecture} has no text trunk to embed with`);
  return trunk;
}

/** Each row's embedding: the pooled last hidden state, at unit length. */
export async function embedBatch(
  model: PreTrainedModel,
  rows: readonly (TextOrImage & { adapter: string })[],
  padId: number,
  pooling: Pooling,
  around: Around,
): Promise<Float32Array[]> {
  const trunk = trunkOf(model);
  const width = Math.max(...rows.map((r) => r.ids.length));
  const weights = poolingWeights(
    rows.map((r) => r.ids.length),
    width,
    pooling,
  );
  const out = noGrad(() =>
    scope(() => {
      const hidden = around(
        rows.map((r) => r.adapter),
        () => trunk.forward(batchInputs(model, rows, padId)),
      ); // (B, T, C)
      const w = tensor(weights, { shape: [rows.length, 1, width], backend: hidden.backend });
      return ops.matmul(w, hidden); // (B, 1, C): the weighted sum over positions
    }),
  );
  const read = out.data();
  out.dispose();
  const pooled = (await read) as Float32Array;
  const c = pooled.length / rows.length;
  return rows.map((_, i) => unitLength(pooled.slice(i * c, (i + 1) * c)));
}
