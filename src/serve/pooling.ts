// Sentence embeddings from an encoder's last hidden states (POST /v1/embeddings). The pooling is the one
// the model's sentence-transformers files name (1_Pooling/config.json: CLS or mean); without them it is
// the mean over the real tokens, as sentence-transformers pools a plain transformers checkpoint. The
// vector is then scaled to unit length, as OpenAI's embeddings are and as TEI and vLLM answer
// /v1/embeddings by default (so a dot product is the cosine similarity).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from '../io/json.js';

export type Pooling = 'mean' | 'cls';

/** The pooling of a model directory: its 1_Pooling/config.json's, else mean. */
export function poolingOf(modelDir: string): Pooling {
  const file = join(modelDir, '1_Pooling', 'config.json');
  if (!existsSync(file)) return 'mean';
  const c = readJsonFile(file) as Record<string, unknown>;
  if (c['pooling_mode_cls_token'] === true) return 'cls';
  if (c['pooling_mode_mean_tokens'] === true) return 'mean';
  const named = Object.keys(c).filter((k) => k.startsWith('pooling_mode_') && c[k] === true);
  throw new Error(`${file}: pooling ${named.join(', ') || 'none'} is not supported (CLS or mean tokens)`);
}

/**
 * The weight of each position of rows padded to `width` ([B, width], row-major): 1/length on a row's
 * real tokens for mean pooling, 1 on its first token for CLS; a weighted sum over positions pools.
 */
export function poolingWeights(lengths: readonly number[], width: number, pooling: Pooling): Float32Array {
  const w = new Float32Array(lengths.length * width);
  lengths.forEach((n, r) => {
    if (pooling === 'cls') w[r * width] = 1;
    else w.fill(1 / n, r * width, r * width + n);
  });
  return w;
}

/** `v` scaled to unit length (in float64; a zero vector stays zero). */
export function unitLength(v: Float32Array): Float32Array {
  let sq = 0;
  for (const x of v) sq += x * x;
  const norm = Math.sqrt(sq);
  return norm > 0 ? Float32Array.from(v, (x) => x / norm) : v;
}
