// Tokenizer tests that need no Python references: llama.cpp's golden token ids for GPT-2, BERT (bge)
// and Llama-3 (fixtures copied from the llama.cpp bundle in node-llama-cpp), agreement with the
// gpt-3-encoder and js-tiktoken GPT-2 encoders, and unit tests on a tiny hand-written tokenizer.json
// (special tokens, pairs, truncation, padding, errors, streaming decode, GPT-2/BERT conversions).

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { IoError } from '../../src/io/errors.js';
import { Tokenizer, cleanUpTokenization, createStreamDecoder } from '../../src/io/tokenizer.js';
import { parseMerges, parseVocabTxt } from '../../src/io/tokenizers/convert.js';
import { truncate } from '../../src/io/tokenizers/post-process.js';
import { byteLevelBpeJson, byteSymbols } from '../helpers/tokenizers.js';
import {
  type SourceName,
  NODE_MODULES,
  TEXTS,
  loadSource,
  missingReason,
  optionalImport,
  readFixture,
} from './tokenizer-sources.js';

interface Golden {
  origin: string;
  applies_to: string;
  cases: { index: number; text: string; ids: number[] }[];
}

describe('llama.cpp golden vectors', () => {
  const sets: [string, SourceName][] = [
    ['llamacpp-gpt2.json', 'gpt2'],
    ['llamacpp-bert-bge.json', 'bert'],
    ['llamacpp-llama-bpe.json', 'llama3'],
    ['llamacpp-llama-spm.json', 'mistral'],
  ];
  for (const [file, name] of sets) {
    test(`${file} → ${name}`, (t) => {
      const g = readFixture<Golden>(file);
      if (g === null) return t.skip(`fixture ${file} missing`);
      const tok = loadSource(name);
      if (tok === null) return t.skip(missingReason(name));
      for (const c of g.cases) {
        assert.deepEqual(
          tok.encode(c.text, { addSpecialTokens: false }).ids,
          c.ids,
          `case ${c.index} ${JSON.stringify(c.text)}`,
        );
      }
      t.diagnostic(`${g.cases.length} cases (${g.applies_to})`);
    });
  }
});

describe('GPT-2 agrees with other GPT-2 encoders', () => {
  test('gpt-3-encoder', async (t) => {
    const tok = loadSource('gpt2');
    if (tok === null) return t.skip(missingReason('gpt2'));
    const mod = await optionalImport('gpt-3-encoder');
    if (mod === null) return t.skip('gpt-3-encoder not installed');
    const encode = ((mod['default'] as Record<string, unknown> | undefined)?.['encode'] ?? mod['encode']) as (
      s: string,
    ) => number[];
    for (const text of TEXTS) assert.deepEqual(tok.encode(text).ids, encode(text), JSON.stringify(text));
  });

  test('js-tiktoken gpt2 ranks', async (t) => {
    const tok = loadSource('gpt2');
    if (tok === null) return t.skip(missingReason('gpt2'));
    const lite = await optionalImport('js-tiktoken/lite');
    const ranks = await optionalImport('js-tiktoken/ranks/gpt2');
    if (lite === null || ranks === null) return t.skip('js-tiktoken not installed');
    const Tiktoken = lite['Tiktoken'] as new (r: unknown) => { encode(s: string, allowed?: 'all'): number[] };
    const enc = new Tiktoken(ranks['default']);
    for (const text of [...TEXTS, 'Hello<|endoftext|>world <|endoftext|>']) {
      assert.deepEqual(tok.encode(text).ids, enc.encode(text, 'all'), JSON.stringify(text));
    }
  });

  test('decode(encode(text)) round-trips byte-level BPE exactly', (t) => {
    const tok = loadSource('gpt2');
    if (tok === null) return t.skip(missingReason('gpt2'));
    for (const text of TEXTS) assert.equal(tok.decode(tok.encode(text).ids), text);
  });
});

