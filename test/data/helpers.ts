// Test support for src/data: tiny byte-level BPE tokenizers built in memory (one with BERT-like pair
// handling and a ChatML chat template, one like GPT-2 with no special tokens added), temp files, and
// the fixture folder.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '../../src/io/tokenizer.js';
import { byteLevelBpeJson } from '../helpers/tokenizers.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURES = join(ROOT, 'test', 'data', 'fixtures');

/** Special tokens: <s>=0, </s>=1, <pad>=2, <|im_start|>=3, <|im_end|>=4. */
const SPECIALS = ['<s>', '</s>', '<pad>', '<|im_start|>', '<|im_end|>'];

const tokenizerJson = (postProcessor: unknown) => byteLevelBpeJson(SPECIALS, postProcessor);

/** <s> A </s> for one text, <s> A </s> B </s> (type ids 0… then 1…) for a pair. */
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

export const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export const BOS = 0;
export const EOS = 1;
export const PAD = 2;

/** Adds <s> … </s> (pairs with type ids), has a pad token; a chat template when `chat` (true: ChatML). */
export function tinyTokenizer(chat: boolean | string = false): Tokenizer {
  return Tokenizer.fromTokenizerJson(tokenizerJson(TEMPLATE), {
    bos_token: '<s>',
    eos_token: '</s>',
    pad_token: '<pad>',
    model_max_length: 512,
    ...(chat === false ? {} : { chat_template: chat === true ? CHATML : chat }),
  });
}

/** Like GPT-2: no special tokens added, EOS only. */
export function plainTokenizer(): Tokenizer {
  return Tokenizer.fromTokenizerJson(tokenizerJson(null), { eos_token: '</s>' });
}

let scratch: string | null = null;

/** A fresh temp directory for this test process. */
export function tempDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'vera-data-'));
  return scratch;
}

let counter = 0;

/** Writes `content` to a new temp file with the given name suffix and returns its path. */
export function tempFile(suffix: string, content: string | Uint8Array): string {
  const p = join(tempDir(), `f${counter++}${suffix}`);
  writeFileSync(p, content);
  return p;
}
