// Micro-benchmarks of the native backend through its TS binding (run after `npx tsc` and the addon
// build): GEMM GFLOP/s, per-call overhead of tiny ops, attention fwd/bwd, a few fused kernels.
// Usage: node native/dev/bench.mjs [section ...]   sections: gemm overhead attention kernels
import { loadNativeBackend } from '../../dist/src/backends/native/index.js';

const nb = loadNativeBackend();
const want = new Set(process.argv.slice(2));
const on = (s) => want.size === 0 || want.has(s);
const strides = (shape) => shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
function t(shape, fill = true, dtype = 'f32') {
  const n = shape.reduce((a, b) => a * b, 1);
  const buf = nb.alloc(dtype, n);
  if (fill && dtype === 'f32') nb.upload(buf, 'f32', 0, Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 1000) / 1000 - 0.5));
  return { buf, dtype, offset: 0, shape, strides: strides(shape) };
}
function best(fn, reps, warm = 2) {
  for (let i = 0; i < warm; i++) fn();
  let b = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    b = Math.min(b, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return b; // ms
}
const threads0 = nb.getThreads();

if (on('gemm')) {
  for (const th of [1, 2]) {
    nb.setThreads(th);
    for (const [m, k, n, reps] of [
      [1024, 1024, 1024, 10],
      [4096, 768, 3072, 5],
    ]) {
      const a = t([1, m, k]), b = t([1, k, n]), o = t([1, m, n], false);
      const ms = best(() => nb.matmul(o, a, b, false), reps);
      console.log(`matmul ${m}x${k}x${n} threads=${th}: ${ms.toFixed(3)} ms, ${((2 * m * n * k) / ms / 1e6).toFixed(1)} GFLOP/s`);
      for (const x of [a, b, o]) nb.free(x.buf);
    }
    // attention-sized batched GEMM: 48 × (128×64 · 64×128)
    const a = t([48, 128, 64]), b = t([48, 64, 128]), o = t([48, 128, 128], false);
    const ms = best(() => nb.matmul(o, a, b, false), 50);
    console.log(`matmul 48x128x64x128 threads=${th}: ${(ms * 1e3).toFixed(1)} µs, ${((2 * 48 * 128 * 128 * 64) / ms / 1e6).toFixed(1)} GFLOP/s`);
  }
  nb.setThreads(threads0);
}

if (on('overhead')) {
  const a = t([16]), b = t([16]), o = t([16], false);
  const N = 200000;
  for (const [name, fn] of [
    ['unary neg [16]', () => nb.unary('neg', o, a)],
    ['binary add [16]', () => nb.binary('add', o, a, b)],
    ['scalar mul_s [16]', () => nb.scalar('mul_s', o, a, 0.5)],
    ['fill [16]', () => nb.fill(o, 1)],
  ]) {
    for (let i = 0; i < 20000; i++) fn();
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) fn();
    console.log(`per-call ${name}: ${(Number(process.hrtime.bigint() - t0) / N / 1e3).toFixed(3)} µs`);
  }
  const a4 = t([2, 3, 4, 5]), o4 = t([2, 3, 4, 5], false);
  const tr = { ...a4, shape: [5, 4, 3, 2], strides: [...a4.strides].reverse() };
  const o4t = { ...o4, shape: [5, 4, 3, 2], strides: strides([5, 4, 3, 2]) };
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) nb.unary('neg', o4t, tr);
  console.log(`per-call unary neg rank-4 transposed [120]: ${(Number(process.hrtime.bigint() - t0) / N / 1e3).toFixed(3)} µs`);
}

