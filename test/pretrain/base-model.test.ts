// The shipped base model (assets/base-model): loads with loadModel + Tokenizer.fromDir, fits the size
// budget, has a reasonable perplexity on held-out text and continues a prompt with English words.
// fixtures/heldout.txt holds five validation-split documents (KJV and WEB Psalm 25, the start of
// Northanger Abbey ch. 4, John Adams' 1800 address and Moby-Dick ch. 83), none seen in pretraining.

import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, describe, test } from 'node:test';
import { generate } from '../../src/generate/generate.js';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { loadModel } from '../../src/models/auto.js';
import type { GPT2LMHeadModel } from '../../src/models/gpt2/model.js';
import { splitDocs } from '../../src/pretrain/corpus.js';
import { evalBlocks } from '../../src/pretrain/data.js';
import { evaluate } from '../../src/pretrain/train.js';

const DIR = fileURLToPath(new URL('../../../assets/base-model/', import.meta.url));
const HELDOUT = fileURLToPath(new URL('../../../test/pretrain/fixtures/heldout.txt', import.meta.url));

describe('assets/base-model', () => {
  const model = loadModel(DIR) as GPT2LMHeadModel;
  const tok = Tokenizer.fromDir(DIR);
  const fast = model.parameters()[0]!.backend.name === 'native';
  after(() => model.dispose());

  test('is a GPT2LMHeadModel whose vocabulary matches its tokenizer, within 25 MB', () => {
    assert.equal(model.architecture, 'GPT2LMHeadModel');
    assert.equal(model.cfg.vocabSize, tok.vocabSize);
    assert.equal(tok.eosTokenId, model.config['eos_token_id']);
    assert.equal(tok.idToToken(tok.eosTokenId!), '<|endoftext|>');
    assert.ok(statSync(`${DIR}/model.safetensors`).size <= 25e6);
  });

  test('held-out perplexity is that of a trained model (README: 46.2 on this text)', () => {
    const ids: number[] = [];
    for (const d of splitDocs(readFileSync(HELDOUT, 'utf8'))) ids.push(...tok.encode(d).ids, tok.eosTokenId!);
    const windows = evalBlocks(Uint16Array.from(ids), model.cfg.nPositions);
    // The pure-TS backend is ~50× slower: score the first windows only (the KJV psalm) to stay quick.
    const ppl = Math.exp(evaluate(model, fast ? windows : windows.slice(0, 2)));
    // A uniform guess is 4096; the loose bound leaves room for another rebuild, not for a broken model.
    assert.ok(ppl > 10 && ppl < 60, `perplexity ${ppl.toFixed(2)}`);
  });

  test('greedy continuation of "In the beginning" is English-like text', () => {
    const prompt = tok.encode('In the beginning').ids;
    const out = generate(model, [prompt], { maxNewTokens: fast ? 24 : 16 })[0]!;
    const text = tok.decode(out);
    const words = text.split(/\s+/).filter(Boolean);
    assert.ok(words.length >= 8, text);
    const wordish = words.filter((w) => /^[A-Za-z]+[,.;:!?'"]*$/.test(w)).length;
    assert.ok(wordish / words.length > 0.8, text);
  });
});