// ---- a tiny byte-level BPE tokenizer.json ----------------------------------------------------------

/** Byte-level BPE over a handful of words; <s>=0, </s>=1, <pad>=2 are special added tokens. */
const tinyJson = (postProcessor: unknown = null) => byteLevelBpeJson(['<s>', '</s>', '<pad>'], postProcessor);

const TEMPLATE = {
  type: 'TemplateProcessing',
  single: [
    { SpecialToken: { id: '<s>', type_id: 0 } },
    { Sequence: { id: 'A', type_id: 0 } },
    { SpecialToken: { id: '</s>', type_id: 0 } },
  ],
  pair: [
    { SpecialToken: { id: '<s>', type_id: 0 } },
    { Sequence: { id: 'A', type_id: 0 } },
    { SpecialToken: { id: '</s>', type_id: 0 } },
    { Sequence: { id: 'B', type_id: 1 } },
    { SpecialToken: { id: '</s>', type_id: 1 } },
  ],
  special_tokens: {
    '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] },
    '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] },
  },
};

const CONFIG = {
  bos_token: '<s>',
  eos_token: '</s>',
  pad_token: '<pad>',
  chat_template: '{% for m in messages %}<{{ m.role }}>{{ m.content }}{{ eos_token }}{% endfor %}',
};

