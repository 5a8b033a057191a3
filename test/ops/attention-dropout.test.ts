// Dropout of the attention probabilities: gradients with the mask on (central differences, the mask
// replayed for every evaluation), the mask's definition (the Philox index of BRIEF interface 2) and
// its drop rate, js and native drawing the same kept set, p = 0 / eval mode changing nothing, the
// op drawing from the shared dropout stream, and checkpointing replaying the mask.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backward } from '../../src/autograd/backward.js';
import { checkpoint } from '../../src/autograd/checkpoint.js';
import type { AttentionOpts, Backend } from '../../src/backends/backend.js';
import { philoxUniform } from '../../src/backends/philox.js';
import { getBackend } from '../../src/backends/registry.js';
import * as ops from '../../src/ops/index.js';
import { tensor, zeros } from '../../src/tensor/creation.js';
import type { DType } from '../../src/backends/dtype.js';
import { dropoutStream } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { BASE_CASE, attnInputs, attnOpts, runAttention, worstExcess } from '../helpers/attention.js';
import { nativeSkip, testBackends } from '../helpers/backends.js';
import { gradcheck, randData, withStream } from '../helpers/gradcheck.js';

/**
 * The attention probabilities after dropout, observed through the kernel: with v[b, j, g, :] = e_j
 * (D = Tk, one-hot rows) out[b, i, h, j] is exactly dropout(P)[b, h, i, j]. Returned in the mask's
 * [B, Hq, Tq, Tk] order.
 */
function droppedProbs(backend: Backend, dtype: DType, dims: number[], opts: AttentionOpts): number[] {
  const [b, tq, tk, hq, hkv] = dims as [number, number, number, number, number];
  const d = tk;
  const q = randData({ name: '', backend, dtype, eps: 0, atol: 0, rtol: 0 }, [b, tq, hq, d], 3, 0.5);
  const k = randData({ name: '', backend, dtype, eps: 0, atol: 0, rtol: 0 }, [b, tk, hkv, d], 4, 0.5);
  const eye = new Array<number>(b * tk * hkv * d).fill(0);
  for (let bb = 0; bb < b; bb++)
    for (let j = 0; j < tk; j++) for (let g = 0; g < hkv; g++) eye[((bb * tk + j) * hkv + g) * d + j] = 1;
  const v = tensor(eye, { shape: [b, tk, hkv, d], dtype, backend });
  const out = zeros([b, tq, hq, d], { dtype, backend });
  const lse = zeros([b, hq, tq], { dtype, backend });
  backend.attention!(out.view('t'), lse.view('t'), q.view('t'), k.view('t'), v.view('t'), opts);
  const o = out.toNumbers();
  const res = new Array<number>(b * hq * tq * tk);
  for (let bb = 0; bb < b; bb++)
    for (let h = 0; h < hq; h++)
      for (let i = 0; i < tq; i++)
        for (let j = 0; j < tk; j++) res[((bb * hq + h) * tq + i) * tk + j] = o[((bb * tq + i) * hq + h) * d + j]!;
  for (const t of [q, k, v, out, lse]) t.dispose();
  return res;
}

const plainOpts = (d: number): AttentionOpts => ({ scale: 1 / Math.sqrt(d), causal: false, window: 0, keyMask: null });

