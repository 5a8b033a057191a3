// Test support for the trainer: copies of the tiny parity fixtures (vocab 128) with a word-level
// tokenizer ([PAD] 0, [UNK] 1, [EOS] 2, words w3…w127), synthetic data files in a temp dir, and run
// configs with the defaults filled in.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type TrainConfig, resolveConfig } from '../../src/train/config.js';
import type { Sink } from '../../src/train/progress.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES = join(ROOT, 'test', 'parity', 'fixtures', 'models');
export const BIN = join(ROOT, 'bin', 'vera.js');

const SPECIALS = ['[PAD]', '[UNK]', '[EOS]'];

/** A WordPiece tokenizer.json over whole words (no special tokens added), 128 ids. */
export function tokenizerJson(): Record<string, unknown> {
  const vocab = Object.fromEntries(Array.from({ length: 128 }, (_, i) => [SPECIALS[i] ?? `w${i}`, i]));
  return {
    version: '1.0',
    added_tokens: SPECIALS.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  };
}

/** A scratch directory removed by cleanup(). */
export function scratch(tag: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `vera-${tag}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A copy of a parity fixture model with the tokenizer, in `root`/`name`. */
export function fixtureModel(root: string, name: string): string {
  const dir = join(root, name);
  if (existsSync(dir)) return dir;
  mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(FIXTURES, name, f), join(dir, f));
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson()));
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({ pad_token: '[PAD]', eos_token: '[EOS]', unk_token: '[UNK]', model_max_length: 64 }),
  );
  return dir;
}

/** A seeded LCG in [0, 1) (test data only). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

/**
 * Keyword classification: 6 words each, every word is the class's keyword (w7 "pos", w8 "neg") with
 * probability 1/2, else a random word w10…w109. Learnable through attention, not by the head alone.
 */
export function keywordCsv(file: string, n = 200, seed = 7): string {
  const rnd = lcg(seed);
  const rows = ['text,label'];
  for (let i = 0; i < n; i++) {
    const label = i % 2;
    const words = Array.from({ length: 4 + (i % 3) }, () =>
      rnd() < 0.5 ? (label ? 'w7' : 'w8') : `w${10 + Math.floor(rnd() * 100)}`,
    );
    rows.push(`${words.join(' ')},${label ? 'pos' : 'neg'}`);
  }
  writeFileSync(file, `${rows.join('\n')}\n`);
  return file;
}

/** Regression: the value is the fraction of w7 among 5 words. */
export function regressionCsv(file: string, n = 80, seed = 3): string {
  const rnd = lcg(seed);
  const rows = ['text,score'];
  for (let i = 0; i < n; i++) {
    const words = Array.from({ length: 5 }, () => (rnd() < 0.5 ? 'w7' : `w${10 + Math.floor(rnd() * 100)}`));
    rows.push(`${words.join(' ')},${words.filter((w) => w === 'w7').length / 5}`);
  }
  writeFileSync(file, `${rows.join('\n')}\n`);
  return file;
}

/** Plain text for causal LM: a repeating word pattern. */
export function lmText(file: string, words = 1200): string {
  writeFileSync(file, Array.from({ length: words }, (_, i) => `w${10 + ((i * 7) % 23)}`).join(' '));
  return file;
}

/** A full run config: small, quiet, one thread, no evaluation unless asked. */
export function runConfig(fields: Partial<TrainConfig>): TrainConfig {
  return resolveConfig({ threads: 1, validation_fraction: 0, logging_steps: 1, ...fields });
}

/** A sink that keeps the lines a run prints. */
export function quietSink(): Sink & { lines: string[] } {
  const lines: string[] = [];
  return { isTTY: false, write: (s: string) => void lines.push(s), lines };
}

export function readJsonLines(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** IDX files of n 16×16 grey images in 2 classes (bright top half or bright bottom half) and their labels. */
export function idxImages(dir: string, n = 48): { images: string; labels: string } {
  const header = (ndims: number, dims: number[]) => {
    const b = Buffer.alloc(4 + 4 * ndims);
    b[2] = 0x08;
    b[3] = ndims;
    dims.forEach((d, i) => b.writeUInt32BE(d, 4 + 4 * i));
    return b;
  };
  const rnd = lcg(11);
  const pixels = Buffer.alloc(n * 256);
  const labels = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let p = 0; p < 256; p++) {
      const top = p < 128;
      pixels[i * 256 + p] = Math.floor((top === (i % 2 === 0) ? 160 : 40) + rnd() * 90);
    }
  }
  const images = join(dir, 'images.idx');
  const labelFile = join(dir, 'labels.idx');
  writeFileSync(images, Buffer.concat([header(3, [n, 16, 16]), pixels]));
  writeFileSync(labelFile, Buffer.concat([header(1, [n]), labels]));
  return { images, labels: labelFile };
}

/** Sentence pairs for a BERT-style classifier: label 1 when both sentences hold w7. */
export function pairCsv(file: string, n = 64, seed = 5): string {
  const rnd = lcg(seed);
  const rows = ['a,b,label'];
  const sentence = (kw: boolean) =>
    Array.from({ length: 4 }, () => (kw && rnd() < 0.6 ? 'w7' : `w${10 + Math.floor(rnd() * 100)}`)).join(' ');
  for (let i = 0; i < n; i++) rows.push(`${sentence(i % 2 === 1)},${sentence(i % 2 === 1)},${i % 2}`);
  writeFileSync(file, `${rows.join('\n')}\n`);
  return file;
}
