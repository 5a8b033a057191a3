// Text tokenizers loaded from a model directory as transformers' AutoTokenizer does (tokenizer.json, or
// GPT-2's vocab.json + merges.txt, or BERT's vocab.txt), running on @huggingface/tokenizers; batching
// with truncation and padding, decoding, a streaming decoder for generation, and chat templates.

import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChatMessage, ChatTemplate, loadChatTemplate, pickTemplate } from './chat-template.js';
import { IoError, describeError } from './errors.js';
import { readJsonFile } from './json.js';
import {
  type TokenizerConfig,
  boolField,
  mergeSpecialTokensMap,
  modelMaxLength,
  specialToken,
} from './tokenizers/config.js';
import { type TokenizerJson, convertBert, convertGpt2, parseMerges, parseVocabTxt } from './tokenizers/convert.js';
import { patchBertNormalizer } from './tokenizers/bert-normalizer.js';
import { PostProcessor, truncate } from './tokenizers/post-process.js';

export type { ChatMessage } from './chat-template.js';
export type { TokenizerConfig } from './tokenizers/config.js';

export interface Encoding {
  ids: number[];
  tokenTypeIds: number[];
  attentionMask: number[];
}

export interface BatchEncoding {
  ids: number[][];
  tokenTypeIds: number[][];
  attentionMask: number[][];
}

export interface EncodeOpts {
  /** Second sequence of a pair (BERT-style sentence pairs). */
  pair?: string;
  /** Add the post-processor's special tokens (BOS, [CLS] … [SEP]); default true. */
  addSpecialTokens?: boolean;
}

export interface EncodeBatchOpts {
  /** Second sequences, one per text. */
  pairs?: string[];
  /** 'longest': to the longest in the batch; 'max_length': to maxLength; false (default): no padding. */
  padding?: 'longest' | 'max_length' | false;
  /** Length limit for truncation and for 'max_length' padding (default: the config's model_max_length). */
  maxLength?: number;
  /** Truncate to maxLength ('longest_first' for pairs), the special tokens included. */
  truncation?: boolean;
  /** Where padding goes: 'right' (default, or the config's padding_side) or 'left' (for generation). */
  paddingSide?: 'left' | 'right';
  addSpecialTokens?: boolean;
}

export interface DecodeOpts {
  skipSpecialTokens?: boolean;
  /**
   * transformers' clean_up_tokenization (" ." → ".", " n't" → "n't", …); default as transformers 5: the
   * config's clean_up_tokenization_spaces for WordPiece tokenizers, false for all others.
   */
  cleanUpTokenizationSpaces?: boolean;
}

/** Files fromDir looks for, in order. */
const TOKENIZER_FILES = ['tokenizer.json', 'vocab.json + merges.txt', 'vocab.txt'];

export class Tokenizer {
  /** Number of ids an embedding must cover: the largest id (vocabulary or added token) plus one. */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly unkTokenId: number | null;
  private _padTokenId: number | null;
  private _padToken: string | null;
  private readonly hf: HfTokenizer;
  private readonly post: PostProcessor;
  private readonly specialIds: Set<number>;
  private readonly cleanUpDefault: boolean;
  private chat: ChatTemplate | null | undefined;

