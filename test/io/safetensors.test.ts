// SafetensorsReader and writeSafetensors: round trips of every dtype on every backend, the dtype
// conversions on load, safetensors' exact file layout, metadata, header order, unaligned data, chunked
// reads of large tensors, and the reader's and writer's API contracts.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { rawSafetensors } from '../../bench/safetensors-fuzz.js';
import type { Backend } from '../../src/backends/backend.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { SafetensorsError, SafetensorsReader, writeSafetensors } from '../../src/io/safetensors.js';
import { tensor } from '../../src/tensor/creation.js';
import { type DType, type HostArray, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../../src/backends/dtype.js';
import { Tensor } from '../../src/tensor/tensor.js';

const dir = mkdtempSync(join(tmpdir(), 'vera-st-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (name = 'x'): string => join(dir, `${name}-${fileNo++}.safetensors`);
const put = (bytes: Uint8Array): string => {
  const p = tmp('raw');
  writeFileSync(p, bytes);
  return p;
};

const backends: { name: string; backend: Backend }[] = [{ name: 'js', backend: getBackend('js') }];
if (nativeAvailable()) backends.push({ name: 'native', backend: getBackend('native') });

/** Host data of each engine dtype, with the awkward values (NaN payloads, -0, subnormals, extremes). */
function sample(dtype: DType): HostArray {
  switch (dtype) {
    case 'f32':
      return new Float32Array([0, -0, 1.5, -2.25, NaN, Infinity, -Infinity, 1e-45, 3.4028234663852886e38, Math.PI]);
    case 'f64':
      return new Float64Array([0, -0, 0.1, 1e300, -5e-324, NaN, Infinity, Math.E]);
    case 'bf16':
      return new Uint16Array([0x0000, 0x8000, 0x3f80, 0xc040, 0x7f80, 0x7fc1, 0x0001, 0x7f7f, 0x4049]);
    case 'f16':
      return new Uint16Array([0x0000, 0x8000, 0x3c00, 0xc000, 0x7c00, 0x7e01, 0x0001, 0x7bff, 0x0400]);
    case 'i32':
      return new Int32Array([0, -1, 2147483647, -2147483648, 12345]);
    case 'i64':
      return new BigInt64Array([0n, -1n, 9223372036854775807n, -9223372036854775808n, 1n << 40n]);
    case 'bool':
      return new Uint8Array([1, 0, 0, 1, 1]);
  }
}

const bytesOf = (a: HostArray): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('round trip of every dtype', () => {
  for (const { name, backend } of backends) {
    test(`${name}: each dtype is written as its safetensors dtype and read back bit for bit`, () => {
      const dtypes = backend.dtypes.filter((d): d is DType => d !== undefined);
      const ts: Record<string, Tensor> = {};
      for (const d of dtypes) ts[`t.${d}`] = tensor(sample(d), { dtype: d, backend });
      const path = tmp();
      writeSafetensors(path, ts);
      const r = SafetensorsReader.open(path);
      const expected: Record<DType, string> = {
        f32: 'F32',
        f64: 'F64',
        bf16: 'BF16',
        f16: 'F16',
        i32: 'I32',
        i64: 'I64',
        bool: 'BOOL',
      };
      for (const d of dtypes) {
        assert.equal(r.info(`t.${d}`).dtype, expected[d]);
        const back = r.tensor(`t.${d}`, { dtype: d, backend });
        assert.equal(back.dtype, d);
        assert.equal(back.backend, backend);
        assert.deepEqual(back.shape, [sample(d).length]);
        assert.ok(bytesOf(back.toArray()).equals(bytesOf(sample(d))), `${d} bytes differ`);
        assert.ok(bytesOf(sample(d)).equals(r.bytes(`t.${d}`)));
      }
      for (const t of Object.values(ts)) assert.equal(t.disposed, false, 'the writer disposes nothing');
      r.close();
    });

    test(`${name}: default dtypes decode half floats with dtype.ts's conversions`, () => {
      const path = tmp();
      writeSafetensors(path, {
        f32: tensor(sample('f32'), { backend }),
        bf16: tensor(sample('bf16'), { dtype: 'bf16', backend }),
        f16: tensor(sample('f16'), { dtype: 'f16', backend }),
        i32: tensor(sample('i32'), { dtype: 'i32', backend }),
        i64: tensor(new BigInt64Array([5n, -7n, 2147483647n, -2147483648n]), { dtype: 'i64', backend }),
        bool: tensor(sample('bool'), { dtype: 'bool', backend }),
      });
      const r = SafetensorsReader.open(path);
      const load = (n: string): Tensor => r.tensor(n, { backend });
      assert.equal(load('f32').dtype, 'f32');
      assert.ok(bytesOf(load('f32').toArray()).equals(bytesOf(sample('f32'))));
      assert.deepEqual(load('bf16').toArray(), Float32Array.from(sample('bf16') as Uint16Array, bf16ToF32));
      assert.ok(
        bytesOf(load('bf16').toArray()).equals(bytesOf(Float32Array.from(sample('bf16') as Uint16Array, bf16ToF32))),
      );
      assert.deepEqual(load('f16').toArray(), Float32Array.from(sample('f16') as Uint16Array, f16ToF32));
      assert.deepEqual(load('i32').toArray(), sample('i32'));
      assert.equal(load('i64').dtype, 'i32');
      assert.deepEqual(load('i64').toNumbers(), [5, -7, 2147483647, -2147483648]);
      assert.equal(load('bool').dtype, 'bool');
      assert.deepEqual(load('bool').toNumbers(), [1, 0, 0, 1, 1]);
      r.close();
    });

    test(`${name}: a tensor spanning several read chunks loads completely`, () => {
      const n = 2_500_003; // more than two 1M-element chunks, and not a multiple of them
      const bits = new Uint16Array(n);
      for (let i = 0; i < n; i++) bits[i] = (0x3c00 + (i % 4096)) & 0xffff;
      const path = tmp();
      writeSafetensors(path, { big: tensor(bits, { dtype: 'bf16', backend }) });
      const r = SafetensorsReader.open(path);
      const asF32 = r.tensor('big', { backend }).toArray() as Float32Array;
      for (const i of [0, 1, 1048575, 1048576, 1048577, 2097152, n - 1]) assert.equal(asF32[i], bf16ToF32(bits[i]!));
      const asBf16 = r.tensor('big', { backend, dtype: 'bf16' }).toArray() as Uint16Array;
      assert.ok(bytesOf(asBf16).equals(bytesOf(bits)));
      r.close();
      // Raw F32 over several of the native reader's 8 MB pieces, with a ragged tail, after another tensor.
      const m = 5_000_001;
      const values = Float32Array.from({ length: m }, (_, i) => (i % 9973) - 0.5);
      writeSafetensors(path, { head: tensor([1, 2, 3], { backend }), big: tensor(values, { backend }) });
      const r2 = SafetensorsReader.open(path);
      assert.ok(bytesOf(r2.tensor('big', { backend }).toArray() as Float32Array).equals(bytesOf(values)));
      assert.deepEqual(r2.tensor('head', { backend }).toNumbers(), [1, 2, 3]);
      r2.close();
    });
  }

  test('f64 round trip on the js backend, and F64 → f32 rounds to nearest', () => {
    const js = getBackend('js');
    const path = tmp();
    writeSafetensors(path, { x: tensor(sample('f64'), { dtype: 'f64', backend: js }) });
    const r = SafetensorsReader.open(path);
    assert.ok(bytesOf(r.tensor('x', { dtype: 'f64', backend: js }).toArray()).equals(bytesOf(sample('f64'))));
    assert.deepEqual(r.tensor('x', { backend: js }).toArray(), Float32Array.from(sample('f64') as Float64Array));
    r.close();
  });
});

describe('conversions on load', () => {
  const js = getBackend('js');
  const f32 = new Float32Array([1, -0.1, 3.14159, 65519, 65520, 1e-8, -1e38, NaN, 0.33333334]);
  const path = tmp();
  writeSafetensors(path, {
    f: tensor(f32, { backend: js }),
    h: tensor(sample('bf16'), { dtype: 'bf16', backend: js }),
  });

  test('F32 → bf16 and f16 round as f32ToBf16 / f32ToF16 do', () => {
    const r = SafetensorsReader.open(path);
    assert.deepEqual(r.tensor('f', { dtype: 'bf16', backend: js }).toArray(), Uint16Array.from(f32, f32ToBf16));
    assert.deepEqual(r.tensor('f', { dtype: 'f16', backend: js }).toArray(), Uint16Array.from(f32, f32ToF16));
    assert.deepEqual(
      r.tensor('h', { dtype: 'f64', backend: js }).toArray(),
      Float64Array.from(sample('bf16') as Uint16Array, bf16ToF32),
    );
    r.close();
  });

  test('integer dtypes the engine does not hold load as i32, i64 or floats; range errors name the tensor and element', () => {
    const data = Buffer.concat([
      Buffer.from(new Int8Array([-128, 127, -1]).buffer),
      Buffer.from([0, 255, 9]),
      Buffer.from(new Int16Array([-32768, 32767]).buffer),
      Buffer.from(new Uint16Array([65535, 1]).buffer),
      Buffer.from(new Uint32Array([4294967295, 7]).buffer),
      Buffer.from(new BigUint64Array([18446744073709551615n, 3n]).buffer),
      Buffer.from([0, 2, 1]),
    ]);
    const file = put(
      rawSafetensors(
        {
          i8: { dtype: 'I8', shape: [3], data_offsets: [0, 3] },
          u8: { dtype: 'U8', shape: [3], data_offsets: [3, 6] },
          i16: { dtype: 'I16', shape: [2], data_offsets: [6, 10] },
          u16: { dtype: 'U16', shape: [2], data_offsets: [10, 14] },
          u32: { dtype: 'U32', shape: [2], data_offsets: [14, 22] },
          u64: { dtype: 'U64', shape: [2], data_offsets: [22, 38] },
          b: { dtype: 'BOOL', shape: [3], data_offsets: [38, 41] },
        },
        data,
      ),
    );
    const r = SafetensorsReader.open(file);
    const nums = (name: string, dtype?: DType): number[] => r.tensor(name, { backend: js, dtype }).toNumbers();
    assert.deepEqual(nums('i8'), [-128, 127, -1]);
    assert.deepEqual(nums('u8'), [0, 255, 9]);
    assert.deepEqual(nums('i16'), [-32768, 32767]);
    assert.deepEqual(nums('u16'), [65535, 1]);
    assert.deepEqual(nums('i8', 'i64'), [-128, 127, -1]);
    assert.deepEqual(r.tensor('u32', { backend: js, dtype: 'i64' }).toArray(), new BigInt64Array([4294967295n, 7n]));
    assert.deepEqual(nums('u32', 'f32'), [4294967296, 7]);
    assert.deepEqual(nums('u16', 'f64'), [65535, 1]);
    assert.deepEqual(nums('b'), [0, 1, 1], 'BOOL bytes other than 0 read as true');
    assert.deepEqual(nums('b', 'i32'), [0, 1, 1]);
    assert.deepEqual(nums('b', 'f32'), [0, 1, 1]);
    assert.throws(
      () => r.tensor('u32', { backend: js }),
      rangeError(file, 'u32', /element 0 = 4294967295 does not fit i32/),
    );
    assert.throws(
      () => r.tensor('u64', { backend: js, dtype: 'i64' }),
      rangeError(file, 'u64', /element 0 = 18446744073709551615 does not fit i64/),
    );
    assert.throws(() => r.tensor('u64', { backend: js }), rangeError(file, 'u64', /does not fit i32/));
    r.close();
  });

  test('I64 beyond int32 is an error by default (naming tensor and element) and exact as i64', () => {
    const n = 1_200_000; // the bad element sits in the second read chunk
    const v = new BigInt64Array(n);
    v[n - 1] = -(1n << 40n);
    const file = tmp();
    writeSafetensors(file, { ids: tensor(v, { dtype: 'i64', backend: js }) });
    const r = SafetensorsReader.open(file);
    assert.throws(
      () => r.tensor('ids', { backend: js }),
      rangeError(file, 'ids', /element 1199999 = -1099511627776 does not fit i32/),
    );
    assert.deepEqual(r.tensor('ids', { backend: js, dtype: 'i64' }).toArray(), v);
    assert.deepEqual(r.tensor('ids', { backend: js, dtype: 'f64' }).toArray()[n - 1], -(2 ** 40));
    r.close();
  });

  test('impossible conversions and unloadable dtypes are SafetensorsErrors; bytes() still reads them', () => {
    const file = put(
      rawSafetensors(
        {
          f8: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] },
          f: { dtype: 'F32', shape: [], data_offsets: [2, 6] },
        },
        new Uint8Array([0x38, 0xb8, 0, 0, 0x80, 0x3f]),
      ),
    );
    const r = SafetensorsReader.open(file);
    assert.throws(
      () => r.tensor('f8', { backend: js }),
      stError(file, 'f8', /F8_E4M3 is recognised but cannot be loaded/),
    );
    assert.throws(
      () => r.tensor('f8', { backend: js, dtype: 'f32' }),
      stError(file, 'f8', /recognised but cannot be loaded/),
    );
    assert.deepEqual([...r.bytes('f8')], [0x38, 0xb8]);
    assert.throws(
      () => r.tensor('f', { backend: js, dtype: 'i32' }),
      stError(file, 'f', /cannot load F32 data as i32/),
    );
    assert.throws(
      () => r.tensor('f', { backend: js, dtype: 'bool' }),
      stError(file, 'f', /cannot load F32 data as bool/),
    );
    assert.equal(r.tensor('f', { backend: js }).item(), 1, 'an F32 at an odd offset (2) is read correctly');
    if (nativeAvailable())
      assert.throws(
        () => r.tensor('f', { backend: getBackend('native'), dtype: 'f64' }),
        stError(file, 'f', /cannot hold dtype f64/),
      );
    r.close();
  });
});

/** assert.throws matcher: a SafetensorsError naming the file (and tensor) whose message matches `re`. */
function stError(file: string, tensorName: string | undefined, re: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
    assert.match(e.message, /^\[safetensors\] /);
    if (tensorName !== undefined) {
      assert.equal(e.tensor, tensorName);
      assert.ok(e.message.includes(JSON.stringify(tensorName)), `message names the tensor: ${e.message}`);
    }
    assert.match(e.message, re);
    return true;
  };
}
const rangeError = (file: string, t: string, re: RegExp) => stError(file, t, re);

