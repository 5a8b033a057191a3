// What text inputs need from a model and its tokenizer: the padding id and the position limit, as
// training, evaluation and serving all pad and cut them, and the vocabulary their ids must lie in.

import type { Tokenizer } from '../io/tokenizer.js';
import type { HFConfig } from './config-utils.js';

/** Padding id: the model's pad_token_id, else the tokenizer's pad (or EOS) token, else 0. */
export function padIdFor(config: HFConfig, tokenizer: Tokenizer | null): number {
  const own = config['pad_token_id'];
  if (typeof own === 'number' && Number.isInteger(own) && own >= 0) return own;
  return tokenizer?.padTokenId ?? tokenizer?.eosTokenId ?? 0;
}

/** The model's position limit (RoBERTa reserves two), capped by the tokenizer's model_max_length. */
export function defaultMaxLength(config: HFConfig, tokenizer: Tokenizer | null): number | undefined {
  const raw = config['n_positions'] ?? config['max_position_embeddings'];
  let n = typeof raw === 'number' ? raw : undefined;
  if (n !== undefined && config['model_type'] === 'roberta') n -= 2;
  const tok = tokenizer?.config['model_max_length'];
  if (typeof tok === 'number' && tok > 0 && tok < 1e9) n = n === undefined ? tok : Math.min(n, tok);
  return n;
}

/** The number of token ids the model embeds (config vocab_size), or undefined when the config has none. */
export function vocabSizeOf(config: HFConfig): number | undefined {
  const v = config['vocab_size'];
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}