describe('Tokenizer on a tiny tokenizer.json', () => {
  const tok = Tokenizer.fromTokenizerJson(tinyJson(TEMPLATE), CONFIG);
  const hello = tok.tokenToId('hello')!;
  const world = tok.tokenToId('Ġworld')!;

  test('encode, special tokens and their ids', () => {
    assert.deepEqual(tok.encode('hello world').ids, [0, hello, world, 1]);
    assert.deepEqual(tok.encode('hello world', { addSpecialTokens: false }).ids, [hello, world]);
    assert.deepEqual(tok.encode('</s>hello').ids, [0, 1, hello, 1]);
    assert.deepEqual(tok.encode('').ids, [0, 1]);
    assert.equal(tok.bosTokenId, 0);
    assert.equal(tok.eosTokenId, 1);
    assert.equal(tok.padTokenId, 2);
    assert.equal(tok.unkTokenId, null);
    assert.equal(tok.idToToken(hello), 'hello');
    assert.equal(tok.tokenToId('nope'), null);
    assert.equal(tok.idToToken(1e6), null);
    assert.equal(tok.vocabSize, Math.max(hello, world) + 1);
  });

  test('pairs: template type ids', () => {
    const e = tok.encode('hello', { pair: 'hello world' });
    assert.deepEqual(e.ids, [0, hello, 1, hello, world, 1]);
    assert.deepEqual(e.tokenTypeIds, [0, 0, 0, 1, 1, 1]);
    assert.deepEqual(tok.encode('hello', { pair: 'hello', addSpecialTokens: false }).tokenTypeIds, [0, 1]);
  });

  test('pairs survive a ByteLevel post-processor (type id 1 for the second text)', () => {
    const bl = Tokenizer.fromTokenizerJson(
      tinyJson({ type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true }),
      {},
    );
    const e = bl.encode('hello', { pair: ' world' });
    assert.deepEqual(e.ids, [hello, world]);
    assert.deepEqual(e.tokenTypeIds, [0, 1]);
  });

  test('decode, skipSpecialTokens, unknown ids, empty input', () => {
    const ids = tok.encode('hello world').ids;
    assert.equal(tok.decode(ids), '<s>hello world</s>');
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'hello world');
    assert.equal(tok.decode([]), '');
    assert.equal(tok.decode([1e6]), '');
  });

  test('encodeBatch: padding longest / max_length, left and right, attention mask', () => {
    const b = tok.encodeBatch(['hello', 'hello world'], { padding: 'longest' });
    assert.deepEqual(b.ids, [
      [0, hello, 1, 2],
      [0, hello, world, 1],
    ]);
    assert.deepEqual(b.attentionMask, [
      [1, 1, 1, 0],
      [1, 1, 1, 1],
    ]);
    const l = tok.encodeBatch(['hello', 'hello world'], { padding: 'max_length', maxLength: 5, paddingSide: 'left' });
    assert.deepEqual(l.ids, [
      [2, 2, 0, hello, 1],
      [2, 0, hello, world, 1],
    ]);
    assert.deepEqual(l.attentionMask[0], [0, 0, 1, 1, 1]);
    assert.deepEqual(tok.encodeBatch(['hello', 'hello world']).ids, [
      [0, hello, 1],
      [0, hello, world, 1],
    ]);
  });

  test('encodeBatch: truncation keeps room for special tokens; pairs use longest_first', () => {
    const t1 = tok.encodeBatch(['hello world hello world'], { truncation: true, maxLength: 4 });
    assert.deepEqual(t1.ids, [[0, hello, world, 1]]);
    const p = tok.encodeBatch(['hello world hello'], { pairs: ['hello'], truncation: true, maxLength: 5 });
    assert.deepEqual(p.ids, [[0, hello, 1, hello, 1]]);
    assert.throws(
      () => tok.encodeBatch(['hello'], { truncation: true, maxLength: 1 }),
      /no room for the 2 special tokens/,
    );
    assert.throws(() => tok.encodeBatch(['a'], { pairs: [] }), /1 texts but 0 pairs/);
  });

  test("truncate: Rust tokenizers' longest_first arithmetic", () => {
    const r = (n: number, base = 0) => Array.from({ length: n }, (_, i) => base + i);
    // The shorter sequence kept whole, the longer cut to the rest.
    assert.deepEqual(truncate(r(3), r(10, 100), 8, 'right'), [r(3), r(5, 100)]);
    // Both too long: halves, the odd token to the second.
    assert.deepEqual(truncate(r(5), r(6, 100), 7, 'right'), [r(3), r(4, 100)]);
    assert.deepEqual(truncate(r(6, 100), r(5), 7, 'right'), [r(4, 100), r(3)]);
    // Left side keeps the ends.
    assert.deepEqual(truncate(r(10), null, 4, 'left'), [r(4, 6), null]);
  });

  test('padding without a pad token is an error naming the fix; setPadToken', () => {
    const noPad = Tokenizer.fromTokenizerJson(tinyJson(TEMPLATE), { eos_token: '</s>' });
    assert.equal(noPad.padTokenId, null);
    assert.throws(
      () => noPad.encodeBatch(['hello', 'hello world'], { padding: 'longest' }),
      /needs a pad token.*setPadToken/,
    );
    noPad.setPadToken('</s>');
    assert.deepEqual(noPad.encodeBatch(['hello', 'hello world'], { padding: 'longest' }).ids[0], [0, hello, 1, 1]);
    assert.throws(() => noPad.setPadToken('<nope>'), /"<nope>" is not in the vocabulary/);
  });

  test('padding_side / truncation_side from the config', () => {
    const left = Tokenizer.fromTokenizerJson(tinyJson(TEMPLATE), {
      ...CONFIG,
      padding_side: 'left',
      truncation_side: 'left',
    });
    const b = left.encodeBatch(['hello', 'hello world hello'], { padding: 'longest', truncation: true, maxLength: 4 });
    assert.deepEqual(b.ids, [
      [2, 0, hello, 1],
      [0, left.tokenToId('Ġ')!, hello, 1], // "hello Ġworld Ġ hello" keeps its last two tokens
    ]);
  });

  test('chat template from the config object', () => {
    const msgs = [
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'yo' },
    ];
    assert.equal(tok.applyChatTemplate(msgs), '<user>hi</s><assistant>yo</s>');
    const none = Tokenizer.fromTokenizerJson(tinyJson(), {});
    assert.throws(() => none.applyChatTemplate(msgs), /no chat template/);
  });

  test('malformed tokenizer.json objects are rejected with the field at fault', () => {
    assert.throws(() => Tokenizer.fromTokenizerJson(null), /expected a JSON object/);
    assert.throws(() => Tokenizer.fromTokenizerJson({ added_tokens: [] }), /no "model" object/);
    assert.throws(
      () => Tokenizer.fromTokenizerJson({ ...tinyJson(), post_processor: { type: 'Magic' } }),
      /post_processor type "Magic"/,
    );
  });
});

