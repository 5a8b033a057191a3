// Text classification/regression loading (CSV with edge cases, TSV pairs, JSONL regression), label
// mapping, truncation, every error path naming file and line, skip counting; causal text packing.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DataError } from '../../src/data/errors.js';
import { loadCausalText, loadTextClassification } from '../../src/data/text.js';
import { BOS, EOS, FIXTURES, plainTokenizer, tempFile, tinyTokenizer } from './helpers.js';

const tok = tinyTokenizer();

/** Asserts fn throws a DataError for `file` (and `line`, when given) whose message matches `re`. */
function throwsData(fn: () => unknown, file: string, line: number | undefined, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected a DataError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.equal(e.line, line);
    assert.ok(e.message.includes(line === undefined ? file : `${file}:${line}`), e.message);
    assert.match(e.message, re);
    return true;
  });
}

describe('loadTextClassification: CSV', () => {
  const file = join(FIXTURES, 'reviews.csv');

  test('RFC 4180 fixture: BOM, CRLF, quoted commas/quotes/newlines, blank line; sorted label names', () => {
    const ds = loadTextClassification(file, { tokenizer: tok, textColumn: 'text', labelColumn: 'label' });
    assert.equal(ds.kind, 'classification');
    assert.equal(ds.length, 5);
    assert.deepEqual(ds.labelNames, ['negative', 'neutral', 'positive']);
    assert.equal(ds.skipped, 0);
    const texts = Array.from({ length: ds.length }, (_, i) =>
      tok.decode(ds.get(i).inputIds!, { skipSpecialTokens: true }),
    );
    assert.deepEqual(texts, [
      'A fine, funny film',
      'He said "wow" twice',
      'Two lines:\r\nstill one review',
      'Plain text without quotes',
      'Trailing field, empty next',
    ]);
    assert.deepEqual(
      Array.from({ length: ds.length }, (_, i) => ds.get(i).label),
      [2, 2, 0, 0, 1],
    );
    // Sources are the line each record starts on (the multi-line one takes two).
    assert.deepEqual(
      Array.from({ length: ds.length }, (_, i) => ds.get(i).source),
      [2, 3, 4, 6, 8].map((l) => `${file}:${l}`),
    );
    const ex = ds.get(0);
    assert.equal(ex.inputIds![0], BOS);
    assert.equal(ex.inputIds![ex.inputIds!.length - 1], EOS);
    assert.equal(ex.tokenTypeIds, undefined);
  });

  test('given labelNames fix the class ids; integer labels are class ids', () => {
    const ds = loadTextClassification(file, {
      tokenizer: tok,
      textColumn: 'text',
      labelColumn: 'label',
      labelNames: ['positive', 'negative', 'neutral'],
    });
    assert.deepEqual(
      Array.from({ length: ds.length }, (_, i) => ds.get(i).label),
      [0, 0, 1, 1, 2],
    );
    const ints = tempFile('.csv', 'text,label\nhello,1\nworld,0\nagain,10\n');
    const d2 = loadTextClassification(ints, { tokenizer: tok, textColumn: 'text', labelColumn: 'label' });
    assert.deepEqual(
      [0, 1, 2].map((i) => d2.get(i).label),
      [1, 0, 10],
    );
    assert.equal(d2.labelNames!.length, 11);
    const d3 = loadTextClassification(ints, {
      tokenizer: tok,
      textColumn: 'text',
      labelColumn: 'label',
      labelNames: ['neg', 'pos'],
      onBadRow: 'skip',
    });
    assert.equal(d3.length, 2);
    assert.equal(d3.skipped, 1);
  });

  test('truncation to maxLength keeps the special tokens', () => {
    const long = tempFile('.csv', `text,label\n"${'hello world '.repeat(20)}",a\n`);
    const ds = loadTextClassification(long, { tokenizer: tok, textColumn: 'text', labelColumn: 'label', maxLength: 8 });
    const ids = ds.get(0).inputIds!;
    assert.equal(ids.length, 8);
    assert.equal(ids[0], BOS);
    assert.equal(ids[7], EOS);
    assert.equal(ds.exampleLength!(0), 8);
  });

  test('missing column: DataError naming the file and listing the header', () => {
    throwsData(
      () => loadTextClassification(file, { tokenizer: tok, textColumn: 'sentence', labelColumn: 'label' }),
      file,
      1,
      /no column "sentence".*"id", "text", "label"/,
    );
    throwsData(
      () => loadTextClassification(file, { tokenizer: tok, textColumn: 'text', labelColumn: 'lable' }),
      file,
      1,
      /no column "lable" \(did you mean "label"\?\)/,
    );
  });

  test('each malformed row names file and line; skip counts them', () => {
    const bad = tempFile(
      '.csv',
      [
        'text,label', // 1
        'good one,pos', // 2
        'too,many,fields', // 3
        '   ,neg', // 4: empty text
        'no label,', // 5
        '"quote"junk,pos', // 6
        'fine,neg', // 7
      ].join('\n'),
    );
    const opts = { tokenizer: tok, textColumn: 'text', labelColumn: 'label' };
    throwsData(() => loadTextClassification(bad, opts), bad, 3, /3 fields, the header has 2/);
    const ds = loadTextClassification(bad, { ...opts, onBadRow: 'skip' });
    assert.equal(ds.length, 2);
    assert.equal(ds.skipped, 4);
    assert.deepEqual(ds.labelNames, ['neg', 'pos']);
    // One bad row at a time, each with its own message and line.
    const cases: [string, number, RegExp][] = [
      ['text,label\nok,a\n  ,b\n', 3, /empty text in "text"/],
      ['text,label\nok,a\nx,\n', 3, /empty label/],
      ['text,label\nok,a\n"x"y,b\n', 3, /after a closing quote/],
      ['text,label\nok,a\n"never closed,b\n', 3, /never closes/],
    ];
    for (const [content, line, re] of cases) {
      const f = tempFile('.csv', content);
      throwsData(() => loadTextClassification(f, opts), f, line, re);
    }
  });

  test('label not in labelNames and non-numeric regression values are row errors', () => {
    const f = tempFile('.csv', 'text,label\nok,pos\nmeh,maybe\n  ,pos\n'); // the first bad line is reported
    throwsData(
      () =>
        loadTextClassification(f, {
          tokenizer: tok,
          textColumn: 'text',
          labelColumn: 'label',
          labelNames: ['neg', 'pos'],
        }),
      f,
      3,
      /label "maybe" is not one of labelNames/,
    );
    const r = tempFile('.csv', 'text,score\nok,1.5\nmeh,high\nfine,-2e-1\n');
    throwsData(
      () => loadTextClassification(r, { tokenizer: tok, textColumn: 'text', labelColumn: 'score', regression: true }),
      r,
      3,
      /regression label "high" is not a number/,
    );
    const ds = loadTextClassification(r, {
      tokenizer: tok,
      textColumn: 'text',
      labelColumn: 'score',
      regression: true,
      onBadRow: 'skip',
    });
    assert.equal(ds.kind, 'regression');
    assert.deepEqual([ds.get(0).label, ds.get(1).label], [1.5, -0.2]);
    assert.equal(ds.skipped, 1);
    assert.equal(ds.labelNames, undefined);
  });

  test('file-level errors: unreadable, empty, unknown extension, nothing usable', () => {
    const missing = join(FIXTURES, 'nope.csv');
    throwsData(
      () => loadTextClassification(missing, { tokenizer: tok, textColumn: 't', labelColumn: 'l' }),
      missing,
      undefined,
      /cannot read: ENOENT/,
    );
    const empty = tempFile('.csv', '');
    throwsData(
      () => loadTextClassification(empty, { tokenizer: tok, textColumn: 't', labelColumn: 'l' }),
      empty,
      undefined,
      /empty file/,
    );
    const odd = tempFile('.txt', 'a');
    throwsData(
      () => loadTextClassification(odd, { tokenizer: tok, textColumn: 't', labelColumn: 'l' }),
      odd,
      undefined,
      /cannot tell the format.*pass format/,
    );
    const allBad = tempFile('.csv', 'text,label\n ,a\n');
    throwsData(
      () =>
        loadTextClassification(allBad, { tokenizer: tok, textColumn: 'text', labelColumn: 'label', onBadRow: 'skip' }),
      allBad,
      undefined,
      /no usable rows \(1 malformed rows skipped\)/,
    );
    const latin1 = tempFile(
      '.csv',
      Uint8Array.from([0x74, 0x2c, 0x6c, 0x0a, 0x61, 0x2c, 0x62, 0x0a, 0xe9, 0x2c, 0x62, 0x0a]),
    );
    throwsData(
      () => loadTextClassification(latin1, { tokenizer: tok, textColumn: 't', labelColumn: 'l' }),
      latin1,
      3,
      /not valid UTF-8/,
    );
  });
});

