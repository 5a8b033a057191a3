// Tokenizer helpers the loaders share: ids without special tokens, the special tokens the tokenizer's
// post-processor puts before a single sequence (BOS for Llama, [CLS] for BERT, none for GPT-2), and
// tokenizing long documents in line-aligned chunks.

import type { Tokenizer } from '../io/tokenizer.js';

/** Token ids of `text` alone (no special tokens). */
export function rawIds(tok: Tokenizer, text: string): number[] {
  return text.length === 0 ? [] : tok.encode(text, { addSpecialTokens: false }).ids;
}

const prefixCache = new WeakMap<Tokenizer, number[]>();

/**
 * The ids the post-processor adds before a single sequence, found by encoding a probe with and without
 * special tokens: e.g. [bos] for Llama, [] for GPT-2. Causal and instruction data start with them, as
 * the model saw at pretraining; the suffix (BERT's [SEP], T5's </s>) is not used there.
 */
export function specialPrefix(tok: Tokenizer): number[] {
  let p = prefixCache.get(tok);
  if (p === undefined) {
    const probe = 'a';
    const full = tok.encode(probe).ids;
    const raw = rawIds(tok, probe);
    p = [];
    for (let at = 0; at + raw.length <= full.length; at++) {
      if (raw.every((id, k) => full[at + k] === id)) {
        p = full.slice(0, at);
        break;
      }
    }
    prefixCache.set(tok, p);
  }
  return p;
}

/** Characters per tokenizer call for long documents: big enough to amortise, small enough for the regex engine. */
const CHUNK_CHARS = 1 << 16;

/**
 * Ids of a possibly huge text (no special tokens), tokenized in chunks that end at line breaks so that
 * only chunk boundaries — at most one per 64 KiB, always after a newline — could tokenize differently
 * from the text in one piece.
 */
export function rawIdsLong(tok: Tokenizer, text: string): number[] {
  if (text.length <= CHUNK_CHARS) return rawIds(tok, text);
  const out: number[] = [];
  let pos = 0;
  while (pos < text.length) {
    let end = Math.min(text.length, pos + CHUNK_CHARS);
    if (end < text.length) {
      const nl = text.lastIndexOf('\n', end - 1);
      if (nl >= pos) end = nl + 1;
    }
    for (const id of rawIds(tok, text.slice(pos, end))) out.push(id);
    pos = end;
  }
  return out;
}
