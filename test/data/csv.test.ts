// The RFC 4180 parser: quoted delimiters, newlines and doubled quotes, CRLF/LF/CR, BOM, blank lines,
// line numbers of multi-line records, text after a closing quote, unterminated quotes.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CsvSyntaxError, parseDelimited } from '../../src/data/csv.js';

const fields = (text: string, d = ',') => parseDelimited(text, d).map((r) => r.fields);

describe('parseDelimited', () => {
  test('plain records, with and without a final newline', () => {
    assert.deepEqual(fields('a,b\n1,2\n'), [
      ['a', 'b'],
      ['1', '2'],
    ]);
    assert.deepEqual(fields('a,b\n1,2'), [
      ['a', 'b'],
      ['1', '2'],
    ]);
  });

  test('quoted fields hold delimiters, newlines and doubled quotes', () => {
    const recs = parseDelimited('x,y\n"a,b","say ""hi"""\n"multi\nline",z\nlast,one\n', ',');
    assert.deepEqual(
      recs.map((r) => r.fields),
      [
        ['x', 'y'],
        ['a,b', 'say "hi"'],
        ['multi\nline', 'z'],
        ['last', 'one'],
      ],
    );
    assert.deepEqual(
      recs.map((r) => r.line),
      [1, 2, 3, 5],
    );
  });

  test('CRLF, lone CR, and CRLF inside quotes (kept) count as one line break each', () => {
    const recs = parseDelimited('a\r\n"b\r\nc"\rd\r\n', ',');
    assert.deepEqual(
      recs.map((r) => r.fields),
      [['a'], ['b\r\nc'], ['d']],
    );
    assert.deepEqual(
      recs.map((r) => r.line),
      [1, 2, 4],
    );
  });

  test('BOM is dropped; empty fields and trailing delimiters are fields', () => {
    assert.deepEqual(fields('\ufeffa,b,c\n,,\n1,,3\n'), [
      ['a', 'b', 'c'],
      ['', '', ''],
      ['1', '', '3'],
    ]);
  });

  test('blank and whitespace-only lines are skipped, but "" is a record', () => {
    const recs = parseDelimited('h\n\n   \nx\n""\n', ',');
    assert.deepEqual(
      recs.map((r) => [r.fields, r.line]),
      [
        [['h'], 1],
        [['x'], 4],
        [[''], 5],
      ],
    );
  });

  test('a quote inside an unquoted field is literal (TSV files hold bare quotes)', () => {
    assert.deepEqual(fields('a\t5 " tall\tb\n', '\t'), [['a', '5 " tall', 'b']]);
  });

  test('TSV: tabs split, commas do not', () => {
    assert.deepEqual(fields('a,b\tc\n"x\ty"\tz\n', '\t'), [
      ['a,b', 'c'],
      ['x\ty', 'z'],
    ]);
  });

  test('text after a closing quote is a row error; parsing goes on', () => {
    const recs = parseDelimited('h,i\n"ab"cd,1\nok,2\n', ',');
    assert.equal(recs.length, 3);
    assert.match(recs[1]!.error!, /after a closing quote/);
    assert.equal(recs[1]!.line, 2);
    assert.deepEqual(recs[2]!.fields, ['ok', '2']);
  });

  test('an unterminated quote throws with the line it opened on', () => {
    assert.throws(
      () => parseDelimited('h\nok\n"never\nclosed\n', ','),
      (e: unknown) => e instanceof CsvSyntaxError && e.line === 3 && /never closes/.test(e.message),
    );
  });

  test('bad delimiters are refused', () => {
    assert.throws(() => parseDelimited('a', '"'), RangeError);
    assert.throws(() => parseDelimited('a', ',,'), RangeError);
  });
});
