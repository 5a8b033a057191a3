// Fused attention, forward and backward: causal, sliding window, key padding (a batch with no visible
// key: lse −∞, output 0), grouped-query heads, q/k/v read in place from a fused projection, Tq < Tk
// and Tq > Tk, odd head sizes, and probability dropout (the Philox mask of AttentionOpts.dropout; the
// same seed and offset in the forward and the backward, an offset whose counters cross a 32-bit word).

import type { AttentionOpts, View } from '../../../src/backends/backend.js';
import type { AttnCase as BaseAttnCase } from '../../helpers/attention.js';
import assert from 'node:assert/strict';
import type { Ctx, Pair } from './harness.js';

/** A case of test/helpers/attention.ts, at the dropout stream offset `offset`. */
type AttnCase = BaseAttnCase & { offset: number };

function attentionCase(ctx: Ctx, c: AttnCase): void {
  const F = ctx.float;
  const label = JSON.stringify(c);
  let q: Pair;
  let k: Pair;
  let v: Pair;
  if (c.fused) {
    // q, k, v read in place from one [B, T, Hq + 2·Hkv, D] projection (self-attention: tq = tk).
    const h = c.hq + 2 * c.hkv;
    const data = ctx.randf(c.b * c.tq * h * c.d, -1.5, 1.5);
    const st = [c.tq * h * c.d, h * c.d, c.d, 1];
    const qkv = ctx.ft(data, [data.length]);
    q = ctx.view(qkv, [c.b, c.tq, c.hq, c.d], st, 0);
    k = ctx.view(qkv, [c.b, c.tk, c.hkv, c.d], st, c.hq * c.d);
    v = ctx.view(qkv, [c.b, c.tk, c.hkv, c.d], st, (c.hq + c.hkv) * c.d);
  } else {
    q = ctx.rf([c.b, c.tq, c.hq, c.d], -1.5, 1.5);
    // k transposed in its batch/time layout: [B, Tk, Hkv, D] stored as [Tk, B, Hkv, D].
    const kd = ctx.randf(c.b * c.tk * c.hkv * c.d, -1.5, 1.5);
    k = ctx.ft(kd, [c.b, c.tk, c.hkv, c.d], [c.hkv * c.d, c.b * c.hkv * c.d, c.d, 1]);
    v = ctx.rf([c.b, c.tk, c.hkv, c.d]);
  }
  let keyMask: Pair | null = null;
  if (c.mask) {
    const m = ctx.randb(c.b * c.tk, 0.7);
    for (let j = 0; j < c.tk; j++) m[j] = 0; // batch 0 sees no key at all: lse −∞, output 0
    keyMask = ctx.tensor('bool', m, [c.b, c.tk]);
  }
  const out = ctx.zeros(F, [c.b, c.tq, c.hq, c.d]);
  const lse = ctx.zeros(F, [c.b, c.hq, c.tq]);
  const opts = (p: (x: Pair) => View): AttentionOpts => ({
    scale: 1 / Math.sqrt(c.d),
    causal: c.causal,
    window: c.window,
    keyMask: keyMask ? p(keyMask) : null,
    dropout: c.p > 0 ? { p: c.p, seed: 20261206, offset: c.offset } : null,
  });
  ctx.both((be, p) => ctx.k(be).attention(p(out), p(lse), p(q), p(k), p(v), opts(p)));
  ctx.close('attention', `attention out ${label}`, out, 1e-4, 1e-5);
  ctx.close('attention', `attention lse ${label}`, lse, 1e-5, 1e-5);
  const dout = ctx.rf([c.b, c.tq, c.hq, c.d]);
  const dq = ctx.zeros(F, [c.b, c.tq, c.hq, c.d]);
  const dk = ctx.zeros(F, [c.b, c.tk, c.hkv, c.d]);
  const dv = ctx.zeros(F, [c.b, c.tk, c.hkv, c.d]);
  ctx.both((be, p) =>
    ctx.k(be).attentionBackward(p(dq), p(dk), p(dv), p(dout), p(q), p(k), p(v), p(out), p(lse), opts(p)),
  );
  ctx.close('attentionBackward', `attention dq ${label}`, dq, 1e-4, 1e-4);
  ctx.close('attentionBackward', `attention dk ${label}`, dk, 1e-4, 1e-4);
  ctx.close('attentionBackward', `attention dv ${label}`, dv, 1e-4, 1e-4);
}