for (const tb of testBackends()) {
  const r = (shape: number[], seed: number) => randData(tb, shape, seed);

  describe(`attention dropout on ${tb.name}`, () => {
    test('gradients with dropout on (GQA, causal + window + key padding, fused qkv views)', () => {
      const q = r([2, 3, 4, 6], 48);
      const k = r([2, 5, 2, 6], 49);
      const v = r([2, 5, 2, 6], 50);
      const mask = tensor([1, 1, 1, 0, 1, 0, 1, 1, 1, 1], { dtype: 'bool', shape: [2, 5], backend: tb.backend });
      // Each evaluation replays the same stream position, so the function is deterministic.
      const at = { seed: 9, offset: 3 };
      gradcheck(
        tb,
        'attention dropout GQA',
        (a, b, c) => withStream(at, () => ops.attention(a, b, c, { dropout: 0.3 })),
        [q, k, v],
      );
      gradcheck(
        tb,
        'attention dropout causal window mask',
        (a, b, c) =>
          withStream(at, () => ops.attention(a, b, c, { causal: true, window: 3, keyMask: mask, dropout: 0.5 })),
        [q, k, v],
      );
      const qkv = r([2, 4, 3 * 2 * 3], 51);
      gradcheck(
        tb,
        'attention dropout on fused qkv views',
        (x) =>
          withStream(at, () => {
            const [qq, kk, vv] = ops.split(ops.reshape(x, [2, 4, 3, 2, 3]), [1, 1, 1], 2).map((t) => ops.squeeze(t, 2));
            return ops.attention(qq!, kk!, vv!, { causal: true, scale: 0.3, dropout: 0.25 });
          }),
        [qkv],
      );
    });

    test('the kept set is u(seed, offset + ((b·Hq + h)·Tq + i)·Tk + j) ≥ p, kept values scaled by 1/(1 − p)', () => {
      const dims = [2, 5, 6, 4, 2]; // b, tq, tk, hq, hkv
      const n = 2 * 4 * 5 * 6;
      const p = 0.4;
      const seed = 1234;
      const offset = 10; // not a multiple of 4: rows straddle Philox blocks
      const base = droppedProbs(tb.backend, tb.dtype, dims, plainOpts(6));
      const got = droppedProbs(tb.backend, tb.dtype, dims, { ...plainOpts(6), dropout: { p, seed, offset } });
      const u = new Float64Array(n);
      philoxUniform(seed, offset, u);
      const tol = tb.dtype === 'f64' ? 1e-12 : 1e-6;
      for (let e = 0; e < n; e++) {
        assert.ok(base[e]! > 0, 'every probability is positive without masks');
        const want = u[e]! >= p ? base[e]! / (1 - p) : 0;
        assert.ok(Math.abs(got[e]! - want) <= tol, `element ${e}: ${got[e]} vs ${want}`);
      }
      // Negative controls: the mask moves with the offset and the seed.
      const shifted = droppedProbs(tb.backend, tb.dtype, dims, { ...plainOpts(6), dropout: { p, seed, offset: 11 } });
      const reseeded = droppedProbs(tb.backend, tb.dtype, dims, {
        ...plainOpts(6),
        dropout: { p, seed: 1235, offset },
      });
      const keptSet = (a: number[]) => a.map((x) => (x !== 0 ? 1 : 0)).join('');
      assert.notEqual(keptSet(shifted), keptSet(got));
      assert.notEqual(keptSet(reseeded), keptSet(got));
    });

    test('the observed drop rate matches p', () => {
      // 2·4·64·64 = 32768 probabilities. Drops ~ Binomial(n, p); the bound is 5 standard deviations,
      // √(n·p·(1 − p)) / n ≈ 0.0017 at p = 0.1 and 0.0028 at p = 0.5, so the check fails with
      // probability < 1e-6 for a correct mask and catches any rate off by more than ~1 point.
      const dims = [2, 64, 64, 4, 2];
      const n = 2 * 4 * 64 * 64;
      for (const p of [0.1, 0.5]) {
        const got = droppedProbs(tb.backend, tb.dtype, dims, { ...plainOpts(64), dropout: { p, seed: 77, offset: 0 } });
        const rate = got.filter((x) => x === 0).length / n;
        const bound = 5 * Math.sqrt((p * (1 - p)) / n);
        assert.ok(Math.abs(rate - p) <= bound, `p = ${p}: observed drop rate ${rate}, bound ±${bound}`);
      }
    });

    test('p = 0 and eval mode give the no-dropout result exactly and draw nothing from the stream', () => {
      const q = r([2, 4, 4, 3], 60);
      const k = r([2, 6, 2, 3], 61);
      const v = r([2, 6, 2, 3], 62);
      const run = (o: ops.AttentionOptions) => {
        const leaves = [q, k, v].map((t) =>
          tensor(t.toArray(), { shape: t.shape, dtype: t.dtype, backend: tb.backend, requiresGrad: true }),
        );
        const y = ops.attention(leaves[0]!, leaves[1]!, leaves[2]!, { causal: true, ...o });
        backward(ops.sum(ops.mul(y, y)));
        return [y.toNumbers(), ...leaves.map((t) => t.grad!.toNumbers())];
      };
      dropoutStream.restore({ seed: 5, offset: 40 });
      const plain = run({});
      assert.deepEqual(run({ dropout: 0 }), plain);
      assert.deepEqual(run({ dropout: 0.3, training: false }), plain);
      assert.deepEqual(dropoutStream.state(), { seed: 5, offset: 40 });
      // Negative control: in training mode the same rate changes the result and advances the stream
      // by B·Hq·Tq·Tk = 2·4·4·6 counters.
      assert.notDeepEqual(run({ dropout: 0.3 }), plain);
      assert.deepEqual(dropoutStream.state(), { seed: 5, offset: 40 + 192 });
      // The kernel with p = 0 keeps everything (on js, bit for bit).
      if (tb.name.startsWith('js')) {
        const c = { ...BASE_CASE, causal: true, p: 0 };
        const x = attnInputs(tb.backend, tb.dtype, c);
        const none = runAttention(tb.backend, tb.backend, tb.dtype, x, attnOpts(c, null));
        const zero = runAttention(tb.backend, tb.backend, tb.dtype, x, {
          ...attnOpts(c, null),
          dropout: { p: 0, seed: 1, offset: 0 },
        });
        assert.deepEqual(zero, none);
        for (const t of x.owners) t.dispose();
      }
    });

    test('checkpointing replays the attention mask: gradients equal the plain graph', () => {
      const x = r([2, 5, 8], 70).setRequiresGrad(true);
      const w = r([8, 24], 71).setRequiresGrad(true);
      const block = (t: Tensor) => {
        const [q, k, v] = ops.split(ops.matmul(t, w), [8, 8, 8], -1).map((p) => ops.reshape(p, [2, 5, 2, 4]));
        return ops.reshape(ops.attention(q!, k!, v!, { causal: true, dropout: 0.4 }), [2, 5, 8]);
      };
      const run = (useCheckpoint: boolean) => {
        x.grad = null;
        w.grad = null;
        dropoutStream.restore({ seed: 21, offset: 0 });
        const y = useCheckpoint ? checkpoint(block, [x], [w]) : block(x);
        backward(ops.sum(ops.mul(y, y)));
        return [y.toNumbers(), x.grad!.toNumbers(), w.grad!.toNumbers(), dropoutStream.state().offset];
      };
      const plain = run(false);
      assert.deepEqual(run(true), plain);
      // Negative control: another stream position gives other gradients.
      x.grad = null;
      w.grad = null;
      dropoutStream.restore({ seed: 22, offset: 0 });
      const y = block(x);
      backward(ops.sum(ops.mul(y, y)));
      assert.notDeepEqual(x.grad!.toNumbers(), plain[1]);
    });

    test('a dropout rate outside [0, 1) is refused, naming the op', () => {
      const q = r([1, 2, 1, 2], 80);
      assert.throws(() => ops.attention(q, q, q, { dropout: 1 }), /\[attention\] dropout = 1 must be in \[0, 1\)/);
      assert.throws(() => ops.attention(q, q, q, { dropout: -0.1 }), /\[attention\] dropout/);
      const out = zeros([1, 2, 1, 2], { dtype: tb.dtype, backend: tb.backend });
      const lse = zeros([1, 1, 2], { dtype: tb.dtype, backend: tb.backend });
      const qv = q.view('t');
      assert.throws(
        () =>
          tb.backend.attention!(out.view('t'), lse.view('t'), qv, qv, qv, {
            ...plainOpts(2),
            dropout: { p: 1.5, seed: 0, offset: 0 },
          }),
        /attention\] dropout p = 1.5 must be in \[0, 1\)/,
      );
    });
  });
}