describe('createStreamDecoder', () => {
  const streamAll = (tok: Tokenizer, ids: number[]) => {
    const s = createStreamDecoder(tok, { skipSpecialTokens: false });
    const pieces = ids.map((id) => s.push(id));
    return { pieces, rest: s.flush() };
  };

  test('byte-level BPE: emoji split over tokens come out whole, and the pieces add up to decode()', (t) => {
    const tok = loadSource('gpt2');
    if (tok === null) return t.skip(missingReason('gpt2'));
    const text = 'Emoji: 😀👍🏽 👨‍👩‍👧‍👦 Grüße 日本語 done';
    const ids = tok.encode(text).ids;
    const { pieces, rest } = streamAll(tok, ids);
    assert.equal(pieces.join('') + rest, text);
    for (const p of pieces) assert.ok(!p.includes('\uFFFD'), `no partial character in ${JSON.stringify(p)}`);
    assert.ok(
      pieces.some((p) => p === ''),
      'some tokens complete no character',
    );
  });

  test('SentencePiece-style (Mistral): leading spaces and byte fallback', (t) => {
    const tok = loadSource('mistral');
    if (tok === null) return t.skip(missingReason('mistral'));
    const text = 'Hello world, 🦙 say "hi"\n  indented';
    const ids = tok.encode(text, { addSpecialTokens: false }).ids;
    const { pieces, rest } = streamAll(tok, ids);
    assert.equal(pieces.join('') + rest, tok.decode(ids));
    assert.equal(pieces[1], ' world');
  });

  test('an unfinished UTF-8 sequence is flushed as U+FFFD; special tokens skipped by default', (t) => {
    const tok = loadSource('gpt2');
    if (tok === null) return t.skip(missingReason('gpt2'));
    const ids = tok.encode('a😀').ids;
    const s = createStreamDecoder(tok);
    const out = ids.slice(0, -1).map((id) => s.push(id));
    assert.equal(out.join(''), 'a');
    assert.ok(s.flush().includes('\uFFFD'));
    const s2 = createStreamDecoder(tok);
    assert.equal([50256, ...tok.encode('hi').ids].map((id) => s2.push(id)).join('') + s2.flush(), 'hi');
  });
});