export function attentionTests(ctx: Ctx): void {
  ctx.test(
    ['attention', 'attentionBackward'],
    'attention: causal, sliding window, key padding, GQA, fused qkv, Tq < Tk, dropout',
    () => {
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
        p: 0,
        offset: 0,
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
        { p: 0.1 },
        { p: 0.5, causal: true, mask: true, offset: 7 },
        { p: 0.3, fused: true, causal: true, hkv: 1, offset: 2 ** 34 - 101 },
        { p: 0.2, tq: 5, tk: 17, causal: true, window: 4 },
      ];
      for (const c of cases) attentionCase(ctx, { ...base, ...c });
    },
  );

  // lowPrecision lets a backend round q, k, v, P and dS to bf16 (CUDA's tensor-core kernels; the CPU
  // backends compute in f32 regardless). Head sizes around the tensor-core tiles (32, 64, 128, one that
  // pads: 80), several query and key tiles, every mask kind, GQA, Tq ≠ Tk and dropout: each output within
  // 1.5% of the f32 reference's largest magnitude (bf16 keeps 8 bits: 0.4% per rounding, a few roundings
  // deep), lse within 0.02 absolute.
  ctx.test(
    ['attention', 'attentionBackward'],
    'attention: lowPrecision (bf16 rounding allowed) stays within bf16 error of f32',
    () => {
      const base: AttnCase = {
        b: 2,
        tq: 70,
        tk: 70,
        hq: 4,
        hkv: 2,
        d: 64,
        causal: true,
        window: 0,
        mask: false,
        fused: false,
        p: 0,
        offset: 0,
      };
      const cases: Partial<AttnCase>[] = [
        {},
        { d: 32, causal: false, mask: true },
        { d: 128, tq: 130, tk: 130, hkv: 1 },
        { d: 80, window: 20, fused: true },
        { tq: 9, tk: 140 },
        { tq: 140, tk: 9 },
        { p: 0.2, mask: true, offset: 11 },
        // Whole key tiles visible (no mask; a backend may skip its per-score test there): not causal,
        // and a window wider than the sequence.
        { causal: false, tq: 64, tk: 128 },
        { d: 128, tq: 130, tk: 130, window: 200 },
      ];
      for (const c of cases) lowPrecisionCase(ctx, { ...base, ...c });
    },
  );

  // A NaN score must reach the output: a row whose scores are all NaN is not an empty row (output 0),
  // and a NaN key poisons every query of its head — as in the loss a trainer checks. Not causal: the
  // composite's dq = dS·K would also take a masked NaN key in (0·NaN).
  ctx.test(
    ['attention', 'attentionBackward'],
    'attention: NaN in q or k propagates to out, lse and the gradients',
    () => {
      const [b, t, h, d] = [1, 9, 2, 8];
      const F = ctx.float;
      const qd = ctx.randf(b * t * h * d, -1, 1);
      for (let c = 0; c < d; c++) qd[(2 * h + 1) * d + c] = NaN; // query 2, head 1: every score NaN
      const kd = ctx.randf(b * t * h * d, -1, 1);
      kd[5 * h * d + 3] = NaN; // key 5, head 0: NaN for every query of head 0
      const q = ctx.ft(qd, [b, t, h, d]);
      const k = ctx.ft(kd, [b, t, h, d]);
      const v = ctx.rf([b, t, h, d]);
      const out = ctx.zeros(F, [b, t, h, d]);
      const lse = ctx.zeros(F, [b, h, t]);
      const opts = { scale: 1 / Math.sqrt(d), causal: false, window: 0, keyMask: null, dropout: null };
      ctx.both((be, p) => ctx.k(be).attention(p(out), p(lse), p(q), p(k), p(v), opts));
      const o = ctx.subject.download(out.subject) as Float32Array;
      for (let i = 0; i < t; i++)
        for (let hh = 0; hh < h; hh++) {
          const nan = (i === 2 && hh === 1) || hh === 0;
          assert.equal(Number.isNaN(o[(i * h + hh) * d]!), nan, `attention out[0, ${i}, ${hh}] NaN on ${ctx.name}`);
        }
      ctx.close('attention', 'attention out with NaN', out, 1e-4, 1e-5);
      ctx.close('attention', 'attention lse with NaN', lse, 1e-5, 1e-5);
      const dout = ctx.rf([b, t, h, d]);
      const dq = ctx.zeros(F, [b, t, h, d]);
      const dk = ctx.zeros(F, [b, t, h, d]);
      const dv = ctx.zeros(F, [b, t, h, d]);
      ctx.both((be, p) =>
        ctx.k(be).attentionBackward(p(dq), p(dk), p(dv), p(dout), p(q), p(k), p(v), p(out), p(lse), opts),
      );
      const g = ctx.subject.download(dv.subject) as Float32Array;
      assert.ok(Number.isNaN(g[(5 * h + 0) * d]!), `attention dv of the NaN key is NaN on ${ctx.name}`);
      ctx.close('attentionBackward', 'attention dq with NaN', dq, 1e-4, 1e-4);
      ctx.close('attentionBackward', 'attention dk with NaN', dk, 1e-4, 1e-4);
      ctx.close('attentionBackward', 'attention dv with NaN', dv, 1e-4, 1e-4);
    },
  );
}

