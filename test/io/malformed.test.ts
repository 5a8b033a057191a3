// Every malformed-file case the reader validates yields a SafetensorsError that names the file (and
// the tensor when there is one): never another error type, a crash, or an out-of-bounds read.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { rawSafetensors } from '../../bench/safetensors-fuzz.js';
import { getBackend, nativeAvailable } from '../../src/backends/registry.js';
import { IoError } from '../../src/io/errors.js';
import { SafetensorsError, SafetensorsReader } from '../../src/io/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'vera-st-bad-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const js = getBackend('js');
const native = nativeAvailable() ? getBackend('native') : null;

/** Writes the bytes to a fresh file named model.safetensors and returns its path. */
function put(bytes: Uint8Array): string {
  const sub = join(dir, String(n++));
  mkdirSync(sub);
  const path = join(sub, 'model.safetensors');
  writeFileSync(path, bytes);
  return path;
}

/** open() and reading every tensor must throw a SafetensorsError naming the file (and tensor) and matching `re`. */
function rejects(bytes: Uint8Array, re: RegExp, tensorName?: string): void {
  const path = put(bytes);
  let caught: unknown = null;
  try {
    const r = SafetensorsReader.open(path);
    for (const name of r.names()) r.tensor(name, { backend: js });
    r.close();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof SafetensorsError, `expected a SafetensorsError, got ${String(caught)}`);
  assert.ok(caught instanceof IoError);
  assert.equal(caught.file, path);
  assert.ok(caught.message.startsWith(`[safetensors] ${path}: `), caught.message);
  if (tensorName !== undefined) {
    assert.equal(caught.tensor, tensorName);
    assert.ok(caught.message.includes(`tensor ${JSON.stringify(tensorName)}`), caught.message);
  }
  assert.match(caught.message, re);
}

const f32 = (shape: number[], offs: [number, number]) => ({ dtype: 'F32', shape, data_offsets: offs });
const zeros = (k: number) => new Uint8Array(k);

