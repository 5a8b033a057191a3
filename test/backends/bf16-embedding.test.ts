// The embedding kernel with a bf16 table (frozen weights stored in bf16): on js and native, each
// selected row equals the stored bits widened exactly (f32 out; f64 out on js), at a row offset and with
// repeated ids, and out-of-range ids are errors naming the id and its position without writing the
// output; then ops.embedding on bf16 tables (f32 result, no gradient, the requires-grad error).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Backend, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import * as ops from '../../src/ops/index.js';
import { tensor } from '../../src/tensor/creation.js';
import { type DType, bf16ToF32, f32ToBf16 } from '../../src/backends/dtype.js';
import { DTypeError } from '../../src/tensor/errors.js';
import { Generator } from '../../src/tensor/random.js';

const backends: [string, Backend][] = [['js', new JsBackend()]];
if (nativeAvailable()) backends.push(['native', getBackend('native')]);

/** A bf16 table [rows, width] of random values (some large, some tiny, so the low bits matter). */
function table(rows: number, width: number, seed: number): Uint16Array {
  const u = new Generator(seed).uniform(rows * width, -1, 1);
  return Uint16Array.from(u, (x, i) => f32ToBf16(x * 10 ** ((i % 7) - 3)));
}

function put(
  be: Backend,
  dtype: DType,
  data: Uint16Array | Int32Array | Float32Array,
  shape: number[],
  offset = 0,
): View {
  const buf = be.alloc(dtype, data.length);
  be.upload(buf, dtype, 0, data);
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return { buf, dtype, offset, shape, strides };
}

describe('embedding kernel with a bf16 table', () => {
  for (const [name, be] of backends) {
    const outDTypes: DType[] = name === 'js' ? ['f32', 'f64'] : ['f32'];
    for (const outDType of outDTypes) {
      test(`${name}: rows widened exactly into ${outDType}, at a row offset, repeated ids`, () => {
        const [rows, width, skip] = [37, 19, 3];
        const bits = table(rows + skip, width, 1);
        const ids = Int32Array.from([0, 36, 5, 5, 17, 0, 36]);
        const w: View = { ...put(be, 'bf16', bits, [rows + skip, width]), offset: skip * width, shape: [rows, width] };
        const o: View = {
          buf: be.alloc(outDType, ids.length * width),
          dtype: outDType,
          offset: 0,
          shape: [ids.length, width],
          strides: [width, 1],
        };
        be.embedding(o, w, put(be, 'i32', ids, [ids.length]));
        const got = be.download(o);
        for (let n = 0; n < ids.length; n++)
          for (let j = 0; j < width; j++) {
            const want = bf16ToF32(bits[(skip + ids[n]!) * width + j]!);
            assert.equal(got[n * width + j], want, `row ${n} (id ${ids[n]}) column ${j}`);
          }
      });
    }

    test(`${name}: an id out of range names the id and its position and leaves the output alone`, () => {
      const w = put(be, 'bf16', table(5, 4, 2), [5, 4]);
      const sentinel = new Float32Array(3 * 4).fill(7);
      for (const bad of [5, -1]) {
        const out = put(be, 'f32', sentinel, [3, 4]);
        assert.throws(
          () => be.embedding(out, w, put(be, 'i32', Int32Array.from([1, 4, bad]), [3])),
          new RegExp(`[Ii]d ${bad} at position 2 is out of range for a table of 5 rows`),
        );
        assert.deepEqual([...(be.download(out) as Float32Array)], [...sentinel], 'nothing written');
      }
    });
  }

  test('js and native agree bit for bit', { skip: backends.length < 2 ? 'native backend unavailable' : false }, () => {
    const bits = table(50, 33, 3);
    const ids = Int32Array.from({ length: 40 }, (_, i) => (i * 17) % 50);
    const results = backends.map(([, be]) => {
      const out = put(be, 'f32', new Float32Array(ids.length * 33), [ids.length, 33]);
      be.embedding(out, put(be, 'bf16', bits, [50, 33]), put(be, 'i32', ids, [ids.length]));
      return [...(be.download(out) as Float32Array)];
    });
    assert.deepEqual(results[1], results[0]);
  });
});

describe('ops.embedding with a bf16 weight', () => {
  for (const [name, be] of backends) {
    test(`${name}: f32 rows equal the lookup in the widened f32 table; no gradient; requiresGrad is refused`, () => {
      const bits = table(11, 6, 4);
      const w = tensor(bits, { dtype: 'bf16', shape: [11, 6], backend: be });
      const wide = ops.cast(w, 'f32');
      const ids = tensor(Int32Array.from([3, 10, 0, 3, 7, 1]), { dtype: 'i32', shape: [2, 3], backend: be });
      const y = ops.embedding(ids, w);
      assert.equal(y.dtype, 'f32');
      assert.deepEqual(y.shape, [2, 3, 6]);
      assert.deepEqual([...(y.toArray() as Float32Array)], [...(ops.embedding(ids, wide).toArray() as Float32Array)]);
      assert.equal(y.gradFn, null, 'a frozen table records no node');
      // setRequiresGrad refuses bf16, but the field is public: the op checks it too.
      w.requiresGrad = true;
      assert.throws(
        () => ops.embedding(ids, w),
        (e: Error) => e instanceof DTypeError && /bf16 weight \(11, 6\) requires grad/.test(e.message),
      );
      w.requiresGrad = false;
      for (const table of [w, wide])
        assert.throws(
          () => ops.embedding(tensor(Int32Array.from([2, 11]), { dtype: 'i32', backend: be }), table),
          /[Ii]d 11 at position 1 is out of range for a table of 11 rows/,
        );
    });
  }
});