// |subject − ref| ≤ frac · max|ref| over every element (NaN must match), naming the worst element.
function closeToScale(ctx: Ctx, what: string, p: Pair, frac: number, atol = 0): void {
  const want = ctx.ref.download(p.ref) as Float32Array;
  const got = ctx.subject.download(p.subject) as Float32Array;
  let scale = 0;
  for (const r of want) if (Number.isFinite(r)) scale = Math.max(scale, Math.abs(r));
  const bound = Math.max(frac * scale, atol);
  let worst = -1;
  let worstDiff = 0;
  for (let i = 0; i < want.length; i++) {
    const r = want[i]!;
    const g = got[i]!;
    const d = r === g ? 0 : Number.isFinite(r) && Number.isFinite(g) ? Math.abs(g - r) : Infinity;
    if (d > worstDiff) [worst, worstDiff] = [i, d];
  }
  assert.ok(
    worstDiff <= bound,
    `${what} on ${ctx.name}: element ${worst} is ${got[worst]}, the f32 reference ${want[worst]} (|diff| ${worstDiff} > ${bound})`,
  );
}

function lowPrecisionCase(ctx: Ctx, c: AttnCase): void {
  const F = ctx.float;
  const label = JSON.stringify(c);
  const h = c.hq + 2 * c.hkv;
  let q: Pair;
  let k: Pair;
  let v: Pair;
  if (c.fused) {
    const data = ctx.randf(c.b * c.tq * h * c.d, -1.5, 1.5);
    const st = [c.tq * h * c.d, h * c.d, c.d, 1];
    const qkv = ctx.ft(data, [data.length]);
    q = ctx.view(qkv, [c.b, c.tq, c.hq, c.d], st, 0);
    k = ctx.view(qkv, [c.b, c.tk, c.hkv, c.d], st, c.hq * c.d);
    v = ctx.view(qkv, [c.b, c.tk, c.hkv, c.d], st, (c.hq + c.hkv) * c.d);
  } else {
    q = ctx.rf([c.b, c.tq, c.hq, c.d], -1.5, 1.5);
    k = ctx.rf([c.b, c.tk, c.hkv, c.d], -1.5, 1.5);
    v = ctx.rf([c.b, c.tk, c.hkv, c.d]);
  }
  let keyMask: Pair | null = null;
  if (c.mask) {
    const m = ctx.randb(c.b * c.tk, 0.7);
    for (let j = 0; j < c.tk; j++) m[j] = 0; // batch 0 sees no key: out 0, lse −∞ on both paths
    keyMask = ctx.tensor('bool', m, [c.b, c.tk]);
  }
  const opts = (p: (x: Pair) => View): AttentionOpts => ({
    scale: 1 / Math.sqrt(c.d),
    causal: c.causal,
    window: c.window,
    keyMask: keyMask ? p(keyMask) : null,
    dropout: c.p > 0 ? { p: c.p, seed: 7, offset: c.offset } : null,
    lowPrecision: true,
  });
  const out = ctx.zeros(F, [c.b, c.tq, c.hq, c.d]);
  const lse = ctx.zeros(F, [c.b, c.hq, c.tq]);
  ctx.both((be, p) => ctx.k(be).attention(p(out), p(lse), p(q), p(k), p(v), opts(p)));
  closeToScale(ctx, `lowPrecision attention out ${label}`, out, 0.015);
  closeToScale(ctx, `lowPrecision attention lse ${label}`, lse, 0, 0.02);
  const dout = ctx.rf([c.b, c.tq, c.hq, c.d]);
  const dq = ctx.zeros(F, [c.b, c.tq, c.hq, c.d]);
  const dk = ctx.zeros(F, [c.b, c.tk, c.hkv, c.d]);
  const dv = ctx.zeros(F, [c.b, c.tk, c.hkv, c.d]);
  ctx.both((be, p) =>
    ctx.k(be).attentionBackward(p(dq), p(dk), p(dv), p(dout), p(q), p(k), p(v), p(out), p(lse), opts(p)),
  );
  closeToScale(ctx, `lowPrecision attention dq ${label}`, dq, 0.015);
  closeToScale(ctx, `lowPrecision attention dk ${label}`, dk, 0.015);
  closeToScale(ctx, `lowPrecision attention dv ${label}`, dv, 0.015);
}
