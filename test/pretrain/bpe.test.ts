// The byte-level BPE trainer: GPT-2's byte mapping, merges learned by pair counts with deterministic
// ties, and a tokenizer.json that @huggingface/tokenizers (our Tokenizer) encodes identically.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { BpeEncoder, bytesToUnicode, countWords, toTokenizerJson, trainBpe } from '../../src/pretrain/bpe.js';

const TEXT = [
  'low lower lowest newer newest wider low low newest',
  "It's the newest, widest road; they're lower now.",
  'Numbers 1234 and 56 stay apart from words.',
];

describe('bytesToUnicode', () => {
  test('is a bijection onto 256 printable characters, identity on printable ASCII', () => {
    const m = bytesToUnicode();
    assert.equal(new Set(m).size, 256);
    assert.equal(m[65], 'A');
    assert.equal(m[32], 'Ġ'); // space, as in GPT-2's vocab
    assert.equal(m[10], 'Ċ'); // newline
  });
});

describe('trainBpe', () => {
  test('merges the most frequent pair first and breaks ties by token order', () => {
    // "ab" ×3 and "cd" ×3 tie on count; "ab" wins on the smaller left id; then "abab"… never forms.
    const counts = new Map([
      ['ab', 3],
      ['cd', 3],
      ['e', 1],
    ]);
    const m = trainBpe(counts, { vocabSize: 256 + 2 });
    assert.deepEqual(m.merges, [
      ['a', 'b'],
      ['c', 'd'],
    ]);
    assert.equal(m.vocab.get('ab'), 256);
    assert.equal(m.vocab.get('cd'), 257);
  });

  test('is independent of the order words were counted in', () => {
    const a = countWords(TEXT);
    const b = new Map([...a].reverse());
    const opts = { vocabSize: 300, specialTokens: ['<|endoftext|>'] };
    assert.deepEqual(trainBpe(a, opts).merges, trainBpe(b, opts).merges);
  });

  test('stops at minFrequency and places special tokens after the merges', () => {
    const m = trainBpe(countWords(TEXT), { vocabSize: 2000, specialTokens: ['<|endoftext|>'] });
    assert.ok(m.merges.length < 2000 - 257, 'pairs seen once are not merged');
    assert.equal(m.vocab.get('<|endoftext|>'), 256 + m.merges.length);
    assert.equal(m.vocab.size, 257 + m.merges.length);
  });

  test('counts repeated pairs inside one word (aaaa) and merges them left to right', () => {
    const m = trainBpe(new Map([['aaaa', 5]]), { vocabSize: 258 });
    assert.deepEqual(m.merges, [
      ['a', 'a'],
      ['aa', 'aa'],
    ]);
    assert.deepEqual(new BpeEncoder(m).encodeWord('aaaaa'), [257, 97]);
  });
});

describe('tokenizer.json export', () => {
  const model = trainBpe(countWords(TEXT), { vocabSize: 320, specialTokens: ['<|endoftext|>'], minFrequency: 1 });
  const json = toTokenizerJson(model);
  const tok = Tokenizer.fromTokenizerJson(json, { eos_token: '<|endoftext|>', bos_token: '<|endoftext|>' });
  const enc = new BpeEncoder(model);

  test('has the GPT-2 layout: ByteLevel pre-tokenizer and decoder, BPE with merges, no normalizer', () => {
    assert.equal(json.normalizer, null);
    assert.deepEqual(json.pre_tokenizer, {
      type: 'ByteLevel',
      add_prefix_space: false,
      trim_offsets: true,
      use_regex: true,
    });
    assert.equal(json.model.type, 'BPE');
    assert.equal((json.model['merges'] as string[])[0], model.merges[0]!.join(' '));
    assert.equal(json.added_tokens[0]!.content, '<|endoftext|>');
  });

  test('our Tokenizer encodes as the reference encoder and decodes back to the text', () => {
    for (const s of [...TEXT, 'unseen words: zebra, café, naïve — 42!', '  two  spaces\nand a newline']) {
      const ids = tok.encode(s).ids;
      assert.deepEqual(ids, enc.encode(s), s);
      assert.equal(tok.decode(ids), s);
    }
  });

  test('<|endoftext|> is one special token', () => {
    const eos = model.vocab.get('<|endoftext|>')!;
    assert.equal(tok.eosTokenId, eos);
    const ids = tok.encode('low<|endoftext|>low').ids;
    assert.equal(ids.filter((i) => i === eos).length, 1);
    assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'lowlow');
  });
});
