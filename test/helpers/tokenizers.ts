// A tiny byte-level BPE tokenizer.json built in memory, for tests that need a real tokenizer without
// files: the given special tokens first (ids 0, 1, …), all 256 byte symbols, then merges for "hello"
// and "Ġworld".

/** GPT-2's bytes_to_unicode symbols, in byte order. */
export function byteSymbols(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let n = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCodePoint(keep(b) ? b : 256 + n++));
}

export function byteLevelBpeJson(specials: readonly string[], postProcessor: unknown = null): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  specials.forEach((s, i) => (vocab[s] = i));
  for (const s of byteSymbols()) vocab[s] ??= Object.keys(vocab).length;
  const merges = ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'l d', 'Ġwor ld'];
  for (const m of merges) vocab[m.replace(' ', '')] ??= Object.keys(vocab).length;
  return {
    version: '1.0',
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: postProcessor,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      vocab,
      merges,
    },
  };
}
