// Byte-level BPE training as GPT-2 does it (its pre-tokenization regex, bytes mapped to printable
// characters, merges by pair frequency with deterministic ties) and export as a standard tokenizer.json.
// Words are counted once; merges then run over word types with a pair → words index and a lazy max-heap.

import type { TokenizerJson } from '../io/tokenizers/convert.js';

/** GPT-2's pre-tokenization pattern (the one HF's ByteLevel pre-tokenizer uses with use_regex). */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to U+0100 onwards. */
export function bytesToUnicode(): string[] {
  const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(printable(b) ? b : 256 + n++));
  return out;
}

const BYTE_CHARS = bytesToUnicode();

/** Counts pre-token types over texts (each text is pre-tokenized on its own: no pre-token spans two). */
export function countWords(texts: Iterable<string>, counts: Map<string, number> = new Map()): Map<string, number> {
  for (const text of texts) {
    for (const m of text.matchAll(GPT2_PATTERN)) {
      const w = m[0];
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  return counts;
}

export interface BpeOptions {
  /** Final vocabulary size, special tokens included (256 bytes + merges + specials). */
  vocabSize: number;
  /** Added after the merged tokens, in order (GPT-2: "<|endoftext|>" as the last id). */
  specialTokens?: readonly string[];
  /** Stop early when the best pair occurs fewer times than this (default 2). */
  minFrequency?: number;
  onProgress?: (merges: number, total: number) => void;
}

export interface BpeModel {
  /** token → id: ids 0..255 are the bytes (in byte order), then merges in order, then specials. */
  vocab: Map<string, number>;
  /** Merges in rank order, as [left, right] token strings. */
  merges: [string, string][];
  specialTokens: string[];
}

/** Max-heap of (count, left id, right id): larger count first, then smaller left, then smaller right id. */
class PairHeap {
  #c: number[] = [];
  #a: number[] = [];
  #b: number[] = [];

  get size(): number {
    return this.#c.length;
  }

  #before(i: number, j: number): boolean {
    const c = this.#c;
    if (c[i] !== c[j]) return c[i]! > c[j]!;
    if (this.#a[i] !== this.#a[j]) return this.#a[i]! < this.#a[j]!;
    return this.#b[i]! < this.#b[j]!;
  }

  #swap(i: number, j: number): void {
    for (const arr of [this.#c, this.#a, this.#b]) [arr[i], arr[j]] = [arr[j]!, arr[i]!];
  }

  push(count: number, a: number, b: number): void {
    this.#c.push(count);
    this.#a.push(a);
    this.#b.push(b);
    let i = this.#c.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  pop(): [number, number, number] {
    const top: [number, number, number] = [this.#c[0]!, this.#a[0]!, this.#b[0]!];
    const last = this.#c.length - 1;
    this.#swap(0, last);
    this.#c.pop();
    this.#a.pop();
    this.#b.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < last && this.#before(l, m)) m = l;
      if (r < last && this.#before(r, m)) m = r;
      if (m === i) break;
      this.#swap(i, m);
      i = m;
    }
    return top;
  }
}

/**
 * Learns merges from pre-token counts (raw strings, as countWords returns them). Each step merges the
 * most frequent adjacent pair over all words (weighted by word count); ties go to the pair whose
 * left, then right, token was created first, so the result depends only on the counts.
 */
export function trainBpe(wordCounts: ReadonlyMap<string, number>, opts: BpeOptions): BpeModel {
  const specials = [...(opts.specialTokens ?? [])];
  const numMerges = opts.vocabSize - 256 - specials.length;
  if (numMerges < 0)
    throw new Error(`[bpe] vocabSize ${opts.vocabSize} is below 256 bytes + ${specials.length} specials`);
  const minFreq = opts.minFrequency ?? 2;
  const tokens: string[] = [...BYTE_CHARS];
  // Word types in a fixed order (sorted), so ids and iteration order never depend on Map insertion.
  const types = [...wordCounts.keys()].sort();
  const freq = new Float64Array(types.length);
  const words: number[][] = types.map((w, i) => {
    freq[i] = wordCounts.get(w)!;
    return [...Buffer.from(w, 'utf8')];
  });
  const key = (a: number, b: number) => a * 65536 + b;
  const counts = new Map<number, number>();
  const where = new Map<number, number[]>(); // pair → word ids that contained it (may hold stale ids)
  words.forEach((w, i) => {
    for (let j = 0; j + 1 < w.length; j++) {
      const k = key(w[j]!, w[j + 1]!);
      counts.set(k, (counts.get(k) ?? 0) + freq[i]!);
      let list = where.get(k);
      if (!list) where.set(k, (list = []));
      if (list[list.length - 1] !== i) list.push(i);
    }
  });
  const heap = new PairHeap();
  for (const [k, c] of counts) heap.push(c, Math.floor(k / 65536), k % 65536);

  const merges: [string, string][] = [];
  const seen = new Int32Array(words.length).fill(-1);
  while (merges.length < numMerges && heap.size > 0) {
    const [c, a, b] = heap.pop();
    const k = key(a, b);
    if (counts.get(k) !== c) continue; // stale entry: the pair's count changed since it was pushed
    if (c < minFreq) break;
    const id = tokens.length;
    tokens.push(tokens[a]! + tokens[b]!);
    merges.push([tokens[a]!, tokens[b]!]);
    const changed = new Set<number>();
    const add = (p: number, delta: number, word: number) => {
      const n = (counts.get(p) ?? 0) + delta;
      if (n === 0) counts.delete(p);
      else counts.set(p, n);
      changed.add(p);
      if (delta > 0) {
        let list = where.get(p);
        if (!list) where.set(p, (list = []));
        if (list[list.length - 1] !== word) list.push(word);
      }
    };
    for (const wi of where.get(k) ?? []) {
      if (seen[wi] === id) continue;
      seen[wi] = id;
      const w = words[wi]!;
      let has = false;
      for (let j = 0; j + 1 < w.length; j++) if (w[j] === a && w[j + 1] === b) has = true;
      if (!has) continue;
      const f = freq[wi]!;
      for (let j = 0; j + 1 < w.length; j++) add(key(w[j]!, w[j + 1]!), -f, wi);
      const merged: number[] = [];
      for (let j = 0; j < w.length; j++) {
        if (j + 1 < w.length && w[j] === a && w[j + 1] === b) {
          merged.push(id);
          j++;
        } else merged.push(w[j]!);
      }
      words[wi] = merged;
      for (let j = 0; j + 1 < merged.length; j++) add(key(merged[j]!, merged[j + 1]!), f, wi);
    }
    where.delete(k);
    for (const p of changed) {
      const n = counts.get(p);
      if (n !== undefined && p !== k) heap.push(n, Math.floor(p / 65536), p % 65536);
    }
    if (opts.onProgress && merges.length % 256 === 0) opts.onProgress(merges.length, numMerges);
  }
  const vocab = new Map<string, number>();
  tokens.forEach((t, i) => vocab.set(t, i));
  for (const s of specials) vocab.set(s, vocab.size);
  return { vocab, merges, specialTokens: specials };
}

/** The model as a tokenizer.json (HF layout of GPT-2's: ByteLevel pre-tokenizer and decoder, no normalizer). */
export function toTokenizerJson(model: BpeModel): TokenizerJson {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: model.specialTokens.map((content) => ({
      id: model.vocab.get(content)!,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: true,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(model.vocab),
      // "a b" strings: the format every tokenizers version reads (byte-level tokens hold no spaces).
      merges: model.merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/**
 * A small reference encoder for tests and statistics: applies merges by rank to each pre-token (what
 * the BPE model in tokenizer.json does), no special-token handling.
 */
export class BpeEncoder {
  readonly #ranks = new Map<string, number>();
  readonly #cache = new Map<string, number[]>();

  constructor(private readonly model: BpeModel) {
    model.merges.forEach(([a, b], i) => this.#ranks.set(`${a} ${b}`, i));
  }

  encodeWord(word: string): number[] {
    const hit = this.#cache.get(word);
    if (hit) return hit;
    let parts = [...Buffer.from(word, 'utf8')].map((b) => BYTE_CHARS[b]!);
    for (;;) {
      let best = -1;
      let rank = Infinity;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = this.#ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < rank) {
          rank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const [a, b] = this.model.merges[rank]!;
      const next: string[] = [];
      for (let i = 0; i < parts.length; i++) {
        if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(parts[i]!);
      }
      parts = next;
    }
    const ids = parts.map((p) => this.model.vocab.get(p)!);
    this.#cache.set(word, ids);
    return ids;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const m of text.matchAll(GPT2_PATTERN)) out.push(...this.encodeWord(m[0]));
    return out;
  }
}
