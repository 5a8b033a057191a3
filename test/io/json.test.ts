// The small io helpers: readJsonFile's errors, atomic writes, the JSON key scan (order and
// duplicates) and the "did you mean" suggestions.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { writeAtomically, writeFileAtomic } from '../../src/io/atomic.js';
import { IoError } from '../../src/io/errors.js';
import { scanObjectKeys } from '../../src/io/json-keys.js';
import { jsonSyntaxErrorOffset } from '../../src/io/json-syntax.js';
import { lineColumn, readJsonFile } from '../../src/io/json.js';
import { Rng } from '../../bench/safetensors-fuzz.js';
import { closeNames } from '../../src/io/suggest.js';

const dir = mkdtempSync(join(tmpdir(), 'vera-io-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('readJsonFile', () => {
  test('parses a file, with or without a byte-order mark', () => {
    const p = join(dir, 'config.json');
    writeFileSync(p, '{"hidden_size": 768, "architectures": ["GPT2LMHeadModel"]}');
    assert.deepEqual(readJsonFile(p), { hidden_size: 768, architectures: ['GPT2LMHeadModel'] });
    writeFileSync(p, '\ufeff[1]');
    assert.deepEqual(readJsonFile(p), [1]);
  });

  test('syntax errors name the file, line and column', () => {
    const p = join(dir, 'adapter_config.json');
    writeFileSync(p, '{\n  "r": 256,\n  "target_modules": ["q_proj",]\n}');
    assert.throws(
      () => readJsonFile(p),
      (e: unknown) =>
        e instanceof IoError &&
        e.file === p &&
        e.message.startsWith(`[json] ${p}: invalid JSON at line 3, column 31 (offset 44): `),
    );
    writeFileSync(p, '{"a": ');
    assert.throws(() => readJsonFile(p), /invalid JSON at line 1, column 7 \(offset 6\): Unexpected end of JSON input/);
  });

  test('unreadable files and invalid UTF-8', () => {
    const missing = join(dir, 'nope.json');
    assert.throws(
      () => readJsonFile(missing),
      (e: unknown) => e instanceof IoError && e.file === missing && /cannot read: ENOENT/.test(e.message),
    );
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x7d]));
    assert.throws(() => readJsonFile(bad), /not valid UTF-8/);
  });

  test('lineColumn counts from 1', () => {
    assert.deepEqual(lineColumn('ab\ncd\ne', 0), { line: 1, column: 1 });
    assert.deepEqual(lineColumn('ab\ncd\ne', 4), { line: 2, column: 2 });
    assert.deepEqual(lineColumn('ab\ncd\ne', 6), { line: 3, column: 1 });
  });
});

describe('jsonSyntaxErrorOffset', () => {
  test('points at the first offending character', () => {
    assert.equal(jsonSyntaxErrorOffset('{"a": [1, 2,]}'), 12);
    assert.equal(jsonSyntaxErrorOffset('{"a" 1}'), 5);
    assert.equal(jsonSyntaxErrorOffset('[1, 2'), 5);
    assert.equal(jsonSyntaxErrorOffset('{"a":"x\\q"}'), 7);
    assert.equal(jsonSyntaxErrorOffset('[01]'), 2);
    assert.equal(jsonSyntaxErrorOffset(' {"a":[{},[],"\\u00e9",-1.5e+3,true,null]} '), -1);
    assert.equal(jsonSyntaxErrorOffset('['.repeat(100_000) + ']'.repeat(100_000)), -1, 'deep nesting, no recursion');
  });

  test('agrees with JSON.parse on mutated JSON texts', () => {
    const rng = new Rng(5);
    const seeds = [
      '{"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"__metadata__":{"k":"v\\n"}}',
      '[1,-2.5e-3,true,false,null,"\\u00e9"]',
    ];
    const alphabet = '{}[]",:\\ -+.eE0123456789tfnaulsr\t\n';
    for (let k = 0; k < 3000; k++) {
      let t = rng.pick(seeds);
      for (let m = 1 + rng.int(3); m > 0; m--) {
        const at = rng.int(t.length + 1);
        const op = rng.int(3);
        const ch = alphabet[rng.int(alphabet.length)]!;
        t =
          op === 0
            ? t.slice(0, at) + ch + t.slice(at)
            : op === 1
              ? t.slice(0, at) + t.slice(at + 1)
              : t.slice(0, at) + ch + t.slice(at + 1);
      }
      let valid = true;
      try {
        JSON.parse(t);
      } catch {
        valid = false;
      }
      assert.equal(jsonSyntaxErrorOffset(t) === -1, valid, t);
    }
  });
});

describe('atomic writes', () => {
  test('writeFileAtomic creates and replaces files, leaving no temporary file', () => {
    const sub = mkdtempSync(join(dir, 'a-'));
    const p = join(sub, 'out.json');
    writeFileAtomic(p, '{"v":1}');
    writeFileAtomic(p, new Uint8Array([0x7b, 0x7d]));
    assert.equal(readFileSync(p, 'utf8'), '{}');
    assert.deepEqual(readdirSync(sub), ['out.json']);
  });

  test('a failing writer leaves the target untouched and removes its temporary file', () => {
    const sub = mkdtempSync(join(dir, 'a-'));
    const p = join(sub, 'out.bin');
    writeFileAtomic(p, 'old');
    assert.throws(
      () =>
        writeAtomically(p, () => {
          throw new Error('disk full');
        }),
      (e: unknown) => e instanceof IoError && e.file === p && /write failed: disk full/.test(e.message),
    );
    assert.equal(readFileSync(p, 'utf8'), 'old');
    assert.deepEqual(readdirSync(sub), ['out.bin']);
    const missing = join(sub, 'no', 'x');
    assert.throws(
      () => writeFileAtomic(missing, 'x'),
      (e: unknown) => e instanceof IoError && e.file === missing,
    );
  });
});

describe('scanObjectKeys', () => {
  test('keeps top-level key order, including integer-like keys', () => {
    assert.deepEqual(scanObjectKeys('{"b":1,"10":{"x":[1,{"y":2}]},"2":"}","a":null}').topKeys, ['b', '10', '2', 'a']);
  });
  test('finds duplicates at any depth, comparing decoded keys', () => {
    assert.deepEqual(scanObjectKeys('{"a":1,"b":2,"a":3}').duplicate, { key: 'a', path: [], pos: 13 });
    assert.deepEqual(scanObjectKeys('{"t":{"dtype":"F32","dtype":"F16"}}').duplicate?.path, ['t']);
    assert.equal(scanObjectKeys('{"\\u0061":1,"a":2}').duplicate?.key, 'a');
    assert.equal(scanObjectKeys('{"a\\\\":1,"a\\\\\\"":2}').duplicate, null);
    assert.equal(scanObjectKeys('{"a":[{"k":1},{"k":2}]}').duplicate, null, 'same key in sibling objects');
  });
});

describe('closeNames', () => {
  const names = ['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight', 'lm_head.weight'];
  test('suggests names differing by a prefix or a typo, best first', () => {
    assert.deepEqual(closeNames('layers.0.self_attn.q_proj.weight', names), ['model.layers.0.self_attn.q_proj.weight']);
    assert.deepEqual(closeNames('model.layers.0.self_attn.v_proj.weight', names), [
      'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.q_proj.weight',
    ]);
    assert.deepEqual(closeNames('lm_head.weigth', names), ['lm_head.weight']);
    assert.deepEqual(closeNames('something.else', names), []);
  });
});
