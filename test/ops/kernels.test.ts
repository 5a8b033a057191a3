// The fused-kernel dispatch: fused(b) is a backend's own kernel where it has one and the composite
// otherwise, withoutFused() hides kernels (and only those), composites free every temporary (also
// when they throw), and a kernel with no composite fails naming itself.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Backend, FUSED_KERNELS, PRIMITIVE_KERNELS, type View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { fused, hasFused, withoutFused } from '../../src/ops/kernels.js';

const dense = (b: Backend, data: number[], shape: number[], dtype: 'f64' | 'i32' = 'f64'): View => {
  const buf = b.alloc(dtype, data.length);
  b.upload(buf, dtype, 0, dtype === 'f64' ? Float64Array.from(data) : Int32Array.from(data));
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((x, y) => x * y, 1));
  return { buf, dtype, offset: 0, shape, strides };
};

/** A js backend whose primitive calls are counted by name. */
function counting(): { backend: Backend; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const js = new JsBackend();
  const backend = new Proxy(js, {
    get(target, key) {
      const v = Reflect.get(target, key, target) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.set(String(key), (calls.get(String(key)) ?? 0) + 1);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { backend, calls };
}

describe('fused kernel dispatch', () => {
  test('the kernel lists split the contract: every js kernel is a primitive or a fused kernel, not both', () => {
    const js = new JsBackend();
    // Memory and housekeeping methods, required and optional; everything else is a kernel.
    const memory = ['alloc', 'free', 'upload', 'download', 'downloadAsync', 'readFile', 'memory', 'emptyCache', 'sync'];
    memory.push('info', 'getThreads', 'setThreads');
    const methods = [...Object.keys(js), ...Object.getOwnPropertyNames(JsBackend.prototype)].filter(
      (k) => typeof (js as unknown as Record<string, unknown>)[k] === 'function' && k !== 'constructor',
    );
    const kernels = methods.filter((k) => !memory.includes(k)).sort();
    assert.deepEqual(kernels, [...PRIMITIVE_KERNELS, ...FUSED_KERNELS].sort());
    assert.ok(!PRIMITIVE_KERNELS.some((k) => (FUSED_KERNELS as readonly string[]).includes(k)));
  });

  test("fused(b) calls the backend's own kernel when it has one, and is memoised", () => {
    const { backend, calls } = counting();
    const k = fused(backend);
    assert.equal(fused(backend), k);
    const a = dense(backend, [1, 2, 3, 4, 5, 6], [2, 3]);
    const out = dense(backend, [0, 0, 0, 0, 0, 0], [2, 3]);
    calls.clear();
    k.softmax(out, a, false);
    assert.deepEqual([...calls.keys()], ['softmax']);
    assert.ok(hasFused(backend, 'softmax'));
  });

  test('withoutFused(b) hides fused kernels, so fused() runs the composite on primitives', () => {
    const { backend, calls } = counting();
    const hidden = withoutFused(backend);
    for (const k of FUSED_KERNELS) {
      assert.equal(hidden[k], undefined, k);
      assert.ok(!(k in hidden), k);
      assert.ok(!hasFused(hidden, k), k);
    }
    assert.equal(typeof hidden.matmul, 'function', 'primitives stay');
    const a = dense(hidden, [1, 2, 3, 4, 5, 6], [2, 3]);
    const out = dense(hidden, [0, 0, 0, 0, 0, 0], [2, 3]);
    calls.clear();
    fused(hidden).softmax(out, a, false);
    assert.ok(!calls.has('softmax'), 'the fused kernel was not called');
    assert.ok(calls.has('reduce') && calls.has('unary') && calls.has('binary'), [...calls.keys()].join());
    const got = hidden.download(out) as Float64Array;
    const row = [1, 2, 3].map(Math.exp);
    const s = row[0]! + row[1]! + row[2]!;
    for (let j = 0; j < 3; j++) assert.ok(Math.abs(got[j]! - row[j]! / s) < 1e-15);
  });

  test('withoutFused(b, names) hides only the named kernels; buffers and stats are shared', () => {
    const js = new JsBackend();
    const w = withoutFused(js, ['rope']);
    assert.equal(w.rope, undefined);
    assert.equal(typeof w.softmax, 'function');
    assert.equal(w.name, js.name);
    const before = js.memory().allocated;
    const buf = w.alloc('f32', 10); // runs on the js backend (private state)
    assert.equal(js.memory().allocated, before + 40);
    w.free(buf);
    assert.equal(js.memory().allocated, before);
  });

  test('composites free their temporaries, also when a primitive throws', () => {
    const js = new JsBackend();
    const w = withoutFused(js);
    const logits = dense(w, [1, 2, 3, 4, 5, 6], [2, 3]);
    const loss = dense(w, [0, 0], [2]);
    const lse = dense(w, [0, 0], [2]);
    const before = js.memory().allocated;
    const opts = { ignoreIndex: -100, labelSmoothing: 0.1 };
    fused(w).crossEntropy(loss, lse, logits, dense(w, [2, -100], [2], 'i32'), opts);
    const targets = dense(w, [1, 7], [2], 'i32');
    const after = js.memory().allocated;
    assert.throws(
      () => fused(w).crossEntropy(loss, lse, logits, targets, opts),
      /^Error: \[crossEntropy\] \[js gather\] Index 7 at position \d+ is out of range/,
    );
    assert.equal(js.memory().allocated, after, 'a throwing composite frees its temporaries');
    assert.equal(after, before + 2 * 2 * 4, 'only the two i32 target buffers this test made stay allocated');
  });
});
