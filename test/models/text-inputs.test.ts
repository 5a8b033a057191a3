// The padding id and position limit that training, evaluation and serving derive from a model's
// config and its tokenizer, and the host-side check of token ids against the vocabulary.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { checkTokenIds } from '../../src/io/token-ids.js';
import { defaultMaxLength, padIdFor, vocabSizeOf } from '../../src/models/text-inputs.js';

/** The few tokenizer fields these read. */
const tok = (t: { pad?: number | null; eos?: number | null; max?: number }) =>
  ({
    padTokenId: t.pad ?? null,
    eosTokenId: t.eos ?? null,
    config: t.max === undefined ? {} : { model_max_length: t.max },
  }) as unknown as Tokenizer;

describe('text inputs', () => {
  test("padIdFor: the config's pad_token_id, else the tokenizer's pad, else its EOS, else 0", () => {
    assert.equal(padIdFor({ pad_token_id: 7 }, tok({ pad: 1, eos: 2 })), 7);
    assert.equal(padIdFor({ pad_token_id: null }, tok({ pad: 1, eos: 2 })), 1);
    assert.equal(padIdFor({}, tok({ eos: 2 })), 2);
    assert.equal(padIdFor({}, null), 0);
    assert.equal(padIdFor({ pad_token_id: -1 }, tok({ pad: 3 })), 3, 'a negative id is no id');
  });

  test("defaultMaxLength: the model's positions (RoBERTa reserves two), capped by model_max_length", () => {
    assert.equal(defaultMaxLength({ n_positions: 1024 }, null), 1024);
    assert.equal(defaultMaxLength({ model_type: 'roberta', max_position_embeddings: 514 }, null), 512);
    assert.equal(defaultMaxLength({ max_position_embeddings: 2048 }, tok({ max: 512 })), 512);
    // transformers' "no limit" sentinel (1e30) is ignored.
    assert.equal(defaultMaxLength({ max_position_embeddings: 2048 }, tok({ max: 1e30 })), 2048);
    assert.equal(defaultMaxLength({}, tok({ max: 128 })), 128);
    assert.equal(defaultMaxLength({}, null), undefined);
  });

  test('checkTokenIds names the first id outside the vocabulary and its position; vocabSizeOf reads vocab_size', () => {
    assert.equal(vocabSizeOf({ vocab_size: 128 }), 128);
    assert.equal(vocabSizeOf({ vocab_size: '128' }), undefined);
    assert.equal(vocabSizeOf({}), undefined);
    checkTokenIds([0, 127, 5], 128, 'ok');
    assert.throws(
      () => checkTokenIds([3, 128, 200], 128, 'the prompt'),
      /^RangeError: the prompt: token id 128 at position 1 is outside the model's vocabulary \(vocab_size 128\)$/,
    );
    assert.throws(() => checkTokenIds([1, -2], 128, 'x'), /token id -2 at position 1/);
    assert.throws(() => checkTokenIds([1.5], undefined, 'x'), /token id 1\.5 at position 0 is not a token id/);
    checkTokenIds([1e6], undefined, 'any non-negative i32 without a vocabulary');
  });
});
