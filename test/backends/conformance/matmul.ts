// matmul, ported as they were from native-vs-js (bf16 operands are covered by bf16-matmul.test.ts):
// row/column-major operands, a broadcast batch, accumulate, odd sizes, a sliced leading dimension and
// rows that overlap.

import type { Ctx } from './harness.js';

export function matmulTests(ctx: Ctx): void {
  const F = ctx.float;

  ctx.test(['matmul'], 'matmul: row/column-major operands, broadcast batch, accumulate, odd sizes', () => {
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
            const aData = ctx.randf(bt * m * k + 3);
            const a = ctx.ft(aData, [bt, m, k], ta ? [m * k, 1, m] : [m * k, k, 1], 3);
            const bBatch = bcast ? 1 : bt;
            const bData = ctx.randf(bBatch * k * n);
            const bs = bcast ? 0 : k * n;
            const b = ctx.ft(bData, [bt, k, n], tb ? [bs, 1, k] : [bs, n, 1]);
            for (const acc of [false, true]) {
              const out = ctx.ft(ctx.randf(bt * m * n), [bt, m, n]);
              ctx.both((be, v) => be.matmul(v(out), v(a), v(b), acc));
              ctx.close(
                'matmul',
                `matmul ${bt}x${m}x${k}x${n} ta=${ta} tb=${tb} bcast=${bcast} acc=${acc}`,
                out,
                1e-5,
                1e-5,
              );
            }
          }
        }
      }
    }
    // A sliced a (leading dim larger than k) and an a whose rows overlap (packed fallback).
    const big = ctx.ft(ctx.randf(40 * 50), [2, 7, 9], [1000, 50, 1], 5);
    const b = ctx.rf([2, 9, 4]);
    const out = ctx.zeros(F, [2, 7, 4]);
    ctx.both((be, v) => be.matmul(v(out), v(big), v(b), false));
    ctx.close('matmul', 'matmul sliced lda', out, 1e-5, 1e-5);
    const overlap = ctx.ft(ctx.randf(64), [1, 7, 9], [0, 2, 1]);
    ctx.both((be, v) => be.matmul(v(out), v(ctx.view(overlap, [2, 7, 9], [0, 2, 1], 0)), v(b), false));
    ctx.close('matmul', 'matmul overlapping rows', out, 1e-5, 1e-5);
  });
}