describe('layout (byte-identical to safetensors)', () => {
  const js = getBackend('js');

  test("safetensors' own serialization vectors (tensor.rs tests)", () => {
    const six = new Float32Array([0, 1, 2, 3, 4, 5]);
    const p1 = tmp();
    writeSafetensors(p1, { 'attn.0': tensor(six, { shape: [1, 2, 3], backend: js }) });
    // prettier-ignore
    const expected1 = [64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100, 116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64];
    assert.deepEqual([...readFileSync(p1)], expected1);

    const p2 = tmp();
    writeSafetensors(p2, { attn0: tensor(six, { shape: [1, 1, 2, 3], backend: js }) });
    const h2 = readFileSync(p2);
    assert.equal(h2.readBigUInt64LE(0), 72n);
    assert.equal(
      h2.subarray(8, 80).toString(),
      '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ',
    );

    const p3 = tmp();
    writeSafetensors(p3, {});
    assert.deepEqual([...readFileSync(p3)], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);

    const p4 = tmp();
    writeSafetensors(p4, {}, { framework: 'pt' });
    // prettier-ignore
    const expected4 = [40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95, 95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112, 116, 34, 125, 125, 32, 32, 32, 32, 32];
    assert.deepEqual([...readFileSync(p4)], expected4);
  });

  test('tensors are sorted by descending safetensors dtype (I64 before F64), then by UTF-8 name', () => {
    const path = tmp();
    const one = (dtype: DType) => tensor(sample(dtype).subarray(0, 1) as HostArray, { dtype, backend: js });
    writeSafetensors(
      path,
      new Map([
        ['b', one('f32')],
        ['a', one('bf16')],
        ['z', one('i64')],
        ['y', one('f64')],
        ['m', one('bool')],
        ['k', one('f16')],
        ['c', one('i32')],
        ['a2', one('f32')],
        ['\uffff', one('f32')],
        ['\u{1F600}', one('f32')],
      ]),
    );
    const r = SafetensorsReader.open(path);
    assert.deepEqual(r.names(), ['z', 'y', 'a2', 'b', '\uffff', '\u{1F600}', 'c', 'a', 'k', 'm']);
    const offsets = r.names().map((n) => r.info(n).dataOffsets);
    assert.deepEqual(offsets, [
      [0, 8],
      [8, 16],
      [16, 20],
      [20, 24],
      [24, 28],
      [28, 32],
      [32, 36],
      [36, 38],
      [38, 40],
      [40, 41],
    ]);
    const bytes = readFileSync(path);
    const n = Number(bytes.readBigUInt64LE(0));
    assert.equal(n % 8, 0, 'header padded to a multiple of 8');
    assert.ok(
      !bytes
        .subarray(8, 8 + n)
        .toString()
        .trimEnd()
        .includes(' '),
      'compact JSON',
    );
    r.close();
  });

  test('metadata is written first, in the given order, escaped like serde_json', () => {
    const path = tmp();
    writeSafetensors(path, { w: tensor([1], { backend: js }) }, { format: 'pt', 'k é': 'v "x"\n\u0001' });
    const text = readFileSync(path).subarray(8).toString();
    assert.ok(text.startsWith('{"__metadata__":{"format":"pt","k é":"v \\"x\\"\\n\\u0001"},"w":{'), text);
    const r = SafetensorsReader.open(path);
    assert.deepEqual(r.metadata, { format: 'pt', 'k é': 'v "x"\n\u0001' });
    r.close();
  });

  test('no metadata writes no __metadata__ (read as {}); an empty object writes an empty one', () => {
    const a = tmp();
    writeSafetensors(a, { w: tensor([1], { backend: js }) });
    assert.ok(!readFileSync(a).toString().includes('__metadata__'));
    assert.deepEqual(SafetensorsReader.open(a).metadata, {});
    const b = tmp();
    writeSafetensors(b, { w: tensor([1], { backend: js }) }, {});
    assert.ok(readFileSync(b).toString().includes('{"__metadata__":{},"w"'));
  });

  test('strided views are written in logical (row-major) order', () => {
    const base = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3], backend: js });
    const transposed = new Tensor(base.storage, [3, 2], [1, 3]);
    const path = tmp();
    writeSafetensors(path, { t: transposed });
    const r = SafetensorsReader.open(path);
    assert.deepEqual(r.info('t').shape, [3, 2]);
    assert.deepEqual(r.tensor('t', { backend: js }).toNumbers(), [1, 4, 2, 5, 3, 6]);
    r.close();
  });
});

