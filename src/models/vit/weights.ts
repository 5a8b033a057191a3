// ViT checkpoint keys: the "vit." prefix and transformers 4.x names (vit.encoder.layer.N.attention.attention.query)
// ↔ the 5.x tree built here (vit.layers.N.attention.q_proj). transformers 5.17's save_pretrained still writes
// 4.x names (PEFT adapters use 5.x), so loading accepts both and saving writes 4.x, as transformers does.

import type { WeightSpec } from '../pretrained.js';

/** 4.x → 5.x renames of the modules inside one encoder layer (paths relative to the layer). */
export const VIT_4X_LAYER_RENAMES: readonly (readonly [string, string])[] = [
  ['attention.attention.query', 'attention.q_proj'],
  ['attention.attention.key', 'attention.k_proj'],
  ['attention.attention.value', 'attention.v_proj'],
  ['attention.output.dense', 'attention.o_proj'],
  ['intermediate.dense', 'mlp.fc1'],
  ['output.dense', 'mlp.fc2'],
];

/**
 * A transformers 4.x ViT name (parameter key, module path, or a PEFT key such as
 * "base_model.model.vit.encoder.layer.0.attention.attention.query.vera_lambda_b") in 5.x form;
 * names without "encoder.layer.N." are returned unchanged.
 */
export function vitKeyFrom4x(key: string): string {
  const m = /(^|\.)encoder\.layer\.(\d+)(\.|$)/.exec(key);
  if (!m) return key;
  const head = key.slice(0, m.index) + m[1];
  const rest = key.slice(m.index + m[0].length);
  for (const [from, to] of VIT_4X_LAYER_RENAMES) {
    if (rest === from || rest.startsWith(`${from}.`)) return `${head}layers.${m[2]}.${to}${rest.slice(from.length)}`;
  }
  return `${head}layers.${m[2]}${m[3]}${rest}`;
}

/** The inverse of vitKeyFrom4x: a 5.x name in the 4.x layout that transformers' save_pretrained writes. */
export function vitKeyTo4x(key: string): string {
  const m = /(^|\.)layers\.(\d+)(\.|$)/.exec(key);
  if (!m) return key;
  const head = key.slice(0, m.index) + m[1];
  const rest = key.slice(m.index + m[0].length);
  for (const [to, from] of VIT_4X_LAYER_RENAMES) {
    if (rest === from || rest.startsWith(`${from}.`))
      return `${head}encoder.layer.${m[2]}.${to}${rest.slice(from.length)}`;
  }
  return `${head}encoder.layer.${m[2]}${m[3]}${rest}`;
}

export const VIT_WEIGHTS: WeightSpec = {
  basePrefix: 'vit',
  ignore: [],
  rename: vitKeyFrom4x,
  saveAs: vitKeyTo4x,
};