describe('loadTextClassification: TSV pairs and JSONL', () => {
  test('sentence pairs get token type ids', () => {
    const file = join(FIXTURES, 'pairs.tsv');
    const ds = loadTextClassification(file, {
      tokenizer: tok,
      textColumn: 'sentence1',
      pairColumn: 'sentence2',
      labelColumn: 'label',
    });
    assert.equal(ds.length, 3);
    assert.deepEqual(ds.labelNames, ['contradiction', 'entailment', 'neutral']);
    const ex = ds.get(0);
    const expected = tok.encode('The cat sat.', { pair: 'A cat is sitting.' });
    assert.deepEqual(ex.inputIds, expected.ids);
    assert.deepEqual(ex.tokenTypeIds, expected.tokenTypeIds);
    assert.ok(ex.tokenTypeIds!.includes(1));
    // A bare quote inside a TSV field is literal.
    assert.equal(tok.decode(ds.get(2).inputIds!, { skipSpecialTokens: true }), 'He left early.He had a 5 " tall hat.');
  });

  test('pair truncation keeps the special tokens and trims longest first', () => {
    const f = tempFile('.tsv', `a\tb\tl\nhello\t${'world '.repeat(30)}\tx\n`);
    const ds = loadTextClassification(f, {
      tokenizer: tok,
      textColumn: 'a',
      pairColumn: 'b',
      labelColumn: 'l',
      maxLength: 10,
    });
    const ex = ds.get(0);
    assert.equal(ex.inputIds!.length, 10);
    assert.equal(ex.tokenTypeIds!.length, 10);
    assert.equal(ex.inputIds![0], BOS);
    assert.equal(ex.inputIds![9], EOS);
    assert.equal(ex.inputIds!.filter((id) => id === EOS).length, 2);
  });

  test('JSONL regression with number and numeric-string values', () => {
    const file = join(FIXTURES, 'stsb.jsonl');
    const ds = loadTextClassification(file, {
      tokenizer: tok,
      textColumn: 's1',
      pairColumn: 's2',
      labelColumn: 'score',
      regression: true,
    });
    assert.equal(ds.kind, 'regression');
    assert.deepEqual(
      [0, 1, 2].map((i) => ds.get(i).label),
      [3.8, 0.5, 5],
    );
    assert.equal(ds.get(1).source, `${file}:2`);
  });

  test('JSONL row errors: bad JSON, not an object, missing key, non-string text', () => {
    const f = tempFile(
      '.jsonl',
      [
        '{"text": "ok", "label": "a"}',
        '{"text": "broken',
        '[1, 2]',
        '{"txt": "x", "label": "a"}',
        '{"text": 5, "label": "b"}',
        '',
        '{"text": "fine", "label": 1}',
      ].join('\n'),
    );
    const opts = { tokenizer: tok, textColumn: 'text', labelColumn: 'label' };
    throwsData(() => loadTextClassification(f, opts), f, 2, /invalid JSON/);
    const ds = loadTextClassification(f, { ...opts, onBadRow: 'skip' });
    assert.equal(ds.skipped, 4);
    assert.equal(ds.length, 2);
    assert.deepEqual(ds.labelNames, ['1', 'a']);
    assert.equal(ds.get(1).source, `${f}:7`);
    const missing = tempFile('.jsonl', '{"txt": "x", "label": "a"}\n');
    throwsData(() => loadTextClassification(missing, opts), missing, 1, /no key "text" \(did you mean "txt"\?\)/);
    const nonString = tempFile('.jsonl', '{"text": 5, "label": "a"}\n');
    throwsData(() => loadTextClassification(nonString, opts), nonString, 1, /"text" must be a string, got 5/);
    const arr = tempFile('.jsonl', '[1]\n');
    throwsData(() => loadTextClassification(arr, opts), arr, 1, /expected a JSON object/);
  });
});