  private constructor(
    json: TokenizerJson,
    /** tokenizer_config.json with special_tokens_map.json merged in (read-only for callers). */
    readonly config: TokenizerConfig,
    /** Where the tokenizer came from (a directory or 'tokenizer.json object'), for error messages. */
    readonly source: string,
    private readonly dir: string | null,
  ) {
    // The library's own post-processing is bypassed (see tokenizers/post-process.ts): it would add
    // special tokens before truncation and loses pairs under ByteLevel.
    try {
      this.hf = new HfTokenizer({ ...json, added_tokens: json.added_tokens ?? [], post_processor: null }, config);
    } catch (e) {
      throw new IoError(`[tokenizer] ${source}: cannot build the tokenizer: ${describeError(e)}`, {
        file: source,
        cause: e,
      });
    }
    patchBertNormalizer(this.hf, json.normalizer);
    this.post = PostProcessor.fromJson(json.post_processor, source);
    // transformers 5 applies clean_up_tokenization only to WordPiece tokenizers (it is destructive for
    // BPE, whose spaces before punctuation are real) and only when the config asks for it.
    this.cleanUpDefault = json.model.type === 'WordPiece' && boolField(config, 'clean_up_tokenization_spaces', false);
    const vocab = this.hf.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    this.specialIds = new Set<number>();
    for (const t of json.added_tokens ?? []) if (t.special) this.specialIds.add(t.id);
    const idOf = (key: 'bos_token' | 'eos_token' | 'unk_token' | 'pad_token') => {
      const tok = specialToken(config, key);
      return tok === null ? null : this.tokenToId(tok);
    };
    this.bosTokenId = idOf('bos_token');
    this.eosTokenId = idOf('eos_token');
    this.unkTokenId = idOf('unk_token');
    this._padToken = specialToken(config, 'pad_token');
    this._padTokenId = idOf('pad_token');
    for (const id of [this.bosTokenId, this.eosTokenId, this.unkTokenId, this._padTokenId])
      if (id !== null) this.specialIds.add(id);
  }

  get padTokenId(): number | null {
    return this._padTokenId;
  }

  /** Sets the padding token (e.g. to the EOS token for a model trained without one, as is common for Llama). */
  setPadToken(token: string): void {
    const id = this.tokenToId(token);
    if (id === null)
      throw new Error(`[tokenizer] ${this.source}: pad token ${JSON.stringify(token)} is not in the vocabulary`);
    this._padToken = token;
    this._padTokenId = id;
  }

  /**
   * Loads the tokenizer of a model directory: tokenizer.json, else vocab.json + merges.txt (GPT-2 byte-level
   * BPE), else vocab.txt (BERT WordPiece); tokenizer_config.json, special_tokens_map.json and
   * added_tokens.json are applied when present.
   */
  static fromDir(dir: string): Tokenizer {
    const p = (f: string) => join(dir, f);
    const optionalJson = (f: string): Record<string, unknown> | null => {
      if (!existsSync(p(f))) return null;
      const v = readJsonFile(p(f));
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        throw new IoError(`[tokenizer] ${p(f)}: expected a JSON object`, { file: p(f) });
      return v as Record<string, unknown>;
    };
    const config = mergeSpecialTokensMap(
      optionalJson('tokenizer_config.json') ?? {},
      optionalJson('special_tokens_map.json'),
    );
    const addedTokensFile = (optionalJson('added_tokens.json') ?? undefined) as Record<string, number> | undefined;

    if (existsSync(p('tokenizer.json'))) {
      const json = checkTokenizerJson(readJsonFile(p('tokenizer.json')), p('tokenizer.json'));
      return new Tokenizer(json, config, dir, dir);
    }
    const cls = typeof config['tokenizer_class'] === 'string' ? config['tokenizer_class'] : null;
    const unsupported = (files: string, family: string) =>
      new IoError(
        `[tokenizer] ${p('tokenizer_config.json')}: tokenizer_class ${cls} from ${files} is not supported (only ${family}); save the tokenizer with tokenizer.json`,
        { file: p('tokenizer_config.json'), key: 'tokenizer_class' },
      );
    if (existsSync(p('vocab.json')) && existsSync(p('merges.txt'))) {
      // Other byte-level BPE families (RoBERTa, BART, CLIP, Whisper…) add different special tokens.
      if (cls !== null && !/^(GPT2|GPTNeoX|GPTJ|CodeGen)Tokenizer(Fast)?$/.test(cls)) {
        throw unsupported('vocab.json + merges.txt', 'GPT-2 style byte-level BPE');
      }
      const vocab = optionalJson('vocab.json') as Record<string, number>;
      const merges = parseMerges(readText(p('merges.txt')));
      const conv = convertGpt2(vocab, merges, config, addedTokensFile);
      return new Tokenizer(conv.json, conv.config, dir, dir);
    }
    if (existsSync(p('vocab.txt'))) {
      if (cls !== null && !/^(Bert|DistilBert|Electra|MobileBert|SqueezeBert)Tokenizer(Fast)?$/.test(cls)) {
        throw unsupported('vocab.txt', 'BERT WordPiece');
      }
      const conv = convertBert(parseVocabTxt(readText(p('vocab.txt'))), config, addedTokensFile);
      return new Tokenizer(conv.json, conv.config, dir, dir);
    }
    const what = existsSync(dir) ? 'has none of' : 'does not exist; looked for';
    throw new IoError(`[tokenizer] ${dir} ${what} the tokenizer files ${TOKENIZER_FILES.join(', ')}`, { file: dir });
  }

