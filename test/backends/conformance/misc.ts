// The other fused kernels: cross-entropy (ignore_index rows, all rows ignored, label smoothing, a
// non-default ignore_index), rotary embedding on strided x with per-batch or shared tables, dropout's
// Philox mask, and AdamW's torch arithmetic over several steps.

import type { Ctx } from './harness.js';

export function miscTests(ctx: Ctx): void {
  const F = ctx.float;

  ctx.test(
    ['crossEntropy', 'crossEntropyBackward'],
    'crossEntropy forward and backward with ignoreIndex and label smoothing',
    () => {
      for (const [n, v, ignoreIndex, allIgnored] of [
        [17, 129, -100, false],
        [1, 1, -100, false],
        [5, 50257, -100, false],
        [4, 11, -100, true],
        [9, 13, 3, false],
      ] as [number, number, number, boolean][]) {
        for (const labelSmoothing of [0, 0.1]) {
          const opts = { ignoreIndex, labelSmoothing };
          const logits = ctx.rf([n, v], -6, 6);
          const t = ctx.randi(n, 0, v);
          if (n > 2) t[2] = ignoreIndex;
          if (allIgnored) t.fill(ignoreIndex);
          const targets = ctx.tensor('i32', t, [n]);
          const loss = ctx.zeros(F, [n]);
          const lse = ctx.zeros(F, [n]);
          const tag = `[${n}, ${v}] ignore=${ignoreIndex}${allIgnored ? ' (all)' : ''} ε=${labelSmoothing}`;
          ctx.both((be, p) => ctx.k(be).crossEntropy(p(loss), p(lse), p(logits), p(targets), opts));
          ctx.close('crossEntropy', `crossEntropy loss ${tag}`, loss, 1e-5, 1e-5);
          ctx.close('crossEntropy', `crossEntropy lse ${tag}`, lse, 1e-6, 1e-6);
          const dloss = ctx.rf([n]);
          const dl = ctx.zeros(F, [n, v]);
          ctx.both((be, p) => ctx.k(be).crossEntropyBackward(p(dl), p(dloss), p(logits), p(lse), p(targets), opts));
          // atol 1e-6: the target's p − (1 − ε) cancels, leaving f32's error in p and lse (~6) absolute.
          ctx.close('crossEntropyBackward', `crossEntropyBackward ${tag}`, dl, 1e-5, 1e-6);
        }
      }
    },
  );

  ctx.test(['rope'], 'rope forward and inverse on strided x, cos/sin per batch or shared', () => {
    for (const cb of [1, 2]) {
      for (const [b, t, h, d] of [
        [2, 7, 3, 8],
        [1, 5, 2, 2],
      ] as [number, number, number, number][]) {
        // x read from a fused [B, T, 2·H, D] projection (second half of the heads).
        if (cb > b) continue;
        const xd = ctx.randf(b * t * 2 * h * d);
        const x = ctx.ft(xd, [b, t, h, d], [t * 2 * h * d, 2 * h * d, d, 1], h * d);
        const cos = ctx.rf([cb, t, d / 2]);
        const sin = ctx.rf([cb, t, d / 2]);
        for (const inverse of [false, true]) {
          const out = ctx.zeros(F, [b, t, h, d]);
          ctx.both((be, p) => ctx.k(be).rope(p(out), p(x), p(cos), p(sin), inverse));
          ctx.close('rope', `rope [${b}, ${t}, ${h}, ${d}] cb=${cb} inverse=${inverse}`, out, 1e-6, 1e-6);
        }
      }
    }
  });

  ctx.test(['dropout'], 'dropout draws the same Philox mask as the js backend', () => {
    for (const [n, p, seed, offset] of [
      [1, 0.5, 1, 0],
      [17, 0.1, 42, 5],
      [129, 0.5, 2 ** 40 + 12345, 3],
      [100003, 0.3, 7, 2 ** 33 + 1],
      [64, 0, 9, 0],
    ]) {
      const a = ctx.rf([n!]);
      const out = ctx.zeros(F, [n!]);
      ctx.both((be, v) => ctx.k(be).dropout(v(out), v(a), p!, seed!, offset!));
      ctx.exact('dropout', `dropout n=${n} p=${p} seed=${seed} offset=${offset}`, out);
    }
  });

  ctx.test(['adamw'], 'adamw matches torch arithmetic of the js backend', () => {
    for (const [n, weightDecay] of [
      [1, 0.01],
      [17, 0.01],
      [100003, 0.01],
      [33, 0],
    ]) {
      const param = ctx.rf([n!]);
      const grad = ctx.rf([n!]);
      const m = ctx.rf([n!], -0.1, 0.1);
      const v = ctx.rf([n!], 0, 0.01);
      for (const step of [1, 2, 100]) {
        ctx.both((be, p) =>
          ctx.k(be).adamw(p(param), p(grad), p(m), p(v), {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weightDecay: weightDecay!,
            step,
          }),
        );
      }
      ctx.close('adamw', `adamw param n=${n}`, param, 1e-6, 1e-7);
      ctx.close('adamw', `adamw m n=${n}`, m, 1e-6, 1e-9);
      ctx.close('adamw', `adamw v n=${n}`, v, 1e-6, 1e-12);
    }
  });
}
