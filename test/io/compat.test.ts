// Byte-for-byte compatibility with Python's safetensors: writing the tensors of test/io/fixtures/
// make_fixtures.py must reproduce the committed .safetensors files exactly, and reading those files
// must give the tensors back. NOTE: the committed files were made by make_fixtures.py --spec (a
// by-hand serializer following safetensors' source) because no safetensors package was available;
// run `python3 make_fixtures.py --check` where safetensors ≥ 0.4 is installed to confirm them.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../../src/backends/registry.js';
import { SafetensorsReader, writeSafetensors } from '../../src/io/safetensors.js';
import { tensor } from '../../src/tensor/creation.js';
import { f32ToBf16, f32ToF16 } from '../../src/backends/dtype.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/** test/io/fixtures in the source tree (this file runs from dist/test/io). */
const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'io', 'fixtures');
const js = getBackend('js');
const dir = mkdtempSync(join(tmpdir(), 'vera-st-compat-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const range = (n: number, f: (i: number) => number): number[] => Array.from({ length: n }, (_, i) => f(i));
const f32 = (values: number[], shape?: number[]): Tensor => tensor(new Float32Array(values), { shape, backend: js });
const quarter = range(8, (i) => (i - 3) / 4);

/** The tensors of make_fixtures.py's cases(), built with the engine. */
const FIXTURE_TENSORS: Record<string, () => { tensors: Record<string, Tensor>; metadata?: Record<string, string> }> = {
  f32_single: () => ({
    tensors: {
      'attn.0': f32(
        range(6, (i) => i),
        [1, 2, 3],
      ),
    },
  }),
  mixed: () => ({
    tensors: {
      'a.bf16': tensor(Uint16Array.from(quarter, f32ToBf16), { dtype: 'bf16', shape: [2, 4], backend: js }),
      'b.f16': tensor(Uint16Array.from([0.5, -1, 65504, 2 ** -14, 2 ** -24, -0], f32ToF16), {
        dtype: 'f16',
        backend: js,
      }),
      'c.f32': f32(
        range(12, (i) => i / 8),
        [3, 4],
      ),
      'd.f64': tensor(new Float64Array([0.1, 1e300, -2]), { dtype: 'f64', backend: js }),
      'e.i32': tensor(new Int32Array([-(2 ** 31), 2 ** 31 - 1, 0]), { dtype: 'i32', backend: js }),
      'i.bool': tensor(new Uint8Array([1, 0, 1]), { dtype: 'bool', backend: js }),
      'j.i64': tensor(new BigInt64Array([-3n, 0n, 5n, 2n ** 31n - 1n]), { dtype: 'i64', backend: js }),
      'k.big_i64': tensor(new BigInt64Array([2n ** 40n, -(2n ** 40n)]), { dtype: 'i64', backend: js }),
      scalar: f32([3.5], []),
      empty: f32([], [0, 3]),
    },
    metadata: { format: 'pt' },
  }),
  peft_vera: () => ({
    tensors: {
      'base_model.vera_A': f32(
        range(32, (i) => i / 64),
        [4, 8],
      ),
      'base_model.vera_B': f32(
        range(32, (i) => i / -64),
        [8, 4],
      ),
      'base_model.model.layers.0.q_proj.vera_lambda_b': f32(range(8, (i) => i / 16)),
      'base_model.model.layers.0.q_proj.vera_lambda_d': f32([0.125, 0.125, 0.125, 0.125]),
    },
    metadata: { format: 'pt' },
  }),
  names: () => ({
    tensors: Object.fromEntries(
      ['Z', 'a', 'a"b\\c', 'tab\tx', '\u00e9', '\uffff', '\u{1F600}'].map((n, i) => [n, f32([i])]),
    ),
    metadata: { note: 'caf\u00e9 "quoted"\n' },
  }),
};

describe('writer output is byte-identical to the reference files', () => {
  for (const [name, make] of Object.entries(FIXTURE_TENSORS)) {
    test(`${name}.safetensors`, () => {
      const { tensors, metadata } = make();
      const out = join(dir, `${name}.safetensors`);
      writeSafetensors(out, tensors, metadata);
      const ours = readFileSync(out);
      const ref = readFileSync(join(FIXTURES, `${name}.safetensors`));
      const n = Number(ref.readBigUInt64LE(0));
      assert.equal(ours.subarray(8, 8 + n).toString(), ref.subarray(8, 8 + n).toString(), 'header');
      assert.ok(ours.equals(ref), 'bytes');
    });
  }
});

describe('reading the reference files', () => {
  const open = (name: string): SafetensorsReader => SafetensorsReader.open(join(FIXTURES, `${name}.safetensors`));

  test('mixed: every engine dtype, metadata, a scalar and an empty tensor', () => {
    const r = open('mixed');
    assert.deepEqual(r.metadata, { format: 'pt' });
    const nums = (n: string, dtype?: 'f64' | 'i64' | 'bf16') => r.tensor(n, { backend: js, dtype }).toNumbers();
    assert.deepEqual(nums('a.bf16'), quarter);
    assert.deepEqual(r.tensor('a.bf16', { backend: js, dtype: 'bf16' }).shape, [2, 4]);
    assert.deepEqual(nums('b.f16'), [0.5, -1, 65504, 2 ** -14, 2 ** -24, -0]);
    assert.deepEqual(
      nums('c.f32'),
      range(12, (i) => i / 8),
    );
    assert.deepEqual(nums('d.f64', 'f64'), [0.1, 1e300, -2]);
    assert.deepEqual(nums('d.f64'), [Math.fround(0.1), Infinity, -2]);
    assert.deepEqual(nums('e.i32'), [-(2 ** 31), 2 ** 31 - 1, 0]);
    assert.deepEqual(nums('i.bool'), [1, 0, 1]);
    assert.deepEqual(nums('j.i64'), [-3, 0, 5, 2 ** 31 - 1]);
    assert.deepEqual(nums('k.big_i64', 'i64'), [2 ** 40, -(2 ** 40)]);
    assert.throws(() => nums('k.big_i64'), /element 0 = 1099511627776 does not fit i32/);
    assert.equal(r.tensor('scalar', { backend: js }).item(), 3.5);
    assert.deepEqual(r.tensor('empty', { backend: js }).shape, [0, 3]);
    r.close();
  });

  test('small_ints: I16, I8, U8 and BOOL load as i32 (and bool)', () => {
    const r = open('small_ints');
    assert.deepEqual(r.tensor('i16', { backend: js }).toNumbers(), [-32768, 32767, 1]);
    assert.deepEqual(r.tensor('i8', { backend: js }).toNumbers(), [-128, 127]);
    assert.deepEqual(r.tensor('u8', { backend: js }).toNumbers(), [0, 255, 7]);
    const mask = r.tensor('mask', { backend: js });
    assert.equal(mask.dtype, 'bool');
    assert.deepEqual(mask.shape, [2, 2]);
    assert.deepEqual(mask.toNumbers(), [1, 0, 0, 1]);
    r.close();
  });

  test('names: escapes and UTF-8 order survive', () => {
    const r = open('names');
    assert.deepEqual(r.names(), ['Z', 'a', 'a"b\\c', 'tab\tx', '\u00e9', '\uffff', '\u{1F600}']);
    assert.deepEqual(r.metadata, { note: 'caf\u00e9 "quoted"\n' });
    assert.equal(r.tensor('\u{1F600}', { backend: js }).item(), 6);
    r.close();
  });

  test('peft_vera: the adapter tensors', () => {
    const r = open('peft_vera');
    assert.deepEqual(r.info('base_model.vera_A').shape, [4, 8]);
    assert.deepEqual(
      r.tensor('base_model.model.layers.0.q_proj.vera_lambda_b', { backend: js }).toNumbers(),
      range(8, (i) => i / 16),
    );
    r.close();
  });
});