  /** From a parsed tokenizer.json object (and tokenizer_config.json object). */
  static fromTokenizerJson(json: unknown, config: unknown = {}): Tokenizer {
    const where = 'tokenizer.json object';
    const cfg = config === null || config === undefined ? {} : config;
    if (typeof cfg !== 'object' || Array.isArray(cfg))
      throw new IoError(`[tokenizer] tokenizer config must be an object`, { file: where });
    const c = cfg as TokenizerConfig;
    return new Tokenizer(checkTokenizerJson(json, where), c, where, null);
  }

  /** Encodes one text (or a pair). */
  encode(text: string, opts: EncodeOpts = {}): Encoding {
    const a = this.encodeRaw(text);
    const b = opts.pair === undefined ? null : this.encodeRaw(opts.pair);
    const { ids, typeIds } = this.post.process(a, b, opts.addSpecialTokens ?? true);
    return { ids, tokenTypeIds: typeIds, attentionMask: ids.map(() => 1) };
  }

  /** Encodes a batch with optional truncation and padding (see EncodeBatchOpts). */
  encodeBatch(texts: string[], opts: EncodeBatchOpts = {}): BatchEncoding {
    const { pairs, padding = false, truncation = false } = opts;
    const addSpecial = opts.addSpecialTokens ?? true;
    if (pairs !== undefined && pairs.length !== texts.length) {
      throw new Error(`[tokenizer] encodeBatch: ${texts.length} texts but ${pairs.length} pairs`);
    }
    const maxLength = opts.maxLength ?? modelMaxLength(this.config);
    if (opts.maxLength !== undefined && (!Number.isInteger(opts.maxLength) || opts.maxLength < 0)) {
      throw new Error(`[tokenizer] encodeBatch: maxLength must be a non-negative integer, got ${opts.maxLength}`);
    }
    const truncSide = this.side('truncation_side', undefined);
    const out: BatchEncoding = { ids: [], tokenTypeIds: [], attentionMask: [] };
    texts.forEach((text, i) => {
      let a = this.encodeRaw(text);
      let b = pairs === undefined ? null : this.encodeRaw(pairs[i]!);
      if (truncation && maxLength !== null) {
        const reserved = addSpecial ? this.post.numSpecialTokens(b !== null) : 0;
        if (maxLength < reserved) {
          throw new Error(
            `[tokenizer] encodeBatch: maxLength ${maxLength} leaves no room for the ${reserved} special tokens`,
          );
        }
        [a, b] = truncate(a, b, maxLength - reserved, truncSide);
      }
      const { ids, typeIds } = this.post.process(a, b, addSpecial);
      out.ids.push(ids);
      out.tokenTypeIds.push(typeIds);
      out.attentionMask.push(ids.map(() => 1));
    });
    if (padding === false) return out;
    let target: number;
    if (padding === 'longest') target = Math.max(0, ...out.ids.map((x) => x.length));
    else if (maxLength === null)
      throw new Error(
        `[tokenizer] encodeBatch: padding 'max_length' needs maxLength (the config has no model_max_length)`,
      );
    else target = maxLength;
    const padId = this._padTokenId;
    if (padId === null && out.ids.some((x) => x.length < target)) {
      throw new Error(
        `[tokenizer] ${this.source}: padding needs a pad token, and the config names none (pad_token); call setPadToken(), e.g. with the EOS token`,
      );
    }
    const side = this.side('padding_side', opts.paddingSide);
    for (let i = 0; i < out.ids.length; i++) {
      const n = target - out.ids[i]!.length;
      if (n <= 0) continue;
      const fill = (row: number[], v: number) => {
        const pad = new Array<number>(n).fill(v);
        return side === 'right' ? [...row, ...pad] : [...pad, ...row];
      };
      out.ids[i] = fill(out.ids[i]!, padId!);
      out.tokenTypeIds[i] = fill(out.tokenTypeIds[i]!, 0);
      out.attentionMask[i] = fill(out.attentionMask[i]!, 0);
    }
    return out;
  }