describe('attention dropout: js and native', () => {
  test('draw the same kept set, with outputs and gradients within f32 tolerance', { skip: nativeSkip() }, () => {
    const js = getBackend('js');
    const nat = getBackend('native');
    const dims = [2, 9, 13, 6, 3]; // odd Tk: rows start mid-block
    const opts = { ...plainOpts(13), causal: true, dropout: { p: 0.3, seed: 99, offset: 5 } };
    const a = droppedProbs(js, 'f32', dims, opts);
    const b = droppedProbs(nat, 'f32', dims, opts);
    assert.deepEqual(
      b.map((x) => x !== 0),
      a.map((x) => x !== 0),
    );
    const w = worstExcess(b, a, 1e-6, 1e-5);
    assert.ok(w.excess <= 0, `probabilities differ at ${w.i}`);
    for (const c of [
      { ...BASE_CASE, p: 0.3, causal: true, mask: true },
      { ...BASE_CASE, p: 0.5, fused: true, hkv: 1 },
      { ...BASE_CASE, b: 1, tq: 70, tk: 70, hq: 3, hkv: 3, d: 16, causal: true, window: 40, p: 0.1 },
    ]) {
      const xj = attnInputs(js, 'f32', c);
      const xn = attnInputs(nat, 'f32', c);
      const rj = runAttention(js, js, 'f32', xj, attnOpts(c, xj.keyMask));
      const rn = runAttention(nat, nat, 'f32', xn, attnOpts(c, xn.keyMask));
      for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
        const e = worstExcess(rn[key], rj[key], 1e-5, 1e-4);
        assert.ok(
          e.excess <= 0,
          `${key} ${JSON.stringify(c)}: element ${e.i} native ${rn[key][e.i]} js ${rj[key][e.i]}`,
        );
      }
      for (const t of [...xj.owners, ...xn.owners]) t.dispose();
    }
  });

  test(
    'masks agree where Philox block counters carry into their high word (index 2^34)',
    { skip: nativeSkip() },
    () => {
      const js = getBackend('js');
      const nat = getBackend('native');
      // Element 4·(2³² − 8) + … : the 16 blocks of one SIMD group straddle block 2³², whose low word wraps.
      const offset = 2 ** 34 - 101;
      const n = 300;
      const x = Array.from({ length: n }, (_, i) => 1 + (i % 7));
      const drop = (be: Backend) => {
        const a = tensor(x, { shape: [n], dtype: 'f32', backend: be });
        const out = zeros([n], { dtype: 'f32', backend: be });
        be.dropout!(out.view('t'), a.view('t'), 0.5, 3, offset);
        return out.toNumbers();
      };
      const want = drop(js);
      assert.deepEqual(drop(nat), want);
      const u = new Float64Array(n);
      philoxUniform(3, offset, u);
      assert.deepEqual(
        want.map((v) => v !== 0),
        Array.from(u, (v) => v >= 0.5),
      );
      const dims = [1, 3, 40, 2, 1];
      const opts = { ...plainOpts(40), dropout: { p: 0.5, seed: 3, offset: 2 ** 34 - 77 } };
      assert.deepEqual(
        droppedProbs(nat, 'f32', dims, opts).map((v) => v !== 0),
        droppedProbs(js, 'f32', dims, opts).map((v) => v !== 0),
      );
    },
  );
});
