// Builds the tokenizer.json object that transformers' converters (GPT2Converter, BertConverter in
// convert_slow_tokenizer.py) would make from a model directory without one: GPT-2's vocab.json +
// merges.txt (byte-level BPE) and BERT's vocab.txt (WordPiece).

import {
  type SpecialTokenKey,
  type TokenizerConfig,
  SPECIAL_TOKEN_KEYS,
  additionalSpecialTokens,
  boolField,
  tokenString,
} from './config.js';

/** A tokenizer.json object (only the fields this project reads or writes are typed). */
export interface TokenizerJson {
  version?: string;
  added_tokens: AddedTokenJson[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  post_processor: unknown;
  decoder: unknown;
  model: Record<string, unknown> & { type?: string };
  [key: string]: unknown;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** The result of a conversion: the tokenizer.json object and the config with the class's default special tokens filled in. */
export interface Converted {
  json: TokenizerJson;
  config: TokenizerConfig;
}

/** The special-token defaults of a tokenizer class's __init__ (GPT2Tokenizer, BertTokenizer). */
const GPT2_DEFAULTS: Partial<Record<SpecialTokenKey, string>> = {
  unk_token: '<|endoftext|>',
  bos_token: '<|endoftext|>',
  eos_token: '<|endoftext|>',
};
const BERT_DEFAULTS: Partial<Record<SpecialTokenKey, string>> = {
  unk_token: '[UNK]',
  sep_token: '[SEP]',
  pad_token: '[PAD]',
  cls_token: '[CLS]',
  mask_token: '[MASK]',
};

/**
 * Parses merges.txt: one "a b" pair a line, after an optional "#version" header line. transformers
 * skips the header and any empty line (the file usually ends with a newline).
 */
export function parseMerges(text: string): string[] {
  const lines = text.split('\n');
  const out: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (i === 0 && line.startsWith('#version')) continue;
    if (line.trim() === '') continue;
    out.push(line);
  }
  return out;
}

/**
 * Parses vocab.txt as transformers' load_vocab does: the line number is the id, the line without its
 * newline is the token (a later duplicate wins). A final newline does not make an extra empty token.
 */
export function parseVocabTxt(text: string): Record<string, number> {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const vocab: Record<string, number> = Object.create(null) as Record<string, number>;
  lines.forEach((token, i) => (vocab[token] = i));
  return vocab;
}

/** GPT2Converter: byte-level BPE from vocab.json + merges.txt. */
export function convertGpt2(
  vocab: Record<string, number>,
  merges: string[],
  config: TokenizerConfig,
  addedTokensFile?: Record<string, number>,
): Converted {
  const cfg = withDefaults(config, GPT2_DEFAULTS);
  const added = collectAddedTokens(vocab, cfg, addedTokensFile);
  const bos = tokenString(cfg['bos_token']);
  const addPrefixSpace = boolField(cfg, 'add_prefix_space', false);
  let postProcessor: unknown = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true };
  if (boolField(cfg, 'add_bos_token', false) && bos !== null) {
    const id = idOf(bos, vocab, added);
    postProcessor = {
      type: 'TemplateProcessing',
      single: [special(bos, 0), seq('A', 0)],
      pair: [special(bos, 0), seq('A', 0), seq('B', 1)],
      special_tokens: { [bos]: { id: bos, ids: [id], tokens: [bos] } },
    };
  }
  return {
    json: {
      version: '1.0',
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: true },
      post_processor: postProcessor,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: '',
        end_of_word_suffix: '',
        fuse_unk: false,
        byte_fallback: false,
        vocab,
        merges,
      },
    },
    config: cfg,
  };
}

