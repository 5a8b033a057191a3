// Instruction data: −100 masking of prompts ({prompt, response}, with and without a chat template), chat
// conversations with loss on assistant turns only (spans found by rendering prefixes), truncation, and
// row errors naming file and line.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DataError } from '../../src/data/errors.js';
import { IGNORE_INDEX } from '../../src/data/example.js';
import { loadInstructions } from '../../src/data/instructions.js';
import { BOS, EOS, FIXTURES, plainTokenizer, tempFile, tinyTokenizer } from './helpers.js';

const chat = tinyTokenizer(true);
const noChat = tinyTokenizer(false);
const file = join(FIXTURES, 'instructions.jsonl');

/** Runs of consecutive unmasked positions, as [start, end). */
function unmaskedRuns(labels: number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (let t = 0; t < labels.length; t++) {
    if (labels[t] === IGNORE_INDEX) continue;
    const last = runs[runs.length - 1];
    if (last !== undefined && last[1] === t) last[1] = t + 1;
    else runs.push([t, t + 1]);
  }
  return runs;
}

function checkLabels(ids: number[], labels: number[]): void {
  assert.equal(labels.length, ids.length);
  labels.forEach((l, t) => assert.ok(l === IGNORE_INDEX || l === ids[t], `label ${t} is neither −100 nor the id`));
}

/** Asserts fn throws a DataError for `f`, line `line`, whose message names f:line and matches re. */
function throwsRow(fn: () => unknown, f: string, line: number, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DataError, String(e));
    assert.equal(e.file, f);
    assert.equal(e.line, line);
    assert.ok(e.message.includes(`${f}:${line}:`), e.message);
    assert.match(e.message, re);
    return true;
  });
}

describe('loadInstructions: {prompt, response}', () => {
  test('with a chat template: the prompt is the rendered user turn + generation prompt, masked', () => {
    const ds = loadInstructions(file, { tokenizer: chat });
    assert.equal(ds.kind, 'causal-lm');
    assert.equal(ds.length, 3);
    assert.equal(ds.skipped, 0);
    const ex = ds.get(0);
    checkLabels(ex.inputIds!, ex.labels!);
    const promptText = chat.applyChatTemplate([{ role: 'user', content: 'What is the capital of France?' }], {
      addGenerationPrompt: true,
    });
    const promptIds = chat.encode(promptText, { addSpecialTokens: false }).ids;
    assert.deepEqual(ex.inputIds!.slice(0, promptIds.length), promptIds);
    assert.deepEqual(unmaskedRuns(ex.labels!), [[promptIds.length, ex.inputIds!.length]]);
    const target = ex.labels!.slice(promptIds.length);
    assert.equal(target[target.length - 1], EOS);
    assert.equal(chat.decode(target, { skipSpecialTokens: true }), 'Paris.');
    assert.equal(chat.decode(target), 'Paris.</s>');
    assert.equal(ex.source, `${file}:1`);
  });

  test('without a chat template: BOS + prompt + response + EOS', () => {
    const twoLines = tempFile('.jsonl', readFileSync(file, 'utf8').split('\n').slice(0, 2).join('\n'));
    const ex = loadInstructions(twoLines, { tokenizer: noChat }).get(1);
    const p = noChat.encode('Say hello', { addSpecialTokens: false }).ids;
    const r = noChat.encode('hello world', { addSpecialTokens: false }).ids;
    assert.deepEqual(ex.inputIds, [BOS, ...p, ...r, EOS]);
    assert.deepEqual(ex.labels, [...new Array<number>(p.length + 1).fill(IGNORE_INDEX), ...r, EOS]);
    const target = ex.labels!.filter((l) => l !== IGNORE_INDEX);
    assert.equal(noChat.decode(target, { skipSpecialTokens: true }), 'hello world');
  });

  test('a tokenizer that adds nothing (GPT-2-like): prompt + response + EOS', () => {
    const plain = plainTokenizer();
    const f = tempFile('.jsonl', '{"prompt": "Q: hello", "response": " world"}\n');
    const ex = loadInstructions(f, { tokenizer: plain }).get(0);
    const p = plain.encode('Q: hello').ids;
    assert.deepEqual(ex.inputIds!.slice(0, p.length), p);
    const target = ex.labels!.filter((l) => l !== IGNORE_INDEX);
    assert.equal(plain.decode(target, { skipSpecialTokens: true }), ' world');
  });

  test('custom keys; truncation; a prompt that fills maxLength is a bad row', () => {
    const f = tempFile(
      '.jsonl',
      [`{"q": "hi", "a": "${'hello world '.repeat(5)}"}`, `{"q": "${'x'.repeat(40)}", "a": "y"}`].join('\n'),
    );
    const opts = { tokenizer: noChat, promptKey: 'q', responseKey: 'a', maxLength: 12 };
    throwsRow(() => loadInstructions(f, opts), f, 2, /the prompt alone fills maxLength 12/);
    const ds = loadInstructions(f, { ...opts, onBadRow: 'skip' });
    assert.equal(ds.length, 1);
    assert.equal(ds.skipped, 1);
    assert.equal(ds.get(0).inputIds!.length, 12);
    assert.equal(ds.get(0).labels!.length, 12);
  });
});

