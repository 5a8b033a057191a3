// The native backend against the js reference backend, kernel by kernel: identical seeded inputs (odd
// sizes, transposed / sliced / broadcast / offset views), outputs compared within stated tolerances,
// plus the error paths (bad ids, shapes, views, use after free) that must throw instead of crashing.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Backend, BackendBuffer, View } from '../../src/backends/backend.js';
import { JsBackend } from '../../src/backends/js/index.js';
import { type NativeBackend, loadNativeBackend } from '../../src/backends/native/index.js';
import { type DType, type HostArray, f32ToBf16, f32ToF16 } from '../../src/tensor/dtype.js';

let native: NativeBackend | null = null;
let unavailable = '';
try {
  native = loadNativeBackend();
} catch (e) {
  unavailable = (e as Error).message;
}
const js = new JsBackend();

/** A test that skips (with the load error as reason) when the addon is not built. */
function ntest(name: string, fn: (nb: NativeBackend) => void | Promise<void>): void {
  test(name, async (t) => {
    if (!native) {
      t.skip(unavailable);
      return;
    }
    await fn(native);
  });
}

// ---- seeded data ------------------------------------------------------------------------------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(1234);

function randf(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rand();
  return a;
}
function randi(n: number, lo: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + Math.floor((hi - lo) * rand());
  return a;
}
function randb(n: number, pTrue = 0.5): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = rand() < pTrue ? 1 : 0;
  return a;
}

function contiguous(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}
const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

// ---- paired tensors on both backends ----------------------------------------------------------

interface Pair {
  js: View;
  nat: View;
  bufs: BackendBuffer[];
}

/** One buffer holding `data` on each backend, viewed as (shape, strides, offset). */
function tensor(
  nb: NativeBackend,
  dtype: DType,
  data: HostArray,
  shape: readonly number[],
  strides: readonly number[] = contiguous(shape),
  offset = 0,
): Pair {
  const bj = js.alloc(dtype, data.length);
  const bn = nb.alloc(dtype, data.length);
  js.upload(bj, dtype, 0, data);
  nb.upload(bn, dtype, 0, data);
  return {
    js: { buf: bj, dtype, offset, shape, strides },
    nat: { buf: bn, dtype, offset, shape, strides },
    bufs: [bn],
  };
}

/** A dense f32 tensor of random values in [lo, hi). */
function rf(nb: NativeBackend, shape: readonly number[], lo = -1, hi = 1): Pair {
  return tensor(nb, 'f32', randf(size(shape), lo, hi), shape);
}
/** A zero-filled dense output. */
function zeros(nb: NativeBackend, dtype: DType, shape: readonly number[]): Pair {
  const n = size(shape);
  const data: HostArray =
    dtype === 'f32'
      ? new Float32Array(n)
      : dtype === 'i32'
        ? new Int32Array(n)
        : dtype === 'i64'
          ? new BigInt64Array(n)
          : dtype === 'bool'
            ? new Uint8Array(n)
            : new Uint16Array(n);
  return tensor(nb, dtype, data, shape);
}

/** Runs the same call on both backends. */
function both(nb: NativeBackend, fn: (be: Backend, v: (p: Pair) => View) => void): void {
  fn(js, (p) => p.js);
  fn(nb, (p) => p.nat);
}

function toNumbers(a: HostArray): number[] {
  return a instanceof BigInt64Array ? Array.from(a, (x) => Number(x)) : Array.from(a as ArrayLike<number>);
}

/**
 * Asserts |native − js| ≤ atol + rtol·|js| elementwise (NaN matches NaN, infinities must be equal);
 * the failure message names the worst element and the max difference.
 */