/** BertConverter: WordPiece from vocab.txt, lower-casing per do_lower_case (default true). */
export function convertBert(
  vocab: Record<string, number>,
  config: TokenizerConfig,
  addedTokensFile?: Record<string, number>,
): Converted {
  const cfg = withDefaults(config, BERT_DEFAULTS);
  const added = collectAddedTokens(vocab, cfg, addedTokensFile);
  const cls = tokenString(cfg['cls_token']) ?? '[CLS]';
  const sep = tokenString(cfg['sep_token']) ?? '[SEP]';
  const unk = tokenString(cfg['unk_token']) ?? '[UNK]';
  const stripAccents = cfg['strip_accents'];
  return {
    json: {
      version: '1.0',
      added_tokens: added,
      normalizer: {
        type: 'BertNormalizer',
        clean_text: true,
        handle_chinese_chars: boolField(cfg, 'tokenize_chinese_chars', true),
        strip_accents: typeof stripAccents === 'boolean' ? stripAccents : null,
        lowercase: boolField(cfg, 'do_lower_case', true),
      },
      pre_tokenizer: { type: 'BertPreTokenizer' },
      post_processor: {
        type: 'TemplateProcessing',
        single: [special(cls, 0), seq('A', 0), special(sep, 0)],
        pair: [special(cls, 0), seq('A', 0), special(sep, 0), seq('B', 1), special(sep, 1)],
        special_tokens: {
          [cls]: { id: cls, ids: [idOf(cls, vocab, added)], tokens: [cls] },
          [sep]: { id: sep, ids: [idOf(sep, vocab, added)], tokens: [sep] },
        },
      },
      decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
      model: {
        type: 'WordPiece',
        unk_token: unk,
        continuing_subword_prefix: '##',
        max_input_chars_per_word: 100,
        vocab,
      },
    },
    config: cfg,
  };
}

// ---- helpers ----------------------------------------------------------------------------------

const special = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } });
const seq = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });

/** The config with the class's default special tokens where the config does not name them (an explicit null stays null). */
function withDefaults(config: TokenizerConfig, defaults: Partial<Record<SpecialTokenKey, string>>): TokenizerConfig {
  const out: TokenizerConfig = { ...config };
  for (const [k, v] of Object.entries(defaults)) if (!(k in out)) out[k] = v;
  return out;
}

function idOf(token: string, vocab: Record<string, number>, added: AddedTokenJson[]): number {
  const a = added.find((t) => t.content === token);
  if (a) return a.id;
  const id = vocab[token];
  if (id === undefined) throw new Error(`[tokenizer] Special token ${JSON.stringify(token)} is not in the vocabulary`);
  return id;
}

/**
 * The added tokens transformers registers when it converts a slow tokenizer: tokenizer_config.json's
 * added_tokens_decoder (with its flags), added_tokens.json, then every special token of the config.
 * A token already in the vocabulary keeps its id; a new one gets the next free id, as add_tokens does.
 */
function collectAddedTokens(
  vocab: Record<string, number>,
  config: TokenizerConfig,
  addedTokensFile?: Record<string, number>,
): AddedTokenJson[] {
  const out: AddedTokenJson[] = [];
  const byContent = new Map<string, AddedTokenJson>();
  let nextId = 0;
  for (const id of Object.values(vocab)) nextId = Math.max(nextId, id + 1);
  const push = (t: AddedTokenJson) => {
    const prev = byContent.get(t.content);
    if (prev) {
      prev.special ||= t.special;
      return;
    }
    byContent.set(t.content, t);
    out.push(t);
    nextId = Math.max(nextId, t.id + 1);
  };
  const make = (
    content: string,
    id: number,
    special: boolean,
    flags: Partial<AddedTokenJson> = {},
  ): AddedTokenJson => ({
    id,
    content,
    single_word: flags.single_word ?? false,
    lstrip: flags.lstrip ?? false,
    rstrip: flags.rstrip ?? false,
    normalized: flags.normalized ?? !special,
    special,
  });

  const decoder = config['added_tokens_decoder'];
  if (decoder !== null && typeof decoder === 'object') {
    for (const [idText, entry] of Object.entries(decoder as Record<string, unknown>)) {
      const content = tokenString(entry);
      const id = Number(idText);
      if (content === null || !Number.isInteger(id)) continue;
      const e = entry as Partial<AddedTokenJson>;
      push(make(content, id, e.special ?? false, e));
    }
  }
  for (const [content, id] of Object.entries(addedTokensFile ?? {})) push(make(content, id, false));
  const specials = [
    ...SPECIAL_TOKEN_KEYS.map((k) => tokenString(config[k])).filter((s): s is string => s !== null),
    ...additionalSpecialTokens(config),
  ];
  for (const content of specials) {
    if (byContent.has(content)) {
      byContent.get(content)!.special = true;
      continue;
    }
    push(make(content, vocab[content] ?? nextId, true));
  }
  return out;
}
