// Row-wise fused kernels: softmax / log-softmax (with −∞ entries, as masked logits have) and
// LayerNorm / RMSNorm with full, weight-only and no affine parameters, forward and backward
// (dx alone, dw/db accumulating into existing values, dx skipped).

import type { View } from '../../../src/backends/backend.js';
import type { Ctx, Pair } from './harness.js';

export function rowTests(ctx: Ctx): void {
  const F = ctx.float;
  const opt = (p: Pair | null, v: (p: Pair) => View) => (p ? v(p) : null);

  ctx.test(['softmax', 'softmaxBackward'], 'softmax / log-softmax and their backward', () => {
    for (const [r, n, masked] of [
      [17, 129, false],
      [1, 1, false],
      [3, 50257, false],
      [129, 3, false],
      [9, 33, true],
    ] as [number, number, boolean][]) {
      for (const log of [false, true]) {
        const data = ctx.randf(r * n, -8, 8);
        if (masked) for (let i = 0; i < r; i++) for (let j = i % 3; j < n; j += 3) data[i * n + j] = -Infinity;
        const a = ctx.ft(data, [r, n]);
        const y = ctx.zeros(F, [r, n]);
        ctx.both((be, v) => ctx.k(be).softmax(v(y), v(a), log));
        ctx.close('softmax', `softmax log=${log} [${r}, ${n}]${masked ? ' masked' : ''}`, y, 1e-5, 1e-7);
        const dy = ctx.rf([r, n]);
        const dx = ctx.zeros(F, [r, n]);
        ctx.both((be, v) => ctx.k(be).softmaxBackward(v(dx), v(y), v(dy), log));
        ctx.close('softmaxBackward', `softmaxBackward log=${log} [${r}, ${n}]`, dx, 1e-4, 1e-6);
      }
    }
    // A 3-D input is rows over its last axis.
    const a = ctx.rf([2, 3, 7], -4, 4);
    const y = ctx.zeros(F, [2, 3, 7]);
    ctx.both((be, v) => ctx.k(be).softmax(v(y), v(a), false));
    ctx.close('softmax', 'softmax 3-D', y, 1e-5, 1e-7);
  });

  ctx.test(
    ['layerNorm', 'layerNormBackward', 'rmsNorm', 'rmsNormBackward'],
    'layerNorm and rmsNorm, forward and backward, with and without affine',
    () => {
      for (const [r, c] of [
        [17, 129],
        [1, 3],
        [257, 768],
      ]) {
        for (const affine of ['both', 'weight', 'none'] as const) {
          const x = ctx.rf([r!, c!], -2, 3);
          const w = affine !== 'none' ? ctx.rf([c!]) : null;
          const b = affine === 'both' ? ctx.rf([c!]) : null;
          const out = ctx.zeros(F, [r!, c!]);
          const mean = ctx.zeros(F, [r!]);
          const rstd = ctx.zeros(F, [r!]);
          const tag = `[${r}, ${c}] affine=${affine}`;
          ctx.both((be, v) => ctx.k(be).layerNorm(v(out), v(mean), v(rstd), v(x), opt(w, v), opt(b, v), 1e-5));
          ctx.close('layerNorm', `layerNorm out ${tag}`, out, 1e-5, 1e-5);
          ctx.close('layerNorm', `layerNorm mean ${tag}`, mean, 1e-6, 1e-6);
          ctx.close('layerNorm', `layerNorm rstd ${tag}`, rstd, 1e-6, 1e-6);
          const dy = ctx.rf([r!, c!]);
          const dx = ctx.zeros(F, [r!, c!]);
          const dw = w ? ctx.rf([c!]) : null; // accumulates into existing values
          const db = b ? ctx.rf([c!]) : null;
          ctx.both((be, v) =>
            ctx.k(be).layerNormBackward(v(dx), opt(dw, v), opt(db, v), v(dy), v(x), opt(w, v), v(mean), v(rstd)),
          );
          ctx.close('layerNormBackward', `layerNormBackward dx ${tag}`, dx, 1e-4, 1e-5);
          if (dw) ctx.close('layerNormBackward', `layerNormBackward dw ${tag}`, dw, 1e-4, 1e-4);
          if (db) ctx.close('layerNormBackward', `layerNormBackward db ${tag}`, db, 1e-4, 1e-4);
          ctx.both((be, v) =>
            ctx.k(be).layerNormBackward(null, opt(dw, v), null, v(dy), v(x), opt(w, v), v(mean), v(rstd)),
          );
          if (dw) ctx.close('layerNormBackward', `layerNormBackward dw only ${tag}`, dw, 1e-4, 1e-4);

          ctx.both((be, v) => ctx.k(be).rmsNorm(v(out), v(rstd), v(x), opt(w, v), 1e-6));
          ctx.close('rmsNorm', `rmsNorm out ${tag}`, out, 1e-5, 1e-5);
          ctx.close('rmsNorm', `rmsNorm rstd ${tag}`, rstd, 1e-6, 1e-6);
          ctx.both((be, v) => ctx.k(be).rmsNormBackward(v(dx), opt(dw, v), v(dy), v(x), opt(w, v), v(rstd)));
          ctx.close('rmsNormBackward', `rmsNormBackward dx ${tag}`, dx, 1e-4, 1e-5);
          if (dw) ctx.close('rmsNormBackward', `rmsNormBackward dw ${tag}`, dw, 1e-4, 1e-4);
          ctx.both((be, v) => ctx.k(be).rmsNormBackward(null, opt(dw, v), v(dy), v(x), opt(w, v), v(rstd)));
          if (dw) ctx.close('rmsNormBackward', `rmsNormBackward dw only ${tag}`, dw, 1e-4, 1e-4);
        }
      }
    },
  );
}