function expectClose(nb: NativeBackend, what: string, p: Pair, rtol: number, atol: number): void {
  const ref = toNumbers(js.download(p.js));
  const got = toNumbers(nb.download(p.nat));
  assert.equal(got.length, ref.length, `${what}: length`);
  let worst = -1;
  let worstExcess = 0;
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const g = got[i]!;
    if (Number.isNaN(r) || Number.isNaN(g)) {
      if (Number.isNaN(r) !== Number.isNaN(g)) {
        worst = i;
        worstExcess = Infinity;
      }
      continue;
    }
    if (!Number.isFinite(r) || !Number.isFinite(g)) {
      if (r !== g) {
        worst = i;
        worstExcess = Infinity;
      }
      continue;
    }
    const d = Math.abs(g - r);
    maxDiff = Math.max(maxDiff, d);
    const excess = d - (atol + rtol * Math.abs(r));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${what}: element ${worst} native ${got[worst]} vs js ${ref[worst]} (max |diff| ${maxDiff.toExponential(3)}, tolerance ${atol} + ${rtol}·|ref|)`,
    );
  }
}

const exact = (nb: NativeBackend, what: string, p: Pair) => expectClose(nb, what, p, 0, 0);

// ---- memory -----------------------------------------------------------------------------------

ntest('buffers: upload/download round trip for every dtype, caching and stats', (nb) => {
  const before = nb.memory();
  const cases: [DType, HostArray][] = [
    ['f32', randf(37)],
    ['f16', Uint16Array.from(randf(37), (x) => f32ToF16(x))],
    ['bf16', Uint16Array.from(randf(37), (x) => f32ToBf16(x))],
    ['i32', randi(37, -1000, 1000)],
    ['i64', BigInt64Array.from(randi(37, -1000, 1000), (x) => BigInt(x) * 12345678901n)],
    ['bool', randb(37)],
  ];
  for (const [dtype, data] of cases) {
    const b = nb.alloc(dtype, data.length);
    assert.equal(b.byteLength, data.byteLength);
    nb.upload(b, dtype, 0, data);
    const back = nb.download({ buf: b, dtype, offset: 0, shape: [data.length], strides: [1] });
    assert.deepEqual(back, data, dtype);
    const sliced = nb.download({ buf: b, dtype, offset: 3, shape: [4, 2], strides: [8, 3] });
    for (let i = 0; i < 4; i++) for (let j = 0; j < 2; j++) assert.equal(sliced[i * 2 + j], data[3 + i * 8 + j * 3]);
    nb.free(b);
    nb.free(b); // idempotent
  }
  const after = nb.memory();
  assert.equal(after.allocated, before.allocated);
  assert.ok(after.cached > 0, 'freed blocks are cached');
  const again = nb.alloc('f32', 37); // reuses a cached block of the same size
  assert.ok(nb.memory().cached < after.cached);
  nb.free(again);
  nb.emptyCache();
  assert.equal(nb.memory().cached, 0);
  assert.ok(nb.dtypes.includes('bf16') && !nb.dtypes.includes('f64'));
  assert.equal(nb.name, 'native');
  assert.equal(nb.device, 'cpu');
  nb.sync();
});

ntest('buffers: handles dropped without free are released by the garbage collector', async (nb) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  nb.emptyCache();
  const start = nb.memory().allocated;
  (() => {
    for (let i = 0; i < 64; i++) nb.alloc('f32', 1 << 16);
  })();
  assert.equal(nb.memory().allocated, start + 64 * 4 * (1 << 16));
  for (let i = 0; i < 10 && nb.memory().allocated > start; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(nb.memory().allocated, start);
  nb.emptyCache();
});

ntest('threads: VERA_NUM_THREADS sets the default', () => {
  const url = new URL('../../src/backends/native/index.js', import.meta.url).href;
  const script = `import('${url}').then((m) => console.log(m.loadNativeBackend().getThreads()))`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, VERA_NUM_THREADS: '3' },
    encoding: 'utf8',
  });
  assert.equal(out.trim(), '3');
});

ntest('threads: getThreads / setThreads', (nb) => {
  const n = nb.getThreads();
  assert.ok(n >= 1);
  nb.setThreads(1);
  assert.equal(nb.getThreads(), 1);
  nb.setThreads(n);
  assert.equal(nb.getThreads(), n);
  assert.throws(() => nb.setThreads(0), /\[native setThreads\]/);
});

// ---- data movement ----------------------------------------------------------------------------

const STORAGE: DType[] = ['f32', 'f16', 'bf16', 'i32', 'i64', 'bool'];

function sample(dtype: DType, n: number): HostArray {
  const f = Float32Array.from(randf(n, -70000, 70000), (x, i) =>
    i % 5 === 0 ? x / 9999 : i % 7 === 0 ? Math.round(x) : x,
  );
  f[1] = NaN;
  f[2] = Infinity;
  f[3] = -0.5;
  f[4] = 3e9;
  f[6] = 1e-6;
  switch (dtype) {
    case 'f32':
      return f;
    case 'f16':
      return Uint16Array.from(f, (x) => f32ToF16(x));
    case 'bf16':
      return Uint16Array.from(f, (x) => f32ToBf16(x));
    case 'i32':
      return Int32Array.from(f, (x) => (Number.isFinite(x) ? x | 0 : 7));
    case 'i64':
      return BigInt64Array.from(f, (x) => (Number.isFinite(x) ? BigInt(Math.trunc(x)) * 1000003n : 5n));
    default:
      return Uint8Array.from(f, (x) => (x > 0 ? 1 : 0));
  }
}

ntest('copy: every pair of storage dtypes, strided source and destination', (nb) => {
  for (const src of STORAGE) {
    for (const dst of STORAGE) {
      // a: a transposed [13, 9] view of a [9, 13] buffer at offset 0; out: a strided window.
      const a = tensor(nb, src, sample(src, 117), [13, 9], [1, 13]);
      const out = zeros(nb, dst, [2, 13, 9]);
      const o: Pair = {
        ...out,
        js: { ...out.js, shape: [13, 9], strides: [18, 2], offset: 1 },
        nat: { ...out.nat, shape: [13, 9], strides: [18, 2], offset: 1 },
      };
      both(nb, (be, v) => be.copy(v(o), v(a)));
      exact(nb, `copy ${src} -> ${dst}`, out);
    }
  }
  // Transposes into dense outputs (the tiled path): 2-D, and a 3-D permutation with an offset.
  for (const dtype of ['f32', 'bf16', 'i64', 'bool'] as DType[]) {
    const t2 = tensor(nb, dtype, sample(dtype, 37 * 129), [129, 37], [1, 129]);
    const o2 = zeros(nb, dtype, [129, 37]);
    both(nb, (be, v) => be.copy(v(o2), v(t2)));
    exact(nb, `copy transpose ${dtype}`, o2);
    const t3 = tensor(nb, dtype, sample(dtype, 3 * 17 * 33 + 5), [33, 3, 17], [1, 17 * 33, 33], 5);
    const o3 = zeros(nb, dtype, [33, 3, 17]);
    both(nb, (be, v) => be.copy(v(o3), v(t3)));
    exact(nb, `copy permute ${dtype}`, o3);
  }
  // Broadcast source (stride 0) and a big contiguous copy (parallel path).
  const a = tensor(nb, 'f32', randf(7), [5, 7], [0, 1]);
  const out = zeros(nb, 'bf16', [5, 7]);
  both(nb, (be, v) => be.copy(v(out), v(a)));
  exact(nb, 'copy broadcast', out);
  const big = rf(nb, [300, 517]);
  const bo = zeros(nb, 'bf16', [300, 517]);
  both(nb, (be, v) => be.copy(v(bo), v(big)));
  exact(nb, 'copy big f32 -> bf16', bo);
});

ntest('fill: every storage dtype', (nb) => {
  for (const dtype of STORAGE) {
    for (const value of [3.7, -2.5, 1e10, 0, -0.1]) {
      const out = zeros(nb, dtype, [3, 17]);
      both(nb, (be, v) => be.fill(v(out), value));
      exact(nb, `fill ${dtype} ${value}`, out);
    }
  }
});

// ---- elementwise ------------------------------------------------------------------------------

const UNARY = [
  'neg',
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'abs',
  'sign',
  'sin',
  'cos',
  'tanh',
  'sigmoid',
  'relu',
  'gelu',
  'gelu_tanh',
  'silu',
  'square',
  'recip',
] as const;

ntest('unary: every op on transposed, sliced and large inputs', (nb) => {
  for (const op of UNARY) {
    const positive = op === 'log' || op === 'sqrt' || op === 'rsqrt';
    const data = randf(17 * 13, positive ? 0.01 : -9, 9);
    data[5] = 0;
    data[6] = -0;
    if (!positive) data[7] = -30;
    // [13, 17] viewed transposed as [17, 13]; then a sliced window with an offset.
    const a = tensor(nb, 'f32', data, [17, 13], [1, 17]);
    const out = zeros(nb, 'f32', [17, 13]);
    both(nb, (be, v) => be.unary(op, v(out), v(a)));
    expectClose(nb, `unary ${op} (transposed)`, out, 2e-6, 1e-12);
    const s = tensor(nb, 'f32', data, [5, 4], [26, 3], 9);
    const so = zeros(nb, 'f32', [5, 4]);
    both(nb, (be, v) => be.unary(op, v(so), v(s)));
    expectClose(nb, `unary ${op} (sliced)`, so, 2e-6, 1e-12);
    const big = rf(nb, [129, 1031], positive ? 0.01 : -12, 12);
    const bo = zeros(nb, 'f32', [129, 1031]);
    both(nb, (be, v) => be.unary(op, v(bo), v(big)));
    expectClose(nb, `unary ${op} (large)`, bo, 2e-6, 1e-12);
  }
});

const SCALAR = [
  'add_s',
  'mul_s',
  'pow_s',
  'rsub_s',
  'max_s',
  'min_s',
  'eq_s',
  'ne_s',
  'lt_s',
  'le_s',
  'gt_s',
  'ge_s',
] as const;

ntest('scalar: every op, f32 and i32 inputs', (nb) => {
  for (const op of SCALAR) {
    const cmp = op.length === 4 && op !== 'rsub_s' && op !== 'pow_s';
    for (const s of [0.3, 2, -1.5, 0.5]) {
      const data = randf(3 * 17, op === 'pow_s' ? 0 : -3, 3);
      data[0] = s;
      data[1] = Math.fround(s);
      data[2] = NaN;
      const a = tensor(nb, 'f32', data, [17, 3], [1, 17]);
      const out = zeros(nb, cmp ? 'bool' : 'f32', [17, 3]);
      both(nb, (be, v) => be.scalar(op, v(out), v(a), s));
      expectClose(nb, `scalar ${op} ${s}`, out, 1e-7, 0);
    }
    const ai = tensor(nb, 'i32', randi(29, -5, 5), [29]);
    const oi = zeros(nb, cmp ? 'bool' : 'f32', [29]);
    both(nb, (be, v) => be.scalar(op, v(oi), v(ai), 2));
    exact(nb, `scalar ${op} i32`, oi);
  }
});

const BINARY = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const;

ntest('binary: every op with broadcasting (stride 0), transposes and offsets', (nb) => {
  for (const op of BINARY) {
    const cmp = ['eq', 'ne', 'lt', 'le', 'gt', 'ge'].includes(op);
    const lo = op === 'pow' ? 0 : -3;
    const shape = [3, 17, 5];
    // a: dense with an offset; b: broadcast over axis 1 (stride 0) and transposed inner axes.
    const ad = randf(3 * 17 * 5 + 4, lo, 3);
    const a = tensor(nb, 'f32', ad, shape, [85, 5, 1], 4);
    const bd = randf(15, -3, 3);
    bd[0] = ad[4]!; // an exact tie for the comparisons
    const b = tensor(nb, 'f32', bd, shape, [1, 0, 3]);
    const out = zeros(nb, cmp ? 'bool' : 'f32', shape);
    both(nb, (be, v) => be.binary(op, v(out), v(a), v(b)));
    expectClose(nb, `binary ${op}`, out, 1e-7, 0);
    // scalar-broadcast on either side and a large dense case.
    const sa = tensor(nb, 'f32', randf(1, 0.5, 2), [129, 33], [0, 0]);
    const sb = rf(nb, [129, 33], 0.1, 3);
    const so = zeros(nb, cmp ? 'bool' : 'f32', [129, 33]);
    both(nb, (be, v) => be.binary(op, v(so), v(sa), v(sb)));
    expectClose(nb, `binary ${op} (scalar a)`, so, 1e-7, 0);
    both(nb, (be, v) => be.binary(op, v(so), v(sb), v(sa)));
    expectClose(nb, `binary ${op} (scalar b)`, so, 1e-7, 0);
    const big1 = rf(nb, [257, 513], 0.1, 3);
    const big2 = rf(nb, [257, 513], 0.1, 3);
    const bo = zeros(nb, cmp ? 'bool' : 'f32', [257, 513]);
    both(nb, (be, v) => be.binary(op, v(bo), v(big1), v(big2)));
    expectClose(nb, `binary ${op} (large)`, bo, 1e-7, 0);
  }
  // Mixed dtypes go through the generic path: i32 + f32, bool * f32.
  const ai = tensor(nb, 'i32', randi(17, -9, 9), [17]);
  const bf = rf(nb, [17]);
  const o = zeros(nb, 'f32', [17]);
  both(nb, (be, v) => be.binary('add', v(o), v(ai), v(bf)));
  exact(nb, 'binary add i32 + f32', o);
  const bm = tensor(nb, 'bool', randb(17), [17]);
  both(nb, (be, v) => be.binary('mul', v(o), v(bm), v(bf)));
  exact(nb, 'binary mul bool * f32', o);
});

const GRADS = ['gelu', 'gelu_tanh', 'silu', 'tanh', 'sigmoid', 'relu'] as const;

ntest('unaryGrad: every op, strided x and dy', (nb) => {
  for (const op of GRADS) {
    const x = tensor(nb, 'f32', randf(13 * 7, -8, 8), [7, 13], [1, 7]);
    const dy = tensor(nb, 'f32', randf(13 * 7 + 2, -2, 2), [7, 13], [13, 1], 2);
    const dx = zeros(nb, 'f32', [7, 13]);
    both(nb, (be, v) => be.unaryGrad(op, v(dx), v(x), v(dy)));
    expectClose(nb, `unaryGrad ${op}`, dx, 1e-5, 1e-7);
    const bx = rf(nb, [33, 1025], -8, 8);
    const bdy = rf(nb, [33, 1025]);
    const bdx = zeros(nb, 'f32', [33, 1025]);
    both(nb, (be, v) => be.unaryGrad(op, v(bdx), v(bx), v(bdy)));
    expectClose(nb, `unaryGrad ${op} (large)`, bdx, 1e-5, 1e-7);
  }
});

ntest('unary / unaryGrad: accuracy sweeps over wide ranges (vectorised exp, log, tanh, erf)', (nb) => {
  const n = 20001;
  const grid = (lo: number, hi: number) => Float32Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / (n - 1));
  const sweeps: [string, Float32Array][] = [
    ['exp', grid(-105, 90)],
    ['log', Float32Array.from({ length: n }, (_, i) => Math.exp(-100 + (190 * i) / (n - 1)))],
    ['log', grid(0.5, 2)],
    ['tanh', grid(-40, 40)],
    ['sigmoid', grid(-40, 40)],
    ['silu', grid(-40, 40)],
    ['gelu', grid(-12, 12)],
    ['gelu_tanh', grid(-12, 12)],
  ];
  for (const [op, data] of sweeps) {
    const a = tensor(nb, 'f32', data, [n]);
    const out = zeros(nb, 'f32', [n]);
    both(nb, (be, v) => be.unary(op as 'exp', v(out), v(a)));
    // 2e-6 relative; the absolute floor covers tails where the js backend's own float64 formula
    // cancels (1 + erf(x) for x < −6) and is less accurate than the native one.
    expectClose(nb, `unary ${op} sweep`, out, 2e-6, 1e-14);
  }
  for (const op of GRADS) {
    const x = tensor(nb, 'f32', grid(-40, 40), [n]);
    const dy = tensor(nb, 'f32', new Float32Array(n).fill(1), [n]);
    const dx = zeros(nb, 'f32', [n]);
    both(nb, (be, v) => be.unaryGrad(op, v(dx), v(x), v(dy)));
    // Derivatives cross zero (silu near x = −1.28): there the error is the float rounding of O(1) terms.
    expectClose(nb, `unaryGrad ${op} sweep`, dx, 2e-6, 1e-7);
  }
});

ntest('where: broadcast condition, f32, i32 and mixed dtypes', (nb) => {
  const cond = tensor(nb, 'bool', randb(17), [5, 17], [0, 1]);
  const a = rf(nb, [5, 17]);
  const b = tensor(nb, 'f32', randf(5), [5, 17], [1, 0]);
  const out = zeros(nb, 'f32', [5, 17]);
  both(nb, (be, v) => be.where(v(out), v(cond), v(a), v(b)));
  exact(nb, 'where f32', out);
  const ai = tensor(nb, 'i32', randi(85, -100, 100), [5, 17]);
  const bi = tensor(nb, 'i32', randi(1, -100, 100), [5, 17], [0, 0]);
  const oi = zeros(nb, 'i32', [5, 17]);
  both(nb, (be, v) => be.where(v(oi), v(cond), v(ai), v(bi)));
  exact(nb, 'where i32', oi);
  both(nb, (be, v) => be.where(v(out), v(cond), v(ai), v(b)));
  exact(nb, 'where i32/f32 -> f32', out);
});

// ---- reductions -------------------------------------------------------------------------------

ntest('reduce: sum / max / min over axis sets of dense and strided views', (nb) => {
  const shapes: [number[], number[][]][] = [
    [
      [5, 17, 3],
      [[0], [1], [2], [0, 1], [1, 2], [0, 2], [0, 1, 2], []],
    ],
    [
      [129, 33],
      [[0], [1], [0, 1]],
    ],
    [
      [1, 7, 1],
      [[0], [1], [2]],
    ],
  ];
  for (const op of ['sum', 'max', 'min'] as const) {
    for (const [shape, axesList] of shapes) {
      for (const axes of axesList) {
        const oshape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
        const a = rf(nb, shape);
        const out = zeros(nb, 'f32', oshape);
        both(nb, (be, v) => be.reduce(op, v(out), v(a), axes));
        expectClose(nb, `reduce ${op} ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`, out, 1e-6, 1e-6);
        // The same values read through a permuted (non-contiguous) view.
        const rev = [...shape].reverse();
        const t = tensor(nb, 'f32', randf(size(shape)), shape, contiguous(rev).reverse());
        both(nb, (be, v) => be.reduce(op, v(out), v(t), axes));
        expectClose(
          nb,
          `reduce ${op} transposed ${JSON.stringify(shape)} axes ${JSON.stringify(axes)}`,
          out,
          1e-6,
          1e-6,
        );
      }
    }
  }
  // Bias-gradient shape (sum over leading axes), last-axis sums, a full sum, and a broadcast input.
  for (const [shape, axes] of [
    [
      [64, 9, 768],
      [0, 1],
    ],
    [[4096, 3], [0]],
    [[300, 2049], [1]],
    [[100003], [0]],
  ] as [number[], number[]][]) {
    const a = rf(nb, shape);
    const out = zeros(
      nb,
      'f32',
      shape.map((d, i) => (axes.includes(i) ? 1 : d)),
    );
    both(nb, (be, v) => be.reduce('sum', v(out), v(a), axes));
    expectClose(nb, `reduce sum ${JSON.stringify(shape)} ${JSON.stringify(axes)}`, out, 1e-5, 1e-5);
  }
  const bc = tensor(nb, 'f32', randf(7), [9, 7], [0, 1]);
  const bo = zeros(nb, 'f32', [1, 7]);
  both(nb, (be, v) => be.reduce('sum', v(bo), v(bc), [0]));
  expectClose(nb, 'reduce sum broadcast', bo, 1e-6, 1e-6);
  // NaN propagates through max / min.
  const nd = randf(40);
  nd[13] = NaN;
  const na = tensor(nb, 'f32', nd, [4, 10]);
  const no = zeros(nb, 'f32', [4, 1]);
  for (const op of ['max', 'min'] as const) {
    both(nb, (be, v) => be.reduce(op, v(no), v(na), [1]));
    exact(nb, `reduce ${op} NaN`, no);
  }
});

ntest('argmax and topk: ties, NaN, odd sizes', (nb) => {
  const data = randi(17 * 129, 0, 40);
  const f = Float32Array.from(data);
  f[129 * 3 + 77] = NaN;
  const a = tensor(nb, 'f32', f, [17, 129]);
  const out = zeros(nb, 'i32', [17]);
  both(nb, (be, v) => be.argmax(v(out), v(a)));
  exact(nb, 'argmax', out);
  for (const k of [0, 1, 7, 129]) {
    const vals = zeros(nb, 'f32', [17, k]);
    const idx = zeros(nb, 'i32', [17, k]);
    both(nb, (be, v) => be.topk(v(vals), v(idx), v(a), k));
    exact(nb, `topk values k=${k}`, vals);
    exact(nb, `topk indices k=${k}`, idx);
  }
});

// ---- matmul -----------------------------------------------------------------------------------

ntest('matmul: row/column-major operands, broadcast batch, accumulate, odd sizes', (nb) => {
  const cases: [number, number, number, number][] = [
    [3, 17, 33, 9],
    [1, 1, 1, 1],
    [2, 1, 129, 3],
    [5, 64, 1, 17],
    [1, 129, 65, 127],
    [48, 32, 16, 32],
  ];
  for (const [bt, m, k, n] of cases) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        for (const bcast of [false, true]) {
          // a [bt, m, k]: row-major, or column-major (stored as [bt, k, m]).
          const aData = randf(bt * m * k + 3);
          const a = tensor(nb, 'f32', aData, [bt, m, k], ta ? [m * k, 1, m] : [m * k, k, 1], 3);
          const bBatch = bcast ? 1 : bt;
          const bData = randf(bBatch * k * n);
          const bs = bcast ? 0 : k * n;
          const b = tensor(nb, 'f32', bData, [bt, k, n], tb ? [bs, 1, k] : [bs, n, 1]);
          for (const acc of [false, true]) {
            const out = tensor(nb, 'f32', randf(bt * m * n), [bt, m, n]);
            both(nb, (be, v) => be.matmul(v(out), v(a), v(b), acc));
            expectClose(nb, `matmul ${bt}x${m}x${k}x${n} ta=${ta} tb=${tb} bcast=${bcast} acc=${acc}`, out, 1e-5, 1e-5);
          }
        }
      }
    }
  }
  // A sliced a (leading dim larger than k) and an a whose rows overlap (packed fallback).
  const big = tensor(nb, 'f32', randf(40 * 50), [2, 7, 9], [1000, 50, 1], 5);
  const b = rf(nb, [2, 9, 4]);
  const out = zeros(nb, 'f32', [2, 7, 4]);
  both(nb, (be, v) => be.matmul(v(out), v(big), v(b), false));
  expectClose(nb, 'matmul sliced lda', out, 1e-5, 1e-5);
  const overlap = tensor(nb, 'f32', randf(64), [1, 7, 9], [0, 2, 1]);
  both(nb, (be, v) =>
    be.matmul(
      v(out),
      v({ ...overlap, js: { ...overlap.js, shape: [2, 7, 9] }, nat: { ...overlap.nat, shape: [2, 7, 9] } }),
      v(b),
      false,
    ),
  );
  expectClose(nb, 'matmul overlapping rows', out, 1e-5, 1e-5);
});

// ---- row-wise fused kernels ---------------------------------------------------------------------

ntest('softmax / log-softmax and their backward', (nb) => {
  for (const [r, n] of [
    [17, 129],
    [1, 1],
    [3, 50257],
    [129, 3],
  ]) {
    for (const log of [false, true]) {
      const a = rf(nb, [r!, n!], -8, 8);
      const y = zeros(nb, 'f32', [r!, n!]);
      both(nb, (be, v) => be.softmax(v(y), v(a), log));
      expectClose(nb, `softmax log=${log} [${r}, ${n}]`, y, 1e-5, 1e-7);
      const dy = rf(nb, [r!, n!]);
      const dx = zeros(nb, 'f32', [r!, n!]);
      both(nb, (be, v) => be.softmaxBackward(v(dx), v(y), v(dy), log));
      expectClose(nb, `softmaxBackward log=${log} [${r}, ${n}]`, dx, 1e-4, 1e-6);
    }
  }
});

ntest('layerNorm and rmsNorm, forward and backward, with and without affine', (nb) => {
  for (const [r, c] of [
    [17, 129],
    [1, 3],
    [257, 768],
  ]) {
    for (const affine of [true, false]) {
      const x = rf(nb, [r!, c!], -2, 3);
      const w = affine ? rf(nb, [c!]) : null;
      const b = affine ? rf(nb, [c!]) : null;
      const out = zeros(nb, 'f32', [r!, c!]);
      const mean = zeros(nb, 'f32', [r!]);
      const rstd = zeros(nb, 'f32', [r!]);
      const opt = (p: Pair | null, v: (p: Pair) => View) => (p ? v(p) : null);
      both(nb, (be, v) => be.layerNorm(v(out), v(mean), v(rstd), v(x), opt(w, v), opt(b, v), 1e-5));
      expectClose(nb, `layerNorm out [${r}, ${c}] affine=${affine}`, out, 1e-5, 1e-5);
      expectClose(nb, 'layerNorm mean', mean, 1e-6, 1e-6);
      expectClose(nb, 'layerNorm rstd', rstd, 1e-6, 1e-6);
      const dy = rf(nb, [r!, c!]);
      const dx = zeros(nb, 'f32', [r!, c!]);
      const dw = affine ? rf(nb, [c!]) : null; // accumulates into existing values
      const db = affine ? rf(nb, [c!]) : null;
      both(nb, (be, v) =>
        be.layerNormBackward(v(dx), opt(dw, v), opt(db, v), v(dy), v(x), opt(w, v), v(mean), v(rstd)),
      );
      expectClose(nb, 'layerNormBackward dx', dx, 1e-4, 1e-5);
      if (dw) expectClose(nb, 'layerNormBackward dw', dw, 1e-4, 1e-4);
      if (db) expectClose(nb, 'layerNormBackward db', db, 1e-4, 1e-4);
      both(nb, (be, v) => be.layerNormBackward(null, opt(dw, v), null, v(dy), v(x), opt(w, v), v(mean), v(rstd)));
      if (dw) expectClose(nb, 'layerNormBackward dw only', dw, 1e-4, 1e-4);

      both(nb, (be, v) => be.rmsNorm(v(out), v(rstd), v(x), opt(w, v), 1e-6));
      expectClose(nb, `rmsNorm out [${r}, ${c}] affine=${affine}`, out, 1e-5, 1e-5);
      expectClose(nb, 'rmsNorm rstd', rstd, 1e-6, 1e-6);
      both(nb, (be, v) => be.rmsNormBackward(v(dx), opt(dw, v), v(dy), v(x), opt(w, v), v(rstd)));
      expectClose(nb, 'rmsNormBackward dx', dx, 1e-4, 1e-5);
      if (dw) expectClose(nb, 'rmsNormBackward dw', dw, 1e-4, 1e-4);
    }
  }
});

// ---- indexing -----------------------------------------------------------------------------------

ntest('embedding and embeddingBackward with repeated ids', (nb) => {
  for (const [v, c, n] of [
    [50, 17, 33],
    [1, 1, 1],
    [1000, 768, 257],
  ]) {
    const w = rf(nb, [v!, c!]);
    const ids = tensor(nb, 'i32', randi(n!, 0, Math.min(v!, 7)), [n!]);
    const out = zeros(nb, 'f32', [n!, c!]);
    both(nb, (be, p) => be.embedding(p(out), p(w), p(ids)));
    exact(nb, `embedding ${v}x${c}`, out);
    const dy = rf(nb, [n!, c!]);
    const dw = rf(nb, [v!, c!]);
    both(nb, (be, p) => be.embeddingBackward(p(dw), p(dy), p(ids)));
    expectClose(nb, `embeddingBackward ${v}x${c}`, dw, 1e-5, 1e-5);
  }
});

ntest('gather and scatterAdd along every axis', (nb) => {
  const shape = [5, 7, 3];
  for (let axis = 0; axis < 3; axis++) {
    const ishape = [...shape];
    ishape[axis] = 4;
    const a = rf(nb, shape);
    const index = tensor(nb, 'i32', randi(size(ishape), 0, shape[axis]!), ishape);
    const out = zeros(nb, 'f32', ishape);
    both(nb, (be, v) => be.gather(v(out), v(a), v(index), axis));
    exact(nb, `gather axis ${axis}`, out);
    const src = rf(nb, ishape);
    const acc = rf(nb, shape);
    both(nb, (be, v) => be.scatterAdd(v(acc), v(index), v(src), axis));
    expectClose(nb, `scatterAdd axis ${axis}`, acc, 1e-6, 1e-6);
  }
});

// ---- attention ----------------------------------------------------------------------------------

interface AttnCase {
  b: number;
  tq: number;
  tk: number;
  hq: number;
  hkv: number;
  d: number;
  causal: boolean;
  window: number;
  mask: boolean;
  fused: boolean;
}

function attentionCase(nb: NativeBackend, c: AttnCase): void {
  const label = JSON.stringify(c);
  let q: Pair;
  let k: Pair;
  let v: Pair;
  if (c.fused) {
    // q, k, v read in place from one [B, T, Hq + 2·Hkv, D] projection (self-attention: tq = tk).
    const h = c.hq + 2 * c.hkv;
    const data = randf(c.b * c.tq * h * c.d, -1.5, 1.5);
    const st = [c.tq * h * c.d, h * c.d, c.d, 1];
    q = tensor(nb, 'f32', data, [c.b, c.tq, c.hq, c.d], st, 0);
    k = tensor(nb, 'f32', data, [c.b, c.tk, c.hkv, c.d], st, c.hq * c.d);
    v = tensor(nb, 'f32', data, [c.b, c.tk, c.hkv, c.d], st, (c.hq + c.hkv) * c.d);
  } else {
    q = rf(nb, [c.b, c.tq, c.hq, c.d], -1.5, 1.5);
    // k transposed in its batch/time layout: [B, Tk, Hkv, D] stored as [Tk, B, Hkv, D].
    const kd = randf(c.b * c.tk * c.hkv * c.d, -1.5, 1.5);
    k = tensor(nb, 'f32', kd, [c.b, c.tk, c.hkv, c.d], [c.hkv * c.d, c.b * c.hkv * c.d, c.d, 1]);
    v = rf(nb, [c.b, c.tk, c.hkv, c.d]);
  }
  let keyMask: Pair | null = null;
  if (c.mask) {
    const m = randb(c.b * c.tk, 0.7);
    for (let j = 0; j < c.tk; j++) m[j] = 0; // batch 0 sees no key at all: lse −∞, output 0
    keyMask = tensor(nb, 'bool', m, [c.b, c.tk]);
  }
  const out = zeros(nb, 'f32', [c.b, c.tq, c.hq, c.d]);
  const lse = zeros(nb, 'f32', [c.b, c.hq, c.tq]);
  const opts = (p: (x: Pair) => View) => ({
    scale: 1 / Math.sqrt(c.d),
    causal: c.causal,
    window: c.window,
    keyMask: keyMask ? p(keyMask) : null,
  });
  both(nb, (be, p) => be.attention(p(out), p(lse), p(q), p(k), p(v), opts(p)));
  expectClose(nb, `attention out ${label}`, out, 1e-4, 1e-5);
  expectClose(nb, `attention lse ${label}`, lse, 1e-5, 1e-5);
  const dout = rf(nb, [c.b, c.tq, c.hq, c.d]);
  const dq = zeros(nb, 'f32', [c.b, c.tq, c.hq, c.d]);
  const dk = zeros(nb, 'f32', [c.b, c.tk, c.hkv, c.d]);
  const dv = zeros(nb, 'f32', [c.b, c.tk, c.hkv, c.d]);
  both(nb, (be, p) => be.attentionBackward(p(dq), p(dk), p(dv), p(dout), p(q), p(k), p(v), p(out), p(lse), opts(p)));
  expectClose(nb, `attention dq ${label}`, dq, 1e-4, 1e-4);
  expectClose(nb, `attention dk ${label}`, dk, 1e-4, 1e-4);
  expectClose(nb, `attention dv ${label}`, dv, 1e-4, 1e-4);
}

ntest('attention: causal, sliding window, key padding, GQA, fused qkv, Tq < Tk', (nb) => {
  const base: AttnCase = {
    b: 2,
    tq: 17,
    tk: 17,
    hq: 4,
    hkv: 2,
    d: 8,
    causal: false,
    window: 0,
    mask: false,
    fused: false,
  };
  const cases: Partial<AttnCase>[] = [
    {},
    { causal: true },
    { causal: true, window: 5 },
    { window: 3 },
    { mask: true },
    { causal: true, mask: true, hkv: 1 },
    { fused: true, causal: true },
    { tq: 5, tk: 17, causal: true },
    { tq: 1, tk: 17, causal: true, hkv: 4 },
    { tq: 17, tk: 5, causal: true },
    { b: 1, tq: 129, tk: 129, hq: 3, hkv: 3, d: 16, causal: true },
    { b: 1, tq: 130, tk: 130, hq: 2, hkv: 1, d: 5, mask: true },
    { b: 3, tq: 70, tk: 70, hq: 6, hkv: 2, d: 32, causal: true, window: 40 },
  ];
  for (const c of cases) attentionCase(nb, { ...base, ...c });
});

// ---- loss, rope, dropout, adamw -------------------------------------------------------------------

ntest('crossEntropy forward and backward with ignoreIndex and label smoothing', (nb) => {
  for (const [n, v] of [
    [17, 129],
    [1, 1],
    [5, 50257],
  ]) {
    for (const labelSmoothing of [0, 0.1]) {
      const opts = { ignoreIndex: -100, labelSmoothing };
      const logits = rf(nb, [n!, v!], -6, 6);
      const t = randi(n!, 0, v!);
      if (n! > 2) t[2] = -100;
      const targets = tensor(nb, 'i32', t, [n!]);
      const loss = zeros(nb, 'f32', [n!]);
      const lse = zeros(nb, 'f32', [n!]);
      both(nb, (be, p) => be.crossEntropy(p(loss), p(lse), p(logits), p(targets), opts));
      expectClose(nb, `crossEntropy loss [${n}, ${v}] ε=${labelSmoothing}`, loss, 1e-5, 1e-5);
      expectClose(nb, 'crossEntropy lse', lse, 1e-6, 1e-6);
      const dloss = rf(nb, [n!]);
      const dl = zeros(nb, 'f32', [n!, v!]);
      both(nb, (be, p) => be.crossEntropyBackward(p(dl), p(dloss), p(logits), p(lse), p(targets), opts));
      expectClose(nb, `crossEntropyBackward [${n}, ${v}] ε=${labelSmoothing}`, dl, 1e-5, 1e-7);
    }
  }
});

ntest('rope forward and inverse on strided x, cos/sin per batch or shared', (nb) => {
  for (const cb of [1, 2]) {
    const [b, t, h, d] = [2, 7, 3, 8];
    // x read from a fused [B, T, 2·H, D] projection (second half of the heads).
    const xd = randf(b * t * 2 * h * d);
    const x = tensor(nb, 'f32', xd, [b, t, h, d], [t * 2 * h * d, 2 * h * d, d, 1], h * d);
    const cos = rf(nb, [cb, t, d / 2]);
    const sin = rf(nb, [cb, t, d / 2]);
    for (const inverse of [false, true]) {
      const out = zeros(nb, 'f32', [b, t, h, d]);
      both(nb, (be, p) => be.rope(p(out), p(x), p(cos), p(sin), inverse));
      expectClose(nb, `rope cb=${cb} inverse=${inverse}`, out, 1e-6, 1e-6);
    }
  }
});

ntest('dropout draws the same Philox mask as the js backend', (nb) => {
  for (const [n, p, seed, offset] of [
    [1, 0.5, 1, 0],
    [17, 0.1, 42, 5],
    [129, 0.5, 2 ** 40 + 12345, 3],
    [100003, 0.3, 7, 2 ** 33 + 1],
    [64, 0, 9, 0],
  ]) {
    const a = rf(nb, [n!]);
    const out = zeros(nb, 'f32', [n!]);
    both(nb, (be, v) => be.dropout(v(out), v(a), p!, seed!, offset!));
    exact(nb, `dropout n=${n} p=${p} seed=${seed} offset=${offset}`, out);
  }
});

ntest('adamw matches torch arithmetic of the js backend', (nb) => {
  for (const n of [1, 17, 100003]) {
    const param = rf(nb, [n]);
    const grad = rf(nb, [n]);
    const m = rf(nb, [n], -0.1, 0.1);
    const v = rf(nb, [n], 0, 0.01);
    for (const step of [1, 2, 100]) {
      both(nb, (be, p) =>
        be.adamw(p(param), p(grad), p(m), p(v), {
          lr: 1e-3,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: 0.01,
          step,
        }),
      );
    }
    expectClose(nb, `adamw param n=${n}`, param, 1e-6, 1e-7);
    expectClose(nb, `adamw m n=${n}`, m, 1e-6, 1e-9);
    expectClose(nb, `adamw v n=${n}`, v, 1e-6, 1e-12);
  }
});

// ---- error paths --------------------------------------------------------------------------------

ntest('errors: bad ids, shapes, dtypes, views and handles throw tagged Errors', (nb) => {
  const w = nb.alloc('f32', 50257 * 2);
  const ids = nb.alloc('i32', 5);
  nb.upload(ids, 'i32', 0, Int32Array.from([0, 1, 2, 50257, 4]));
  const out = nb.alloc('f32', 10);
  const V = (buf: BackendBuffer, dtype: DType, shape: number[], strides = contiguous(shape), offset = 0): View => ({
    buf,
    dtype,
    offset,
    shape,
    strides,
  });
  assert.throws(
    () => nb.embedding(V(out, 'f32', [5, 2]), V(w, 'f32', [50257, 2]), V(ids, 'i32', [5])),
    /^Error: \[native embedding\] id 50257 at position 3 is out of range for a table of 50257 rows$/,
  );
  assert.throws(
    () => nb.embeddingBackward(V(w, 'f32', [50257, 2]), V(out, 'f32', [5, 2]), V(ids, 'i32', [5])),
    /\[native embeddingBackward\] id 50257/,
  );
  // matmul inner dims disagree
  const a = nb.alloc('f32', 12);
  assert.throws(
    () => nb.matmul(V(out, 'f32', [1, 2, 2]), V(a, 'f32', [1, 2, 3]), V(a, 'f32', [1, 4, 2]), false),
    /\[native matmul\] shapes/,
  );
  // views outside their buffer, negative strides, wrong dtype, foreign buffers
  assert.throws(
    () => nb.unary('exp', V(out, 'f32', [10]), V(a, 'f32', [10], [1], 3)),
    /\[native unary\] input .* exceeds its buffer/,
  );
  assert.throws(() => nb.unary('exp', V(out, 'f32', [4]), V(a, 'f32', [4], [4])), /exceeds its buffer/);
  assert.throws(() => nb.unary('exp', V(out, 'f32', [3]), V(a, 'f32', [3], [-1], 5)), /negative stride/);
  assert.throws(() => nb.unary('exp', V(out, 'f32', [3]), V(ids, 'i32', [3])), /\[native exp\] input must be f32/);
  assert.throws(() => nb.unary('exp', V(out, 'f32', [3]), V(a, 'i32', [3])), /i32 view of a f32 buffer/);
  assert.throws(() => nb.unary('nope' as 'exp', V(out, 'f32', [3]), V(a, 'f32', [3])), /\[native unary\] Unknown op/);
  assert.throws(
    () => nb.unary('exp', V(out, 'f32', [3]), V(js.alloc('f32', 3), 'f32', [3])),
    /not a native backend buffer/,
  );
  assert.throws(() => nb.binary('add', V(out, 'f32', [3]), V(a, 'f32', [3]), V(a, 'f32', [4])), /\[native add\]/);
  assert.throws(() => nb.alloc('f64', 3), /f64/);
  assert.throws(() => nb.alloc('f32', -1), /\[native alloc\]/);
  assert.throws(() => nb.upload(a, 'f32', 0, new Float32Array(13)), /\[native upload\]/);
  assert.throws(() => nb.upload(a, 'f32', 0, new Int32Array(3)), /\[native upload\]/);
  // indices out of range
  const idx = nb.alloc('i32', 2);
  nb.upload(idx, 'i32', 0, Int32Array.from([1, 9]));
  assert.throws(
    () => nb.gather(V(out, 'f32', [2]), V(a, 'f32', [3]), V(idx, 'i32', [2]), 0),
    /\[native gather\] index 9/,
  );
  assert.throws(
    () => nb.scatterAdd(V(a, 'f32', [3]), V(idx, 'i32', [2]), V(out, 'f32', [2]), 0),
    /\[native scatterAdd\] index 9/,
  );
  assert.throws(
    () =>
      nb.crossEntropy(V(out, 'f32', [2]), V(out, 'f32', [2], [1], 2), V(a, 'f32', [2, 3]), V(idx, 'i32', [2]), {
        ignoreIndex: -100,
        labelSmoothing: 0,
      }),
    /\[native crossEntropy\] target 9 at row 1 is out of range for 3 classes/,
  );
  assert.throws(() => nb.topk(V(out, 'f32', [1, 4]), V(idx, 'i32', [1, 4]), V(a, 'f32', [1, 3]), 4), /\[native topk\]/);
  assert.throws(() => nb.dropout(V(out, 'f32', [3]), V(a, 'f32', [3]), 1, 0, 0), /\[native dropout\] p = 1/);
  // use after free: the handle throws, never crashes
  nb.free(a);
  assert.throws(
    () => nb.unary('exp', V(out, 'f32', [3]), V(a, 'f32', [3])),
    /\[native unary\] input buffer was used after free/,
  );
  assert.throws(() => nb.download(V(a, 'f32', [3])), /used after free/);
  assert.throws(() => nb.upload(a, 'f32', 0, new Float32Array(3)), /used after free/);
  nb.free(a);
  for (const b of [w, ids, out, idx]) nb.free(b);
});