describe('file and header length', () => {
  test('a file shorter than 8 bytes', () => {
    rejects(zeros(0), /file has 0 bytes, fewer than the 8-byte header length/);
    rejects(zeros(5), /file has 5 bytes/);
  });
  test('a header length past the end of the file', () => {
    rejects(
      rawSafetensors('{}', zeros(0), { headerLength: 64 }),
      /header length 64 runs past the end of the file \(16 bytes\)/,
    );
  });
  test("a header length above safetensors' 100,000,000-byte limit (also ≥ 2^32)", () => {
    rejects(
      rawSafetensors('{}', zeros(0), { headerLength: 100_000_001 }),
      /header length 100000001 exceeds safetensors' limit/,
    );
    rejects(rawSafetensors('{}', zeros(0), { headerLength: 2n ** 32n + 8n }), /2\^32 bytes or more exceeds/);
    rejects(rawSafetensors('{}', zeros(0), { headerLength: 2n ** 64n - 1n }), /exceeds safetensors' limit/);
  });
  test('a zero header length', () => {
    rejects(rawSafetensors('', zeros(0), { headerLength: 0 }), /header must start with '\{', found nothing/);
  });
  test('a path that does not exist, and a directory', () => {
    const missing = join(dir, 'nope.safetensors');
    assert.throws(
      () => SafetensorsReader.open(missing),
      (e: unknown) => e instanceof SafetensorsError && e.file === missing && /cannot open: ENOENT/.test(e.message),
    );
    assert.throws(
      () => SafetensorsReader.open(dir),
      (e: unknown) => e instanceof SafetensorsError && e.file === dir,
    );
  });
});

describe('header text', () => {
  test('not starting with {', () => {
    rejects(rawSafetensors('[1,2,3] '), /header must start with '\{', found byte 0x5b/);
    rejects(rawSafetensors(' {}'), /found byte 0x20/);
    rejects(rawSafetensors('\ufeff{}'), /found byte 0xef/);
    rejects(rawSafetensors('"x"'), /must start with/);
  });
  test('not valid UTF-8', () => {
    const bytes = rawSafetensors('{"a\u00e9":1}');
    bytes[12] = 0xff;
    rejects(bytes, /header is not valid UTF-8/);
  });
  test('not valid JSON (with the position)', () => {
    rejects(rawSafetensors('{"a":'), /invalid JSON at line 1, column \d+ \(offset \d+\).*\(in the header\)/);
    rejects(rawSafetensors('{"a":1}\u0000\u0000'), /invalid JSON/);
    rejects(rawSafetensors('{"a":1}x'), /invalid JSON/);
  });
  test('values nested 100,000 deep (no stack overflow)', () => {
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
    rejects(
      rawSafetensors(`{"w":{"dtype":"F32","shape":${deep},"data_offsets":[0,0]}}`),
      /"shape" \[\[\[\[\.\.\.\]\]\]\]: dimension 0/,
      'w',
    );
    rejects(rawSafetensors(`{"w":${deep}}`), /entry must be an object/, 'w');
    rejects(rawSafetensors(`{"a":${deep}`), /invalid JSON/);
  });
  test('duplicate keys: tensors, entry fields and metadata', () => {
    const e = JSON.stringify(f32([1], [0, 4]));
    rejects(rawSafetensors(`{"w":${e},"w":${e}}`, zeros(4)), /header has the key "w" twice/);
    rejects(
      rawSafetensors(`{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, zeros(4)),
      /entry has the field "dtype" twice/,
      'w',
    );
    rejects(rawSafetensors(`{"__metadata__":{"a":"1","a":"2"}}`), /__metadata__ has the key "a" twice/);
    rejects(rawSafetensors(`{"\\u0077":${e},"w":${e}}`, zeros(4)), /header has the key "w" twice/);
  });
  test('__metadata__ that is not a string → string map', () => {
    rejects(
      rawSafetensors({ __metadata__: { format: 1 } }),
      /__metadata__ must map strings to strings, but "format" is 1/,
    );
    rejects(rawSafetensors({ __metadata__: ['pt'] }), /__metadata__ must be an object of strings/);
    rejects(rawSafetensors({ __metadata__: 'pt' }), /__metadata__ must be an object of strings/);
  });
  test('a null __metadata__ is read as absent, as safetensors does', () => {
    const r = SafetensorsReader.open(put(rawSafetensors({ __metadata__: null })));
    assert.deepEqual(r.metadata, {});
    assert.deepEqual(r.names(), []);
  });
});

describe('tensor entries', () => {
  const one = (entry: unknown, data = zeros(4)) => rawSafetensors({ w: entry }, data);
  test('not an object', () => {
    rejects(one([1, 2]), /entry must be an object with dtype, shape and data_offsets, got \[1,2\]/, 'w');
    rejects(one(null), /got null/, 'w');
    rejects(one(7), /got 7/, 'w');
  });
  test('missing dtype, shape or data_offsets', () => {
    rejects(one({ shape: [1], data_offsets: [0, 4] }), /entry has no "dtype"/, 'w');
    rejects(one({ dtype: 'F32', data_offsets: [0, 4] }), /entry has no "shape"/, 'w');
    rejects(one({ dtype: 'F32', shape: [1] }), /entry has no "data_offsets"/, 'w');
  });
  test('wrong types', () => {
    rejects(one({ dtype: 5, shape: [1], data_offsets: [0, 4] }), /"dtype" must be a string, got 5/, 'w');
    rejects(
      one({ dtype: 'F32', shape: '1', data_offsets: [0, 4] }),
      /"shape" must be an array of integers, got "1"/,
      'w',
    );
    rejects(one(f32([2, -1], [0, 4])), /dimension 1 is -1, not a non-negative integer/, 'w');
    rejects(one(f32([1.5], [0, 4])), /dimension 0 is 1.5/, 'w');
    rejects(one(f32(['1'] as unknown as number[], [0, 4])), /dimension 0 is "1"/, 'w');
    rejects(one(f32([2 ** 53], [0, 4])), /dimension 0 is 9007199254740992/, 'w');
  });
  test('data_offsets that are not two non-negative integers with begin ≤ end', () => {
    rejects(
      one({ dtype: 'F32', shape: [1], data_offsets: [4] }),
      /"data_offsets" must be two non-negative integers \[begin, end\], got \[4\]/,
      'w',
    );
    rejects(one({ dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] }), /got \[0,4,8\]/, 'w');
    rejects(one(f32([1], [-4, 0])), /got \[-4,0\]/, 'w');
    rejects(one(f32([1], ['0', 4] as unknown as [number, number])), /got \["0",4\]/, 'w');
    rejects(one(f32([1], [0.5, 4])), /got \[0.5,4\]/, 'w');
    rejects(one(f32([1], [4, 0])), /data_offsets \[4, 0\] end before they begin/, 'w');
  });
  test('an unknown dtype', () => {
    rejects(one({ dtype: 'F33', shape: [1], data_offsets: [0, 4] }), /unknown dtype "F33"/, 'w');
    rejects(one({ dtype: 'f32', shape: [1], data_offsets: [0, 4] }), /unknown dtype "f32"/, 'w');
  });
  test('a byte length that does not match the shape and dtype', () => {
    rejects(
      rawSafetensors({ 'h.0.attn.c_attn.weight': f32([2, 3], [0, 12]) }, zeros(12)),
      /tensor "h\.0\.attn\.c_attn\.weight": data_offsets \[0, 12\] hold 12 bytes but F32 \(2, 3\) needs 24$/,
      'h.0.attn.c_attn.weight',
    );
    rejects(
      one({ dtype: 'F4', shape: [3], data_offsets: [0, 2] }, zeros(2)),
      /F4 \(3\) holds 12 bits, not a whole number of bytes/,
      'w',
    );
  });
  test('a numel that overflows', () => {
    rejects(
      one(f32([2 ** 30, 2 ** 30, 2 ** 30], [0, 4])),
      /F32 \(1073741824, 1073741824, 1073741824\) has too many elements \(overflow\)/,
      'w',
    );
    rejects(one(f32([2 ** 26, 2 ** 26], [0, 4])), /too many elements/, 'w'); // 2^52 elements × 32 bits
  });
  test('offsets beyond the data section', () => {
    rejects(one(f32([2], [0, 8])), /data_offsets \[0, 8\] run past the end of the data section \(4 bytes\)/, 'w');
    rejects(one(f32([0], [2 ** 40, 2 ** 40])), /run past the end of the data section/, 'w');
  });
});

describe('tensors must tile the data section', () => {
  test('overlapping tensors (the first offending pair by name)', () => {
    rejects(
      rawSafetensors({ a: f32([2], [0, 8]), b: f32([2], [4, 12]) }, zeros(12)),
      /data_offsets \[4, 12\] overlap tensor "a" at \[0, 8\]/,
      'b',
    );
    rejects(rawSafetensors({ a: f32([2], [0, 8]), b: f32([2], [0, 8]) }, zeros(8)), /overlap tensor "a"/, 'b');
  });
  test('a hole between tensors or at the start', () => {
    rejects(
      rawSafetensors({ a: f32([1], [0, 4]), b: f32([1], [8, 12]) }, zeros(12)),
      /bytes \[4, 8\) between "a" and "b" belong to no tensor/,
      'b',
    );
    rejects(
      rawSafetensors({ b: f32([1], [4, 8]) }, zeros(8)),
      /bytes \[0, 4\) at the start of the data section belong to no tensor/,
      'b',
    );
  });
  test('bytes after the last tensor, or data with no tensors', () => {
    rejects(
      rawSafetensors({ a: f32([1], [0, 4]) }, zeros(6)),
      /after the last tensor "a", bytes \[4, 6\) of the data section belong to no tensor/,
    );
    rejects(rawSafetensors({}, zeros(3)), /the header declares no tensors, but bytes \[0, 3\)/);
  });
  test('unsorted but tiling entries, empty tensors anywhere and 0-rank tensors are valid', () => {
    const r = SafetensorsReader.open(
      put(
        rawSafetensors(
          {
            c: f32([], [8, 12]),
            e: f32([0], [4, 4]),
            a: f32([1], [0, 4]),
            b: f32([1], [4, 8]),
            z: f32([3, 0], [12, 12]),
          },
          new Uint8Array(new Float32Array([1, 2, 3]).buffer),
        ),
      ),
    );
    assert.deepEqual(r.names(), ['c', 'e', 'a', 'b', 'z']);
    assert.equal(r.tensor('c', { backend: js }).item(), 3);
    assert.deepEqual(r.tensor('z', { backend: js }).shape, [3, 0]);
    r.close();
  });
});

describe('reading tensors', () => {
  test('a file truncated after it was opened', () => {
    const bytes = rawSafetensors({ a: f32([4], [0, 16]) }, zeros(16));
    const path = put(bytes);
    const r = SafetensorsReader.open(path);
    const cut = bytes.length - 12; // 4 of the tensor's 16 bytes remain
    truncateSync(path, cut);
    // js decodes chunk by chunk; native reads the raw bytes straight into its buffer (readFile).
    for (const backend of native ? [js, native] : [js])
      assert.throws(
        () => r.tensor('a', { backend }),
        (e: unknown) =>
          e instanceof SafetensorsError &&
          e.tensor === 'a' &&
          e.message.includes(`file ends at byte ${cut}, before the 16 bytes`),
        backend.name,
      );
    assert.throws(
      () => r.bytes('a'),
      (e: unknown) => e instanceof SafetensorsError && e.tensor === 'a',
    );
    r.close();
  });
  test('values out of range and impossible conversions name the tensor', () => {
    rejects(
      rawSafetensors(
        { ids: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } },
        new Uint8Array(new BigInt64Array([1n, 1n << 33n]).buffer),
      ),
      /value out of range: element 1 = 8589934592 does not fit i32/,
      'ids',
    );
    rejects(
      rawSafetensors({ q: { dtype: 'F8_E5M2', shape: [1], data_offsets: [0, 1] } }, zeros(1)),
      /recognised but cannot be loaded/,
      'q',
    );
  });
});
