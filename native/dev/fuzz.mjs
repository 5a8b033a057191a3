// Argument fuzzer for the native backend: random buffers, dtypes, views (shapes, strides, offsets,
// often exceeding their buffer) and kernel arguments. Every call must either succeed or throw an
// Error tagged "[native ...]"; run it against a sanitizer build to catch out-of-bounds access:
//   ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$(gcc -print-file-name=libasan.so)" \
//   VERA_NATIVE_ADDON=/path/to/asan/vera_native.node node native/dev/fuzz.mjs [iterations] [seed]
import { loadNativeBackend } from '../../dist/src/backends/native/index.js';

const nb = loadNativeBackend();
const iters = Number(process.argv[2] ?? 20000);
let s = Number(process.argv[3] ?? 1) >>> 0;
const rnd = () => {
  s = (s + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const DT = ['f32', 'f32', 'f32', 'i32', 'bool', 'bf16', 'f16', 'i64'];
const bufs = [];
for (let i = 0; i < 24; i++) {
  const dtype = DT[i % DT.length];
  const n = 50 + ri(2000);
  const buf = nb.alloc(dtype, n);
  if (dtype === 'f32') nb.upload(buf, 'f32', 0, Float32Array.from({ length: n }, () => rnd() * 8 - 4));
  else if (dtype === 'i32') nb.upload(buf, 'i32', 0, Int32Array.from({ length: n }, () => ri(12) - 2));
  else nb.fill({ buf, dtype, offset: 0, shape: [n], strides: [1] }, ri(3));
  bufs.push({ buf, dtype, n });
}
let last = [];
function view(want, rank = ri(5)) {
  const b = pick(bufs.filter((x) => !want || x.dtype === want || rnd() < 0.05));
  // Operands of one call often share a shape, so kernels get past their shape checks.
  const shape = last.length === rank && rnd() < 0.7 ? [...last] : Array.from({ length: rank }, () => ri(7));
  last = shape;
  const dense = rnd() < 0.6;
  const strides = shape.map(() => ri(9));
  if (dense) {
    let acc = 1;
    for (let i = rank - 1; i >= 0; i--) {
      strides[i] = acc;
      acc *= shape[i];
    }
  }
  return { buf: b.buf, dtype: rnd() < 0.97 ? b.dtype : pick(DT), offset: ri(dense ? 4 : 12), shape, strides };
}
const f = (rank) => view('f32', rank);
const ops = [
  () => nb.copy(view(), view()),
  () => nb.fill(view(), rnd() * 10),
  () => nb.unary(pick(['exp', 'log', 'gelu', 'tanh', 'neg']), f(), f()),
  () => nb.scalar(pick(['add_s', 'lt_s', 'pow_s']), view(), view(), rnd()),
  () => nb.binary(pick(['add', 'max', 'ge']), view(), view(), view()),
  () => nb.unaryGrad(pick(['gelu', 'silu', 'relu']), f(), f(), f()),
  () => nb.where(view(), view('bool'), view(), view()),
  () => nb.reduce(pick(['sum', 'max', 'min']), f(), f(), [ri(4), ri(4)].filter((x, i, a) => a.indexOf(x) === i)),
  () => nb.argmax(view('i32', 1), f()),
  () => nb.topk(f(), view('i32'), f(), ri(5)),
  () => nb.matmul(f(3), f(3), f(3), rnd() < 0.5),
  () => nb.softmax(f(), f(), rnd() < 0.5),
  () => nb.softmaxBackward(f(), f(), f(), rnd() < 0.5),
  () => nb.layerNorm(f(2), f(1), f(1), f(2), rnd() < 0.5 ? f(1) : null, rnd() < 0.5 ? f(1) : null, 1e-5),
  () => nb.layerNormBackward(f(2), rnd() < 0.5 ? f(1) : null, null, f(2), f(2), null, f(1), f(1)),
  () => nb.rmsNorm(f(2), f(1), f(2), rnd() < 0.5 ? f(1) : null, 1e-5),
  () => nb.rmsNormBackward(f(2), f(1), f(2), f(2), f(1), f(1)),
  () => nb.embedding(f(2), f(2), view('i32', 1)),
  () => nb.embeddingBackward(f(2), f(2), view('i32', 1)),
  () => nb.gather(f(), f(), view('i32'), ri(4)),
  () => nb.scatterAdd(f(), view('i32'), f(), ri(4)),
  () => nb.attention(f(4), f(3), f(4), f(4), f(4), { scale: 0.3, causal: rnd() < 0.5, window: ri(3), keyMask: rnd() < 0.3 ? view('bool', 2) : null }),
  () => nb.attentionBackward(f(4), f(4), f(4), f(4), f(4), f(4), f(4), f(4), f(3), { scale: 0.3, causal: rnd() < 0.5, window: ri(3), keyMask: null }),
  () => nb.crossEntropy(f(1), f(1), f(2), view('i32', 1), { ignoreIndex: -1, labelSmoothing: rnd() < 0.5 ? 0 : 0.1 }),
  () => nb.crossEntropyBackward(f(2), f(1), f(2), f(1), view('i32', 1), { ignoreIndex: -1, labelSmoothing: 0 }),
  () => nb.rope(f(4), f(4), f(3), f(3), rnd() < 0.5),
  () => nb.dropout(f(), f(), rnd() * 1.2, ri(1000), ri(100)),
  () => nb.adamw(f(), f(), f(), f(), { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, step: 1 + ri(3) }),
  () => nb.download(view()),
];
let ok = 0;
let thrown = 0;
const kinds = new Map();
for (let i = 0; i < iters; i++) {
  try {
    pick(ops)();
    ok++;
  } catch (e) {
    if (!(e instanceof Error) || !/^\[native /.test(e.message)) throw e;
    thrown++;
    const key = e.message.replace(/[0-9.e+-]+/g, '#').replace(/\(.*?\)/g, '()').slice(0, 70);
    kinds.set(key, (kinds.get(key) ?? 0) + 1);
  }
}
console.log(`fuzz: ${iters} calls, ${ok} succeeded, ${thrown} threw tagged Errors`);
if (process.env.FUZZ_VERBOSE) for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 25)) console.log(n, k);