describe('fromDir', () => {
  const root = mkdtempSync(join(tmpdir(), 'vera-tokdir-'));

  test('a missing directory or one without tokenizer files: IoError naming the directory and the files', () => {
    const empty = join(root, 'empty');
    mkdirSync(empty);
    assert.throws(
      () => Tokenizer.fromDir(empty),
      (e: unknown) =>
        e instanceof IoError &&
        e.file === empty &&
        /tokenizer\.json, vocab\.json \+ merges\.txt, vocab\.txt/.test(e.message),
    );
    assert.throws(() => Tokenizer.fromDir(join(root, 'nope')), /does not exist; looked for the tokenizer files/);
  });

  test('a broken tokenizer.json: IoError naming the file and position', () => {
    const dir = join(root, 'broken');
    mkdirSync(dir);
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": ');
    assert.throws(
      () => Tokenizer.fromDir(dir),
      (e: unknown) => e instanceof IoError && e.file === join(dir, 'tokenizer.json') && /invalid JSON/.test(e.message),
    );
  });

  test('tokenizer.json + tokenizer_config.json + special_tokens_map.json (the map wins)', () => {
    const dir = join(root, 'tiny');
    mkdirSync(dir);
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tinyJson(TEMPLATE)));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ ...CONFIG, pad_token: null }));
    writeFileSync(
      join(dir, 'special_tokens_map.json'),
      JSON.stringify({ pad_token: { content: '<pad>', lstrip: false } }),
    );
    writeFileSync(
      join(dir, 'chat_template.jinja'),
      '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}',
    );
    const tok = Tokenizer.fromDir(dir);
    assert.equal(tok.padTokenId, 2);
    // chat_template.jinja takes precedence over tokenizer_config.json's template.
    assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'x' }]), '<s>x');
  });

  test('GPT-2 vocab.json + merges.txt: add_bos_token and add_prefix_space from tokenizer_config.json', () => {
    const dir = join(root, 'gpt2-bos');
    mkdirSync(dir);
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(tinyVocab()));
    writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\nh e\nl l\n');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: true, add_prefix_space: true }));
    const tok = Tokenizer.fromDir(dir);
    const e = tok.encode('hell');
    assert.equal(e.ids[0], tok.bosTokenId);
    assert.equal(tok.idToToken(e.ids[1]!), 'Ġ', 'add_prefix_space puts a space before the first word');
    assert.equal(tok.idToToken(e.ids[2]!), 'he');
  });

  test('BERT vocab.txt: do_lower_case false keeps case; WordPiece over-long words are [UNK]', () => {
    const dir = join(root, 'bert-cased');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'vocab.txt'),
      ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'Hello', 'hello', '##s', '!'].join('\n') + '\n',
    );
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ do_lower_case: false }));
    const tok = Tokenizer.fromDir(dir);
    assert.deepEqual(tok.encode('Hellos hello!').ids, [2, 5, 7, 6, 8, 3]);
    assert.deepEqual(tok.encode('hello', { pair: 'Hello' }).tokenTypeIds, [0, 0, 0, 1, 1]);
    assert.deepEqual(tok.encode('h'.repeat(101), { addSpecialTokens: false }).ids, [1]);
    assert.equal(tok.padTokenId, 0);
    assert.equal(tok.unkTokenId, 1);
  });

  test('vocab files of another tokenizer class are refused, naming tokenizer_config.json', () => {
    const dir = join(root, 'roberta');
    mkdirSync(dir);
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(tinyVocab()));
    writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\n');
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'RobertaTokenizer' }));
    assert.throws(
      () => Tokenizer.fromDir(dir),
      (e: unknown) =>
        e instanceof IoError &&
        e.key === 'tokenizer_class' &&
        /RobertaTokenizer from vocab\.json \+ merges\.txt is not supported/.test(e.message),
    );
  });

  function tinyVocab(): Record<string, number> {
    const v: Record<string, number> = {};
    for (const s of byteSymbols()) v[s] = Object.keys(v).length;
    v['he'] = Object.keys(v).length;
    v['ll'] = Object.keys(v).length;
    v['<|endoftext|>'] = Object.keys(v).length;
    return v;
  }
});

describe('file parsing helpers', () => {
  test('parseMerges skips the #version header and blank lines', () => {
    assert.deepEqual(parseMerges('#version: 0.2\nĠ t\nh e\r\n\n'), ['Ġ t', 'h e']);
  });
  test('parseVocabTxt numbers lines from 0; a final newline adds nothing', () => {
    assert.deepEqual({ ...parseVocabTxt('[PAD]\na\n##b\n') }, { '[PAD]': 0, a: 1, '##b': 2 });
  });
  test("cleanUpTokenization is transformers' rule set", () => {
    assert.equal(
      cleanUpTokenization("a . b , c ! d ? I 'm do n't it 's we 've you 're"),
      "a. b, c! d? I'm don't it's we've you're",
    );
  });
  test('the npm tokenizer packages are where the tests look', () => {
    assert.ok(NODE_MODULES.endsWith('node_modules'));
  });
});