describe('loadInstructions: chat messages', () => {
  test('loss on assistant turns only (content + end of turn), spans from prefix renderings', () => {
    const ex = loadInstructions(file, { tokenizer: chat }).get(2);
    checkLabels(ex.inputIds!, ex.labels!);
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Bye' },
      { role: 'assistant', content: 'Goodbye.' },
    ];
    assert.equal(chat.decode(ex.inputIds!), chat.applyChatTemplate(messages));
    const runs = unmaskedRuns(ex.labels!);
    assert.deepEqual(
      runs.map(([s, e]) => chat.decode(ex.labels!.slice(s, e))),
      ['Hello!<|im_end|>\n', 'Goodbye.<|im_end|>\n'],
    );
    // Everything before the first assistant content — system and user turns, the assistant header — is masked.
    assert.equal(
      chat.decode(ex.inputIds!.slice(0, runs[0]![0])),
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    assert.equal(
      chat.decode(ex.inputIds!.slice(runs[0]![1], runs[1]![0])),
      '<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  test('a template that always appends the generation prompt (as Llama 3 base) still gives exact spans', () => {
    const always = tinyTokenizer(
      // (The prompt is a string literal: Jinja drops a template's final newline.)
      "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{{ '<|im_start|>assistant\n' }}",
    );
    const ex = loadInstructions(file, { tokenizer: always }).get(2);
    checkLabels(ex.inputIds!, ex.labels!);
    const runs = unmaskedRuns(ex.labels!);
    assert.deepEqual(
      runs.map(([s, e]) => always.decode(ex.labels!.slice(s, e))),
      ['Hello!<|im_end|>\n', 'Goodbye.<|im_end|>\n'],
    );
    // The trailing generation prompt is dropped: the example ends with the last assistant turn.
    assert.equal(runs.at(-1)![1], ex.inputIds!.length);
  });

  test('row errors name file and line; skip counts them', () => {
    const rows = [
      '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}',
      '{"messages": []}',
      '{"messages": [{"role": "user"}]}',
      '{"messages": [{"role": "user", "content": "only a question"}]}',
      '{"prompt": "p"}',
      '{"prompt": "p", "response": "  "}',
      'not json',
      '"a string"',
    ];
    const f = tempFile('.jsonl', rows.join('\n'));
    const ds = loadInstructions(f, { tokenizer: chat, onBadRow: 'skip' });
    assert.equal(ds.length, 1);
    assert.equal(ds.skipped, 7);
    throwsRow(() => loadInstructions(f, { tokenizer: chat }), f, 2, /must be a non-empty list/);
    const expect: [number, RegExp][] = [
      [3, /"messages"\[0\] must be \{"role": string, "content": string\}/],
      [4, /no assistant turn/],
      [5, /expected "prompt" and "response", or "messages"; the line has "prompt"/],
      [6, /empty "response"/],
      [7, /invalid JSON/],
      [8, /expected a JSON object/],
    ];
    for (const [line, re] of expect) {
      // Alone in a file after a blank line: reported on line 2 with its own message.
      const one = tempFile('.jsonl', `\n${rows[line - 1]!}\n`);
      throwsRow(() => loadInstructions(one, { tokenizer: chat }), one, 2, re);
    }
  });

  test('conversations without a chat template are fatal; prefix-unstable templates are refused', () => {
    const f = tempFile(
      '.jsonl',
      '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}',
    );
    throwsRow(() => loadInstructions(f, { tokenizer: noChat, onBadRow: 'skip' }), f, 1, /need a chat template/);
    // A template that marks the last turn (as templates that drop earlier turns' reasoning do).
    const unstable = tinyTokenizer(
      '{% for m in messages %}{% if loop.last %}[last]{% endif %}{{ m.role }}: {{ m.content }}\n{% endfor %}',
    );
    throwsRow(
      () => loadInstructions(f, { tokenizer: unstable }),
      f,
      1,
      /does not render this conversation prefix by prefix \(assistant message 1\)/,
    );
  });
});