describe('reader API', () => {
  const js = getBackend('js');

  test('names() keeps header order, including integer-like names JSON.parse would move first', () => {
    const data = new Uint8Array(3);
    const file = put(
      rawSafetensors(
        `{"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"1":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"a":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}`,
        data,
      ),
    );
    assert.deepEqual(SafetensorsReader.open(file).names(), ['b', '1', 'a']);
  });

  test('empty and 0-rank tensors load', () => {
    const path = tmp();
    writeSafetensors(path, {
      scalar: tensor(new Float32Array([2.5]), { shape: [], backend: js }),
      empty: tensor(new Float32Array(0), { shape: [0, 4], backend: js }),
      none: tensor(new Int32Array(0), { dtype: 'i32', backend: js }),
    });
    for (const { backend } of backends) {
      const r = SafetensorsReader.open(path);
      const s = r.tensor('scalar', { backend });
      assert.deepEqual(s.shape, []);
      assert.equal(s.item(), 2.5);
      const e = r.tensor('empty', { backend });
      assert.deepEqual(e.shape, [0, 4]);
      assert.equal(e.numel, 0);
      assert.deepEqual(r.info('empty').dataOffsets, [r.info('empty').dataOffsets[0], r.info('empty').dataOffsets[0]]);
      assert.equal(r.tensor('none', { backend }).numel, 0);
      assert.equal(r.bytes('empty').length, 0);
      r.close();
    }
  });

  test('has(), info() (a copy), missing names with suggestions, close()', () => {
    const path = tmp();
    writeSafetensors(path, {
      'model.layers.0.self_attn.q_proj.weight': tensor([1, 2], { backend: js }),
      'model.layers.0.self_attn.k_proj.weight': tensor([3, 4], { backend: js }),
    });
    const r = SafetensorsReader.open(path);
    assert.equal(r.path, path);
    assert.ok(r.has('model.layers.0.self_attn.q_proj.weight'));
    assert.ok(!r.has('q_proj.weight'));
    const info = r.info('model.layers.0.self_attn.q_proj.weight');
    info.shape.push(9);
    assert.deepEqual(r.info('model.layers.0.self_attn.q_proj.weight').shape, [2]);
    assert.throws(
      () => r.info('layers.0.self_attn.q_proj.weight'),
      stError(
        path,
        'layers.0.self_attn.q_proj.weight',
        /no tensor named .* \(did you mean "model\.layers\.0\.self_attn\.q_proj\.weight"/,
      ),
    );
    assert.throws(
      () => r.tensor('model.layers.0.self_attn.v_proj.weight'),
      stError(path, 'model.layers.0.self_attn.v_proj.weight', /did you mean/),
    );
    r.close();
    r.close(); // idempotent
    assert.deepEqual(r.info('model.layers.0.self_attn.k_proj.weight').dataOffsets, [0, 8]);
    assert.throws(
      () => r.tensor('model.layers.0.self_attn.k_proj.weight', { backend: js }),
      stError(path, 'model.layers.0.self_attn.k_proj.weight', /closed/),
    );
    assert.throws(
      () => r.bytes('model.layers.0.self_attn.k_proj.weight'),
      stError(path, 'model.layers.0.self_attn.k_proj.weight', /closed/),
    );
  });
});

describe('writer', () => {
  const js = getBackend('js');

  test('replaces an existing file atomically and leaves no temporary files', () => {
    const sub = mkdtempSync(join(dir, 'w-'));
    const path = join(sub, 'adapter_model.safetensors');
    writeSafetensors(path, { a: tensor([1], { backend: js }) });
    writeSafetensors(path, { b: tensor([2, 3], { backend: js }) }, { format: 'pt' });
    assert.deepEqual(readdirSync(sub), ['adapter_model.safetensors']);
    const r = SafetensorsReader.open(path);
    assert.deepEqual(r.names(), ['b']);
    assert.deepEqual(r.metadata, { format: 'pt' });
    r.close();
  });

  test('a failed write leaves the old file and no temporary file', () => {
    const sub = mkdtempSync(join(dir, 'w-'));
    const path = join(sub, 'm.safetensors');
    writeSafetensors(path, { a: tensor([1], { backend: js }) });
    const before = readFileSync(path);
    const gone = tensor([5], { backend: js });
    gone.dispose();
    assert.throws(
      () => writeSafetensors(path, { ok: tensor([1], { backend: js }), gone }),
      stError(path, 'gone', /disposed/),
    );
    assert.ok(readFileSync(path).equals(before));
    assert.deepEqual(readdirSync(sub), ['m.safetensors']);
  });

  test('rejects reserved and ill-formed names, bad metadata and a missing directory with SafetensorsError', () => {
    const path = tmp();
    const t = tensor([1], { backend: js });
    assert.throws(() => writeSafetensors(path, { __metadata__: t }), stError(path, '__metadata__', /reserved/));
    assert.throws(() => writeSafetensors(path, { ['bad\ud800']: t }), stError(path, undefined, /well-formed/));
    assert.throws(
      () => writeSafetensors(path, { t }, { n: 5 as unknown as string }),
      stError(path, undefined, /strings to strings/),
    );
    const missing = join(dir, 'no', 'such', 'dir', 'x.safetensors');
    assert.throws(() => writeSafetensors(missing, { t }), stError(missing, undefined, /temporary file/));
  });
});