  /** Decodes ids to text, as transformers' decode does (the decoder, then the optional clean-up). */
  decode(ids: readonly number[], opts: DecodeOpts = {}): string {
    let list = ids.filter((id) => this.idToToken(id) !== null);
    if (opts.skipSpecialTokens) list = list.filter((id) => !this.specialIds.has(id));
    if (list.length === 0) return '';
    let text = this.hf.decode(list, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    if (opts.cleanUpTokenizationSpaces ?? this.cleanUpDefault) text = cleanUpTokenization(text);
    return text;
  }

  tokenToId(token: string): number | null {
    return this.hf.token_to_id(token) ?? null;
  }

  idToToken(id: number): string | null {
    return this.hf.id_to_token(id) ?? null;
  }

  /** Whether `id` is a special token (skipped by decode's skipSpecialTokens). */
  isSpecialId(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** The model's chat template, or null when the directory has none. */
  get chatTemplate(): ChatTemplate | null {
    if (this.chat === undefined) {
      const inConfig = this.config['chat_template'];
      if (this.dir !== null) this.chat = loadChatTemplate(this.dir, this.config);
      else if (inConfig !== undefined && inConfig !== null)
        this.chat = new ChatTemplate(pickTemplate(inConfig, this.source), this.source);
      else this.chat = null;
    }
    return this.chat;
  }

  /**
   * Renders the chat template (see src/io/chat-template.ts) with this tokenizer's special tokens;
   * `variables` adds template variables some models read (e.g. enable_thinking).
   */
  applyChatTemplate(
    messages: ChatMessage[],
    opts: { addGenerationPrompt?: boolean; variables?: Record<string, unknown> } = {},
  ): string {
    const t = this.chatTemplate;
    if (t === null) {
      const where = this.dir ?? this.source;
      throw new IoError(
        `[tokenizer] ${where}: no chat template (looked for chat_template.jinja, tokenizer_config.json's chat_template, chat_template.json)`,
        { file: where, key: 'chat_template' },
      );
    }
    const config = this._padToken !== null ? { ...this.config, pad_token: this._padToken } : this.config;
    return t.render(messages, config, {
      addGenerationPrompt: opts.addGenerationPrompt ?? false,
      ...(opts.variables ? { variables: opts.variables } : {}),
    });
  }

  /** Token ids of `text` alone: normalizer, pre-tokenizer and model, no special tokens. */
  private encodeRaw(text: string): number[] {
    if (typeof text !== 'string') throw new TypeError(`[tokenizer] expected a string to encode, got ${typeof text}`);
    if (text.length === 0) return [];
    return this.hf.encode(text, { add_special_tokens: false }).ids;
  }

  private side(key: 'padding_side' | 'truncation_side', given: 'left' | 'right' | undefined): 'left' | 'right' {
    if (given !== undefined) return given;
    const v = this.config[key];
    return v === 'left' ? 'left' : 'right';
  }
}

/** transformers' PreTrainedTokenizerBase.clean_up_tokenization. */
export function cleanUpTokenization(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

export interface StreamDecoder {
  /** Adds one generated id; returns the text it completes ('' while a UTF-8 sequence or word is unfinished). */
  push(id: number): string;
  /** The text still held back (e.g. an incomplete UTF-8 sequence at the end, as U+FFFD); resets the stream. */
  flush(): string;
}

/**
 * An incremental decoder for streaming generation (the Rust tokenizers' DecodeStream algorithm): it
 * decodes the pending ids together with a few ids of context and emits only new, complete text, so
 * byte-level tokens that split a UTF-8 character and SentencePiece's leading-space rules come out right.
 * The concatenation of everything push() and flush() return equals decode(allIds) without clean-up.
 */
export function createStreamDecoder(tokenizer: Tokenizer, opts: { skipSpecialTokens?: boolean } = {}): StreamDecoder {
  const decodeOpts: DecodeOpts = {
    skipSpecialTokens: opts.skipSpecialTokens ?? true,
    cleanUpTokenizationSpaces: false,
  };
  let ids: number[] = [];
  let prefix = '';
  let prefixIndex = 0;
  return {
    push(id: number): string {
      if (prefix === '' && ids.length > 0) {
        const p = tokenizer.decode(ids, decodeOpts);
        if (!p.endsWith('\uFFFD')) {
          prefix = p;
          prefixIndex = ids.length;
        }
      }
      ids.push(id);
      const text = tokenizer.decode(ids, decodeOpts);
      if (text.length > prefix.length && !text.endsWith('\uFFFD') && text.startsWith(prefix)) {
        const fresh = text.slice(prefix.length);
        const newPrefixIndex = ids.length - prefixIndex;
        ids = ids.slice(prefixIndex);
        prefix = tokenizer.decode(ids, decodeOpts);
        prefixIndex = newPrefixIndex;
        return fresh;
      }
      return '';
    },
    flush(): string {
      const text = tokenizer.decode(ids, decodeOpts);
      const rest = text.startsWith(prefix) ? text.slice(prefix.length) : text;
      ids = [];
      prefix = '';
      prefixIndex = 0;
      return rest;
    },
  };
}

// ---- helpers ----------------------------------------------------------------------------------

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new IoError(`[tokenizer] ${path}: cannot read: ${describeError(e)}`, { file: path, cause: e });
  }
}

function checkTokenizerJson(json: unknown, where: string): TokenizerJson {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new IoError(`[tokenizer] ${where}: expected a JSON object`, { file: where });
  }
  const o = json as Record<string, unknown>;
  const model = o['model'];
  if (model === null || typeof model !== 'object')
    throw new IoError(`[tokenizer] ${where}: has no "model" object`, { file: where, key: 'model' });
  if (o['added_tokens'] !== undefined && !Array.isArray(o['added_tokens'])) {
    throw new IoError(`[tokenizer] ${where}: "added_tokens" must be a list`, { file: where, key: 'added_tokens' });
  }
  return {
    ...o,
    added_tokens: (o['added_tokens'] as TokenizerJson['added_tokens']) ?? [],
    normalizer: o['normalizer'] ?? null,
    pre_tokenizer: o['pre_tokenizer'] ?? null,
    post_processor: o['post_processor'] ?? null,
    decoder: o['decoder'] ?? null,
    model: model as TokenizerJson['model'],
  };
}

/** Whether `dir` holds any of the files Tokenizer.fromDir reads. */
export function hasTokenizerFiles(dir: string): boolean {
  const has = (f: string) => existsSync(join(dir, f));
  return has('tokenizer.json') || (has('vocab.json') && has('merges.txt')) || has('vocab.txt');
}