if (on('attention')) {
  // MHA (GPT-2 small's heads) and GQA 32/4; p = 0 is the no-dropout path, p = 0.1 HF's usual rate.
  for (const [B, T, H, HKV, D] of [
    [4, 128, 12, 12, 64],
    [4, 128, 32, 4, 64],
  ]) {
    const q = t([B, T, H, D]), k = t([B, T, HKV, D]), v = t([B, T, HKV, D]);
    const o = t([B, T, H, D], false), lse = t([B, H, T], false);
    const dq = t([B, T, H, D], false), dk = t([B, T, HKV, D], false), dv = t([B, T, HKV, D], false), dout = t([B, T, H, D]);
    for (const th of [1, 2]) {
      nb.setThreads(th);
      for (const causal of [false, true]) {
        for (const p of [0, 0.1]) {
          const opts = { scale: 1 / 8, causal, window: 0, keyMask: null, dropout: p > 0 ? { p, seed: 1234, offset: 0 } : null };
          const f = best(() => nb.attention(o, lse, q, k, v, opts), 30);
          const bw = best(() => nb.attentionBackward(dq, dk, dv, dout, q, k, v, o, lse, opts), 30);
          console.log(`attention B=${B} T=${T} Hq=${H} Hkv=${HKV} D=${D} causal=${causal} p=${p} threads=${th}: fwd ${f.toFixed(3)} ms, bwd ${bw.toFixed(3)} ms`);
        }
      }
    }
    for (const x of [q, k, v, o, lse, dq, dk, dv, dout]) nb.free(x.buf);
  }
  nb.setThreads(threads0);
}

if (on('kernels')) {
  if (process.env.BENCH_THREADS) nb.setThreads(Number(process.env.BENCH_THREADS));
  const x = t([4096, 768]), y = t([4096, 768]), o = t([4096, 768], false);
  const w = t([768]), bb = t([768]), mean = t([4096], false), rstd = t([4096], false), col = t([1, 768], false), row = t([4096, 1], false);
  const big = t([4096, 3072]), bigo = t([4096, 3072], false);
  const logits = t([1024, 50257]), targets = t([1024], false, 'i32');
  nb.fill(targets, 7);
  const loss = t([1024], false), lse2 = t([1024], false), dl = t([1024, 50257], false);
  const cases = [
    ['add [4096,768]', () => nb.binary('add', o, x, y)],
    ['gelu_tanh [4096,3072]', () => nb.unary('gelu_tanh', bigo, big)],
    ['gelu_tanh grad [4096,3072]', () => nb.unaryGrad('gelu_tanh', bigo, big, big)],
    ['exp [4096,3072]', () => nb.unary('exp', bigo, big)],
    ['reduce sum axis0 [4096,768]', () => nb.reduce('sum', col, x, [0])],
    ['reduce sum axis1 [4096,768]', () => nb.reduce('sum', row, x, [1])],
    ['layerNorm [4096,768]', () => nb.layerNorm(o, mean, rstd, x, w, bb, 1e-5)],
    ['layerNormBackward [4096,768]', () => nb.layerNormBackward(o, w, bb, y, x, w, mean, rstd)],
    ['softmax [4096,768]', () => nb.softmax(o, x, false)],
    ['copy transpose [4096,768]', () => nb.copy({ ...o, shape: [768, 4096], strides: [4096, 1] }, { ...x, shape: [768, 4096], strides: [1, 768] })],
    ['copy permuted out [4096,768]', () => nb.copy({ ...o, shape: [768, 4096], strides: [1, 768] }, { ...x, shape: [768, 4096], strides: [1, 768] })],
    ['crossEntropy [1024,50257]', () => nb.crossEntropy(loss, lse2, logits, targets, { ignoreIndex: -100, labelSmoothing: 0 })],
    ['crossEntropyBackward [1024,50257]', () => nb.crossEntropyBackward(dl, loss, logits, lse2, targets, { ignoreIndex: -100, labelSmoothing: 0 })],
    ['dropout [4096,3072]', () => nb.dropout(bigo, big, 0.1, 1234, 0)],
    ['adamw [4096,768]', () => nb.adamw(o, x, y, w.shape ? o : o, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 })],
  ];
  for (const [name, fn] of cases) {
    const ms = best(fn, 10);
    console.log(`${name}: ${ms.toFixed(3)} ms`);
  }
}