describe('loadCausalText', () => {
  test('documents (prefix + text + EOS) are packed into blocks; labels = inputs', () => {
    const story = join(FIXTURES, 'story.txt');
    const other = tempFile('.txt', 'hello world');
    const ds = loadCausalText([story, other], { tokenizer: tok, blockSize: 16 });
    const stream = [
      BOS,
      ...tok.encode(readFileSync(story, 'utf8'), { addSpecialTokens: false }).ids,
      EOS,
      BOS,
      ...tok.encode('hello world', { addSpecialTokens: false }).ids,
      EOS,
    ];
    assert.equal(ds.kind, 'causal-lm');
    assert.equal(ds.length, Math.floor(stream.length / 16));
    for (let b = 0; b < ds.length; b++) {
      const ex = ds.get(b);
      assert.deepEqual(ex.inputIds, stream.slice(b * 16, (b + 1) * 16));
      assert.deepEqual(ex.labels, ex.inputIds);
    }
    assert.match(ds.get(0).source!, /story\.txt \(block 0\)/);
  });

  test('no BOS for a GPT-2-like tokenizer; addEos false; too little text is a DataError', () => {
    const plain = plainTokenizer();
    const f = tempFile('.txt', 'hello world hello world');
    const ds = loadCausalText([f], { tokenizer: plain, blockSize: 3, addEos: false });
    const ids = plain.encode('hello world hello world').ids;
    assert.deepEqual(ds.get(0).inputIds, ids.slice(0, 3));
    assert.equal(ds.length, Math.floor(ids.length / 3));
    throwsData(
      () => loadCausalText([f], { tokenizer: plain, blockSize: 1000 }),
      f,
      undefined,
      /fewer than one block of 1000/,
    );
  });
});
